#!/usr/bin/env bash
# Regenerates the README's Results tables from the engine's own runs:
#   configs/toy/study.yaml         4 scenarios x 5 preference losses x 3 seeds
#   configs/toy/flex_dpo.yaml      beta_rejected lowered step by step, 3 seeds
#   configs/toy/rm_vs_dpo.yaml     reward model vs DPO, held-out accuracy, 3 seeds
#   configs/toy/rm_ppo_study.yaml  RM -> PPO over the 4 scenarios, 3 seeds
# Each sweep runs its child runs in parallel (up to the core count, or JOBS) and writes
# summary.md / summary.csv; this script prints the four summary tables.
# usage: scripts/toy_study.sh [OUTPUT_DIR]   (default runs/toy-study; PREFENGINE=path/to/prefengine)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PREFENGINE:-build/bin/prefengine}
out=${1:-runs/toy-study}
jobs=${JOBS:-0}
for exp in study flex_dpo rm_vs_dpo rm_ppo_study; do
  "$bin" run "configs/toy/$exp.yaml" --output "$out/$exp" --overwrite --jobs "$jobs" --log-level warn >/dev/null
done
for exp in study flex_dpo rm_vs_dpo rm_ppo_study; do
  echo "### configs/toy/$exp.yaml"
  echo
  cat "$out/$exp/summary.md"
  echo
done
