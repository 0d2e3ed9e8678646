#!/bin/bash
# The bad-input corpus (tests/reliability/bad_inputs/cases.tsv): every case must fail cleanly.
#
#   bad_inputs_test.sh PREFENGINE_BINARY CORPUS_DIR [CASE_REGEX]
#
# cases.tsv: one case a line, three tab-separated fields: name, command, expected text ('#' lines
# and blank lines are comments). The command is a bash line run in a copy of CORPUS_DIR with
#   @PE@   the prefengine binary
#   @OUT@  the case's own output folder (empty at the start)
#   @RUN@  a completed run of configs/lm_good.yaml made once at the start (copy it to @OUT@
#          before changing it)
# The corpus copy also gets configs/deep_nesting.yaml, data/deep_nesting.jsonl and
# data/long_line.jsonl, made by this script. For each case the driver checks, with a timeout:
#   - the exit status is 1 or 2 (not 0, not a signal, not 124 = the timeout);
#   - stderr, without the info/warn/debug log lines, is exactly one non-empty line, which starts
#     with "error:" and contains the expected text;
#   - no "terminate called", no C++ backtrace ("frame #", "Exception raised from");
#   - no file of the corpus copy or of @RUN@ changed (sha256 and mtime of every file before and
#     after), i.e. the case wrote inside @OUT@ only.
set -u
binary=$1
corpus=$2
only=${3:-}
timeout_s=${BAD_INPUT_TIMEOUT:-60}

work=$(mktemp -d "${TMPDIR:-/tmp}/prefengine-bad-inputs.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$corpus" "$work/inputs"
cd "$work/inputs" || exit 1
# Large inputs are made here rather than kept in the tree: 100000 nested brackets (YAML and JSON)
# and a 600 kB JSONL line.
repeat() { head -c "$2" /dev/zero | tr '\0' "$1"; }
printf 'name: %s\n' "$(repeat '[' 100000)" >configs/deep_nesting.yaml
printf '{"prompt_ids": %s%s}\n' "$(repeat '[' 100000)" "$(repeat ']' 100000)" >data/deep_nesting.jsonl
printf '{"prompt_ids": [0], "chosen_ids": [%s10], "rejected_ids": [6]}\n' "$(yes '1,' | head -n 300000 | tr -d '\n')" >data/long_line.jsonl

if ! "$binary" run configs/lm_good.yaml --output "$work/good_run" --log-level error >"$work/good_run.log" 2>&1; then
  echo "setup: the good run failed:"; cat "$work/good_run.log"; exit 1
fi

snapshot() {
  (cd "$work" && find inputs good_run -type f -printf '%p %T@ %s\n' | sort &&
     find inputs good_run -type f -print0 | sort -z | xargs -0 sha256sum)
}
snapshot >"$work/before"

failures=0
cases=0
while IFS=$'\t' read -r name command expected || [ -n "$name" ]; do
  [ -z "$name" ] && continue
  case "$name" in \#*) continue ;; esac
  if [ -n "$only" ] && ! [[ "$name" =~ $only ]]; then continue; fi
  cases=$((cases + 1))
  out="$work/out/$name"
  mkdir -p "$out"
  line=${command//@PE@/\"$binary\"}
  line=${line//@OUT@/\"$out\"}
  line=${line//@RUN@/\"$work/good_run\"}
  timeout -k 5 "$timeout_s" bash -c "$line" >"$out.stdout" 2>"$out.stderr" </dev/null
  rc=$?
  # The user-facing lines: stderr without the progress log (HH:MM:SS info|warn|debug|trace ...).
  grep -v -E '^[0-9]{2}:[0-9]{2}:[0-9]{2} (info|warn|debug|trace) ' "$out.stderr" | grep -v -E '^[[:space:]]*$' >"$out.lines"
  problems=()
  if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
    case $rc in
      0) problems+=("exit status 0: the bad input was accepted") ;;
      124|137) problems+=("no answer within ${timeout_s}s (exit status $rc)") ;;
      *) problems+=("exit status $rc (a signal or a crash)") ;;
    esac
  fi
  n=$(wc -l <"$out.lines")
  [ "$n" -ne 1 ] && problems+=("$n non-log lines on stderr (expected exactly one)")
  first=$(head -n 1 "$out.lines")
  [[ "$first" == error:* ]] || problems+=("the line does not start with 'error:'")
  grep -qF -- "$expected" "$out.lines" || problems+=("the line does not contain '$expected'")
  grep -q -e 'terminate called' -e 'frame #' -e 'Exception raised from' "$out.stderr" &&
    problems+=("stderr has an abort message or a C++ backtrace")
  snapshot >"$work/after"
  if ! cmp -s "$work/before" "$work/after"; then
    problems+=("files outside the case's output folder changed: $(diff "$work/before" "$work/after" | grep '^[<>]' | head -3 | tr '\n' ' ')")
    snapshot >"$work/before"
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok    $name: $first"
  else
    failures=$((failures + 1))
    echo "FAIL  $name: $command"
    for p in "${problems[@]}"; do echo "        - $p"; done
    echo "        stderr:"; sed 's/^/          | /' "$out.stderr" | head -20
  fi
done <cases.tsv

echo "$cases cases, $failures failed"
if [ -z "$only" ] && [ "$cases" -lt 40 ]; then
  echo "expected at least 40 cases in cases.tsv"; exit 1
fi
[ "$failures" -eq 0 ]
