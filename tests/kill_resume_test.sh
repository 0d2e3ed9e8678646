#!/usr/bin/env bash
# kill -9 at random moments, then `run --resume`, until the run completes: its metrics.jsonl and
# final weights must equal an uninterrupted run's. Usage: kill_resume_test.sh PREFENGINE CYCLES [SEED]
set -euo pipefail
cli=$1
cycles=$2
RANDOM=${3:-20261201}  # the kill times are drawn from this seed (printed, for a rerun)
work=$(mktemp -d /tmp/prefengine-kill-XXXXXXXX)
trap 'rm -rf "$work"' EXIT
# Long enough for kills to land in training and in checkpoint writes (one every 25 steps).
exp=(configs/toy/dpo.yaml --set stages.sft.steps=1500 --set stages.dpo.steps=3000
     --set stages.sft.checkpoint_every=25 --set stages.dpo.checkpoint_every=25 --log-level error)

start=$(date +%s%N)
"$cli" run "${exp[@]}" --output "$work/whole" >/dev/null
whole_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "uninterrupted run: ${whole_ms} ms; kill times from seed ${3:-20261201}"

failures=0
for cycle in $(seq 1 "$cycles"); do
  dir="$work/cycle-$cycle"
  kills=0
  resumes=0
  status=running
  cmd=(run "${exp[@]}" --output "$dir")
  while [ "$status" != completed ]; do
    delay_ms=$(( RANDOM % (whole_ms + 200) ))
    "$cli" "${cmd[@]}" >/dev/null 2>"$work/stderr" &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    code=0
    wait "$pid" 2>/dev/null || code=$?
    if [ "$code" -ne 0 ] && [ "$code" -ne 137 ]; then
      echo "cycle $cycle: prefengine exited with $code (not a kill):"; cat "$work/stderr"; exit 1
    fi
    if [ ! -f "$dir/config.yaml" ]; then
      # killed before the run had written its config: nothing to resume, start afresh
      rm -rf "$dir"
      cmd=(run "${exp[@]}" --output "$dir")
      continue
    fi
    if [ "$code" -eq 0 ]; then
      status=$(sed -n 's/.*"status": "\([a-z]*\)".*/\1/p' "$dir/run.json")
      [ "$status" = completed ] || { echo "cycle $cycle: exit 0 but run.json says '$status'"; exit 1; }
    fi
    cmd=(run --resume "$dir" --log-level error)
    resumes=$((resumes + 1))
    if [ "$resumes" -gt 60 ]; then echo "cycle $cycle: no progress after 60 resumes"; exit 1; fi
  done
  if cmp -s "$work/whole/metrics.jsonl" "$dir/metrics.jsonl" &&
     cmp -s "$work/whole/checkpoints/dpo/model.pt" "$dir/checkpoints/dpo/model.pt"; then
    echo "cycle $cycle: $kills kills, equal to the uninterrupted run"
  else
    echo "cycle $cycle: $kills kills, DIFFERS from the uninterrupted run"
    diff <(cut -c1-160 "$work/whole/metrics.jsonl") <(cut -c1-160 "$dir/metrics.jsonl") | head -10 || true
    failures=$((failures + 1))
  fi
done
[ "$failures" -eq 0 ] || { echo "$failures of $cycles cycles differ"; exit 1; }
echo "all $cycles cycles equal"
