#!/usr/bin/env bash
# The evidence for adaptive beta and the 3D early warning (README, "3D early warning and adaptive
# beta"): DPO, flex-beta, adaptive_dpo "level" and "ratio" at equal steps, three seeds each, with the
# early warning on every run.
#   configs/toy/adaptive_study.yaml   the four toy scenarios (60 runs, ~4 min on 2 cores)
#   configs/lm/onpolicy.yaml, then configs/lm/adaptive_math.yaml   the language-model math task:
#                                     one SFT model and its graded on-policy pairs, then 12 DPO runs
# Each sweep runs its children in parallel (up to the core count, or JOBS) and writes summary.md;
# this script prints the tables.
# usage: scripts/adaptive_study.sh [OUTPUT_DIR] [--toy-only]
#        (default runs/adaptive-study; PREFENGINE=path/to/prefengine)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PREFENGINE:-build/bin/prefengine}
out=runs/adaptive-study
toy_only=0
for arg in "$@"; do
  case "$arg" in
    --toy-only) toy_only=1 ;;
    -*) echo "adaptive_study.sh: unknown option $arg (expected --toy-only)" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
jobs=${JOBS:-0}
"$bin" run configs/toy/adaptive_study.yaml --output "$out/toy" --overwrite --jobs "$jobs" --log-level warn >/dev/null
echo "### configs/toy/adaptive_study.yaml"
echo
cat "$out/toy/summary.md"
echo
[ "$toy_only" = 1 ] && exit 0
"$bin" run configs/lm/onpolicy.yaml --output "$out/lm-onpolicy" --overwrite --log-level warn >/dev/null
"$bin" run configs/lm/adaptive_math.yaml --output "$out/lm" --overwrite --jobs "$jobs" --log-level warn \
  --set "stages.dpo.init_from=$out/lm-onpolicy/checkpoints/sft" \
  --set "stages.dpo.data.path=$out/lm-onpolicy/pairs/pairs.jsonl" >/dev/null
echo "### configs/lm/adaptive_math.yaml (from $out/lm-onpolicy)"
echo
cat "$out/lm/summary.md"
