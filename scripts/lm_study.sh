#!/usr/bin/env bash
# The language-model study (issue 15, item 3; README "Results: language models"): on each offline
# task (poem, math, slogan), from the task's base model,
#   (a) the four scenarios: pairs (configs/lm/study/<task>_pairs.yaml; chosen from the policy or the
#       data set's reference, rejected from the policy or another model, <task>_other.yaml), then
#       DPO on them (<task>_scenarios.yaml): Table 1 (per-token log-probs of the pairs before/after)
#       and Table 2 (held-out level after, by generating and grading);
#   (b) DPO against PPO rewarded by the grader (<task>_ppo.yaml; the DPO side is scenario 1):
#       Table 3 (mean score, share in the grader's top band);
#   (c) reward-model vs DPO implicit-reward held-out accuracy over training (<task>_rm_vs_dpo.yaml,
#       on held-out on-policy pairs: <task>_pairs.yaml on the held-out prompts);
#   (d) flex-beta and DPO+SFT against DPO (<task>_losses.yaml, scenario-1 pairs);
#   (e) gradient diagnostics during DPO (<task>_gradients.yaml);
# for each seed, then prints the tables (scripts/lm_study_tables.py, also OUT/tables.md) and draws
# the curves with `prefengine report` (OUT/<task>/*.html).
#
# usage: scripts/lm_study.sh [--quick] [--tasks poem,math,slogan] [--seeds "0 1 2"] [OUTPUT_DIR]
#   default OUTPUT_DIR runs/lm-study (runs/lm-study-quick with --quick); PREFENGINE=path/to/prefengine
#   Base models (checkpoint folders): POEM_BASE, MATH_BASE, SLOGAN_BASE. When unset, the last
#   checkpoint of runs/<recipe>-base is used if that run completed, else it is trained first (or
#   resumed, if it stopped part-way) with scripts/lm_base.sh <recipe>: the recipe is the task's name for poem and slogan
#   (configs/lm/<task>/base.yaml), math-bpe for math (configs/lm/math/base_bpe.yaml). The math runs
#   use that base's BPE tokenizer, MATH_TOKENIZER (default runs/data/math-base/tokenizer, trained
#   with scripts/train_bpe.py when missing).
#   A run folder whose run.json says "completed" is reused, so an interrupted study continues
#   where it stopped (delete OUTPUT_DIR to start again).
# --quick: a miniature of everything (a 2-layer 64-wide model SFT for 100 steps as the base of each
#   task, 16 prompts, 24-byte answers, a few steps, seed 0) for CI (tests/lm_study.cmake): it checks
#   that every table is produced, not what the numbers are.
#
# Time on the 2-core development machine (contended: shared with other training runs and builds):
#   --quick: MEASURED 243 s and 107 s (ctest -R lm_study_quick_test, 2026-12-01 19:08 and 20:07 UTC,
#   at nice 19 beside other training runs: contended; expect less on quiet cores).
#   poem, one seed (the 17 runs after the base): MEASURED 27 min (2026-12-01 19:38-20:06 UTC,
#   contended, load 5-7), 18.5 min (seed 2, 22:40-22:58, nearly quiet), 23.0 and 23.4 min (seeds 1
#   and 0, 2026-12-02 00:31-01:26, beside a one-thread run); README "Results: language models".
#   slogan: MEASURED 8.7 min for seed 0 (21:32-21:41) and 24.5 min for seeds 1 and 2
#   (21:41-22:06), both contended. math (from the BPE base, configs/lm/math/base_bpe.yaml):
#   MEASURED 9.5 min for seed 0 with the other model (2026-12-02 17:03-17:13, beside a 3-minute
#   test and a build) and 14.2 min for seeds 1 and 2 (17:13-17:27, quiet). Bases on top: poem
#   22-60 min, slogan 13-35 min, math 40.5 min (README "Base models"). Whole study, 3 tasks x 3
#   seeds, from nothing: ESTIMATED ~3.5-4 h on 2 cores (not run in one piece).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PREFENGINE:-build/bin/prefengine}
quick=0
tasks=""
seeds=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --tasks) tasks=${2//,/ }; shift ;;
    --tasks=*) tasks=${1#--tasks=}; tasks=${tasks//,/ } ;;
    --seeds) seeds=$2; shift ;;
    --seeds=*) seeds=${1#--seeds=} ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    -*) echo "lm_study.sh: unknown option $1" >&2; exit 2 ;;
    *) out=$1 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  out=${out:-runs/lm-study-quick}
  seeds=${seeds:-0}
else
  out=${out:-runs/lm-study}
  seeds=${seeds:-0 1 2}
fi
tasks=${tasks:-poem math slogan}
mkdir -p "$out"

log() { echo "[lm_study $(date -u +%H:%M:%S)] $*"; }

completed() { [ -f "$1/run.json" ] && grep -q '"status": *"completed"' "$1/run.json"; }

