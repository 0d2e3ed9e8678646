#!/bin/sh
# A run on a real full disk: a small tmpfs in a private mount namespace (unshare -rm), filled by
# the run at every size from 64 KiB up in 16 KiB steps until the run fits. Every run that does not
# fit must end with exit status 1 and one "error: ...: No space left on device" line (no abort, no
# "terminate called"), leave run.json whole with status "failed" (once it was written), and, copied
# to a roomy folder, resume to the uninterrupted run's metrics.jsonl, byte for byte (or, when no
# checkpoint was published yet, refuse to resume in one error line).
# Skipped (exit 77) where the platform does not allow the mount.
# usage: tmpfs_full_test.sh PREFENGINE SOURCE_DIR
set -u
cli=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/disk"
cat > "$work/full.yaml" <<YAML
name: full
seed: 1
threads: 1
model: {plugin: toy_mlp, hidden: 16}
stages:
  - {name: sft, kind: sft, data: {path: $src/configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 20, log_every: 1, checkpoint_every: 5}
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: $src/configs/toy/data/pairs.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 6, steps: 30, log_every: 1, checkpoint_every: 5}
YAML
if ! why=$(unshare -rm sh -c "mount -t tmpfs -o size=64k tmpfs '$work/disk'" 2>&1); then
  echo "skipped: cannot mount a small tmpfs in a private mount namespace: $why"
  exit 77
fi
"$cli" run "$work/full.yaml" --output "$work/whole" --log-level warn >/dev/null 2>&1 || { echo "FAIL: the reference run failed"; exit 1; }
fails=0
checked=0
size=64
while [ $size -le 4096 ]; do
  rm -rf "$work/copy" "$work/err"
  # Inside the namespace: mount, run, copy the run folder out (the tmpfs vanishes with the namespace).
  unshare -rm sh -c "mount -t tmpfs -o size=${size}k tmpfs '$work/disk' &&
    { '$cli' run '$work/full.yaml' --output '$work/disk/run' --log-level warn >/dev/null 2>'$work/err'; echo \$? > '$work/rc'; }
    cp -a '$work/disk/run' '$work/copy' 2>/dev/null; true"
  rc=$(cat "$work/rc")
  if [ "$rc" = 0 ]; then
    echo "size ${size}k: the run fits"
    break
  fi
  checked=$((checked + 1))
  errors=$(grep -c '^error:' "$work/err")
  if [ "$rc" != 1 ] || [ "$errors" != 1 ] || grep -q 'terminate called' "$work/err" ||
     ! grep '^error:' "$work/err" | grep -q 'No space left on device'; then
    echo "FAIL at ${size}k: exit status $rc, $errors error lines:"; cat "$work/err"; fails=$((fails + 1))
  fi
  if [ -s "$work/copy/run.json" ] && ! grep -q '"status": "failed"' "$work/copy/run.json"; then
    echo "FAIL at ${size}k: run.json does not say failed:"; cat "$work/copy/run.json"; fails=$((fails + 1))
  fi
  if [ -e "$work/copy/run.json" ] && [ ! -s "$work/copy/run.json" ]; then
    echo "FAIL at ${size}k: run.json is empty"; fails=$((fails + 1))
  fi
  # A checkpoint was published (renamed into place from its .tmp, `latest` may lag): resume from it.
  if ls "$work/copy/checkpoints" 2>/dev/null | grep -v -e '\.tmp$' -e '^latest' | grep -q .; then
    if ! "$cli" run --resume "$work/copy" --log-level warn >/dev/null 2>"$work/resume-err"; then
      echo "FAIL at ${size}k: resume failed:"; cat "$work/resume-err"; fails=$((fails + 1))
    elif ! cmp -s "$work/whole/metrics.jsonl" "$work/copy/metrics.jsonl"; then
      echo "FAIL at ${size}k: the resumed metrics.jsonl differs from the uninterrupted run's"; fails=$((fails + 1))
    fi
  elif [ -d "$work/copy" ]; then  # none was: resume says so in one line
    "$cli" run --resume "$work/copy" --log-level warn >/dev/null 2>"$work/resume-err"
    rc=$?
    if [ "$rc" != 1 ] || [ "$(grep -c '^error:' "$work/resume-err")" != 1 ]; then
      echo "FAIL at ${size}k: resume without a checkpoint: exit status $rc:"; cat "$work/resume-err"; fails=$((fails + 1))
    fi
  fi
  echo "size ${size}k: $(grep '^error:' "$work/err" | head -c 200)"
  size=$((size + 16))
done
if [ "$checked" -lt 3 ]; then echo "FAIL: only $checked sizes filled the disk"; exit 1; fi
[ "$fails" = 0 ] || exit 1
echo "ok: $checked full-disk runs"