# run CONFIG OUT [--set k=v ...]: one prefengine run (a sweep writes a folder per point), reused
# when already completed.
run() {
  local config=$1 dir=$2
  shift 2
  if completed "$dir"; then log "reuse $dir"; return 0; fi
  log "run $config -> $dir"
  "$bin" run "$config" --output "$dir" --overwrite --log-level warn "$@" "${common[@]}" >"$dir.log" 2>&1 \
    || { echo "lm_study.sh: $config failed, see $dir.log:" >&2; tail -5 "$dir.log" >&2; return 1; }
}

# The base checkpoint of a task (prints it), training it when needed.
base_of() {
  local task=$1 var
  var=$(echo "$task" | tr a-z A-Z)_BASE
  if [ -n "${!var:-}" ]; then echo "${!var}"; return 0; fi
  if [ "$quick" = 1 ]; then
    local dir=$out/$task/base
    mkdir -p "$out/$task"
    common=()
    # math: the study configs' BPE tokenizer, here trained on the committed SFT rows.
    [ "$task" = math ] && common=(--set tokenizer.kind=hf_bpe --set "tokenizer.path=$(math_tokenizer)"
                                  --set model.vocab_size=512)
    run configs/lm/study/quick_base.yaml "$dir" --set "stages.sft.data.path=configs/lm/$task/sft.jsonl" >&2
    echo "$dir/checkpoints/sft"
    return 0
  fi
  # The recipe of each task's base (scripts/lm_base.sh): math's is base_bpe.yaml, the one that
  # reaches the level in under an hour.
  local recipe=$task
  [ "$task" = math ] && recipe=math-bpe
  local dir=runs/$recipe-base
  if ! completed "$dir"; then
    log "training the $task base model (scripts/lm_base.sh $recipe)" >&2
    PREFENGINE=$bin OUT=$dir scripts/lm_base.sh "$recipe" >"$out/$task-base.log" 2>&1 \
      || { echo "lm_study.sh: scripts/lm_base.sh $recipe failed, see $out/$task-base.log" >&2; return 1; }
  fi
  # The run's last stage's checkpoint (checkpoints/latest names it).
  echo "$dir/checkpoints/$(cat "$dir/checkpoints/latest")"
}

# The math runs' tokenizer folder (prints it), trained when missing: with --quick on the committed
# 3000 SFT rows (into OUTPUT_DIR), else on the base's 60000 (make_math.py writes them first if needed).
math_tokenizer() {
  local dir=${MATH_TOKENIZER:-runs/data/math-base/tokenizer} rows=runs/data/math-base/sft.jsonl
  [ "$quick" = 1 ] && dir=${MATH_TOKENIZER:-$out/math/tokenizer} && rows=configs/lm/math/sft.jsonl
  if [ ! -s "$dir/tokenizer.json" ]; then
    if [ ! -s "$rows" ]; then
      python3 configs/lm/math/make_math.py --sft 60000 --bucket 16 --drill --out runs/data/math-base >&2
    fi
    python3 scripts/train_bpe.py --input "$rows" --vocab-size 512 --out "$dir" >&2
  fi
  echo "$dir"
}

# nonempty PAIRS_RUN: PAIRS_RUN/pairs/pairs.jsonl without the pairs whose chosen or rejected
# response is empty (the model stopped at once; a pairwise stage's reader refuses such a pair), as
# PAIRS_RUN/pairs/nonempty.jsonl; prints that file's path. The pairs stage has dropped such pairs
# itself since 2026-12-01 (pairs/dropped_empty), so this only matters for pairs runs made before.
nonempty() {
  python3 - "$1/pairs/pairs.jsonl" "$1/pairs/nonempty.jsonl" <<'PY'
import json, sys
rows = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
kept = [l for l in rows if json.loads(l)["chosen"] and json.loads(l)["rejected"]]
open(sys.argv[2], "w", encoding="utf-8").writelines(kept)
if len(kept) < len(rows):
    print(f"{sys.argv[1]}: {len(rows) - len(kept)} of {len(rows)} pairs dropped (an empty response)", file=sys.stderr)
PY
  echo "$1/pairs/nonempty.jsonl"
}

# --quick: every config's model and sizes shrunk (applied to every run of a task).
quick_model=(--set model.hidden_size=64 --set model.intermediate_size=128 --set model.num_hidden_layers=2
             --set model.num_attention_heads=2 --set model.max_position_embeddings=416 --set threads=1)
scen_chosen=(x policy reference policy reference)

for task in $tasks; do
  case "$task" in poem|math|slogan) ;; *) echo "lm_study.sh: unknown task $task" >&2; exit 2 ;; esac
  base=$(base_of "$task")
  mkdir -p "$out/$task"
  log "$task: base $base"
  common=()
  pairs_q=() heldout_q=() dpo_q=() ppo_q=() rm_q=() grad_q=() other_q=()
  if [ "$quick" = 1 ]; then
    common=("${quick_model[@]}")
  fi
  # Every math config names runs/data/math-base/tokenizer; the one in use is set here.
  [ "$task" = math ] && common+=(--set "tokenizer.path=$(math_tokenizer)")
  if [ "$quick" = 1 ]; then
    pairs_q=(--set stages.pairs.data.max_records=16 --set stages.pairs.sampling.max_new_tokens=24
             --set stages.pairs.sampling.batch_size=32 --set stages.pairs.batch_size=16)
    # A miniature model's math answers nearly all grade 1 (ties, no pair): math samples 8 answers
    # to 32 prompts, and its held-out pairs take the reference as chosen.
    if [ "$task" = math ]; then
      pairs_q+=(--set stages.pairs.data.max_records=32 --set stages.pairs.sampling.n=8)
      heldout_q=(--set stages.pairs.chosen_from=reference)
    fi
    dpo_q=(--set stages.dpo.epochs=1 --set stages.dpo.batch_size=4 --set stages.dpo.eval.max_prompts=4
           --set stages.dpo.eval.sampling.max_new_tokens=24)
    ppo_q=(--set stages.ppo.steps=2 --set stages.ppo.batch_size=4 --set stages.ppo.max_new_tokens=24
           --set stages.ppo.eval.max_prompts=4 --set stages.ppo.eval.sampling.max_new_tokens=24)
    rm_q=(--set stages.rm.epochs=2 --set stages.dpo.epochs=2 --set stages.rm.batch_size=4
          --set stages.dpo.batch_size=4 --set stages.rm.eval.every=1 --set stages.dpo.eval.every=1)
    grad_q=(--set stages.dpo.epochs=1 --set stages.dpo.batch_size=4)
    other_q=(--set stages.sft.steps=20)
  fi
  other=$out/$task/other
  run "configs/lm/study/${task}_other.yaml" "$other" "${other_q[@]}"
  for seed in $seeds; do
    t=$out/$task
    # (a) the four scenarios; then, on the scenario-1 pairs, (e), (c), (d) and (b).
    for s in 1 2 3 4; do
      rejected=policy
      [ "$s" -ge 3 ] && rejected=$other/checkpoints/sft
      pairs=$t/pairs-s$s-seed$seed
      run "configs/lm/study/${task}_pairs.yaml" "$pairs" --set seed="$seed" --set "stages.pairs.init_from=$base" \
        --set "stages.pairs.chosen_from=${scen_chosen[$s]}" --set "stages.pairs.rejected_from=$rejected" "${pairs_q[@]}"
      file=$(nonempty "$pairs")
      run "configs/lm/study/${task}_scenarios.yaml" "$t/scenario-s$s-seed$seed" --set seed="$seed" \
        --set "stages.before.init_from=$base" --set "stages.before.data.path=$file" \
        --set "stages.before.eval.path=$file" --set "stages.dpo.data.path=$file" \
        --set "stages.dpo.eval.path=$file" "${dpo_q[@]}"
    done
    train=$t/pairs-s1-seed$seed/pairs/nonempty.jsonl
    run "configs/lm/study/${task}_gradients.yaml" "$t/gradients-seed$seed" --set seed="$seed" \
      --set "stages.dpo.init_from=$base" --set "stages.dpo.data.path=$train" "${grad_q[@]}"
    heldout=$t/heldout-seed$seed
    run "configs/lm/study/${task}_pairs.yaml" "$heldout" --set seed="$seed" \
      --set "stages.pairs.init_from=$base" --set "stages.pairs.data.path=configs/lm/$task/prompts.jsonl" \
      --set stages.pairs.data.max_records=48 "${pairs_q[@]}" "${heldout_q[@]}"
    held=$(nonempty "$heldout")
    run "configs/lm/study/${task}_rm_vs_dpo.yaml" "$t/rm-vs-dpo-seed$seed" --set seed="$seed" \
      --set "stages.rm.init_from=$base" --set "stages.dpo.init_from=$base" \
      --set "stages.rm.data.path=$train" --set "stages.dpo.data.path=$train" \
      --set "stages.rm.eval.path=$held" --set "stages.dpo.eval.path=$held" "${rm_q[@]}"
    run "configs/lm/study/${task}_losses.yaml" "$t/losses-seed$seed" --set seed="$seed" --jobs 1 \
      --set "stages.before.init_from=$base" --set "stages.before.data.path=$train" \
      --set "stages.before.eval.path=$train" --set "stages.dpo.data.path=$train" \
      --set "stages.dpo.eval.path=$train" "${dpo_q[@]}"
    run "configs/lm/study/${task}_ppo.yaml" "$t/ppo-seed$seed" --set seed="$seed" \
      --set "stages.ppo.init_from=$base" "${ppo_q[@]}"
  done
  # The curves: grad/*, rewards/*, loss of every DPO run, and the RM/DPO runs.
  shopt -s nullglob
  for group in scenario gradients; do
    dirs=("$out/$task/$group"-*seed*/)
    [ ${#dirs[@]} -gt 0 ] && "$bin" report "${dirs[@]}" -o "$out/$task/$group.html" --log-level warn >/dev/null
  done
  dirs=("$out/$task"/rm-vs-dpo-seed*/)
  [ ${#dirs[@]} -gt 0 ] && "$bin" report "${dirs[@]}" --all-stages -o "$out/$task/rm-vs-dpo.html" --log-level warn >/dev/null
  shopt -u nullglob
done
python3 scripts/lm_study_tables.py "$out" | tee "$out/tables.md"
