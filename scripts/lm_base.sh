#!/usr/bin/env bash
# Trains the language-model tasks' base models (issue 15, item 2; README "Offline tasks").
#   scripts/lm_base.sh poem   # configs/lm/poem/base.yaml -> runs/poem-base, resampled, the share in the asked form
#   scripts/lm_base.sh slogan # configs/lm/slogan/base.yaml -> runs/slogan-base (corpus pre-training, SFT, graded eval)
#   scripts/lm_base.sh math   # makes runs/data/math/sft.jsonl on first use, configs/lm/math/base.yaml -> runs/math-base
#   scripts/lm_base.sh math-drill  # makes runs/data/math-base/ on first use, configs/lm/math/base_drill.yaml -> runs/math-drill-base
#                                  # (a fact drill, then length-bucketed SFT: measured worse than math, see its config)
#   scripts/lm_base.sh math-drill2 # the same data, configs/lm/math/base_drill2.yaml (a longer drill, a gentler SFT; 0% too)
#   scripts/lm_base.sh math-interleave # the same data, configs/lm/math/base_interleave.yaml (SFT, drill, SFT; 3%)
#   scripts/lm_base.sh math-long   # the same data, configs/lm/math/base_long.yaml (math-interleave, then 2000
#                                  # more SFT steps at lr 5e-4; the math base of scripts/lm_study.sh)
#   scripts/lm_base.sh math-cycles # the same data, configs/lm/math/base_cycles.yaml (math-interleave, then two
#                                  # more SFT cycles of 1000 steps at lr 5e-4)
#   scripts/lm_base.sh math-bucketed # the same data, configs/lm/math/base_bucketed.yaml (two threads: 750 SFT steps on
#                                  # shuffled rows, then 1900 on the length-bucketed rows in file order)
#   scripts/lm_base.sh math-packed # the same data, configs/lm/math/base_packed.yaml (two threads, packed rows:
#                                  # 1000 SFT steps at lr 2e-3, then 2000 at lr 5e-4)
#   scripts/lm_base.sh math-small  # the same data, configs/lm/math/base_small.yaml (two threads, packed rows, a
#                                  # 192-wide model: 1000 SFT steps at lr 2e-3, the drill, 2000 at lr 1e-3)
#   scripts/lm_base.sh math-bpe    # the same data and a BPE tokenizer trained on it (scripts/train_bpe.py ->
#                                  # runs/data/math-base/tokenizer), configs/lm/math/base_bpe.yaml (math-long's
#                                  # stages on BPE tokens, packed rows, two threads)
# PREFENGINE (default build/bin/prefengine) and OUT (default runs/<task>-base) may be set. A run of the
# same config already in OUT (stopped part-way) is resumed rather than started again.
set -euo pipefail
cd "$(dirname "$0")/.."
task=${1:?usage: scripts/lm_base.sh poem|slogan|math|math-drill|math-drill2|math-interleave|math-long|math-cycles|math-bucketed|math-packed|math-small|math-bpe}
bin=${PREFENGINE:-build/bin/prefengine}
out=${OUT:-runs/$task-base}
# train CONFIG: runs CONFIG into $out. An earlier run of CONFIG there (stopped part-way, or done) is
# resumed from its last checkpoint instead, so an interruption of an hours-long base loses nothing.
train() {
  if [ -f "$out/run.json" ]; then
    # config.yaml's first line names the run's config; a resume keeps it.
    if [ "$(head -n 1 "$out/config.yaml" 2>/dev/null)" != "# resolved from $1" ]; then
      echo "lm_base.sh: $out holds a run that is not of $1 ($out/config.yaml, line 1); set OUT to another folder" >&2
      exit 2
    fi
    echo "lm_base.sh: resuming $out (prefengine run --resume)" >&2
    "$bin" run --resume "$out"
  else
    "$bin" run "$1" --output "$out"
  fi
}
case "$task" in
  poem)
    train configs/lm/poem/base.yaml
    # The final model sampled again: 4 poems a prompt at temperature 0.3, and greedy.
    "$bin" generate --checkpoint "$out"/checkpoints/sft --input configs/lm/poem/prompts.jsonl \
      --output "$out"/samples_t0.3.jsonl --n 4 --max-new-tokens 256 --temperature 0.3 --batch-size 48
    "$bin" generate --checkpoint "$out"/checkpoints/sft --input configs/lm/poem/prompts.jsonl \
      --output "$out"/samples_greedy.jsonl --n 1 --max-new-tokens 256 --temperature 0 --batch-size 48
    python3 scripts/poem_form_share.py --prefengine "$bin" "$out"/eval/sft-*.jsonl \
      "$out"/samples_t0.3.jsonl "$out"/samples_greedy.jsonl
    ;;
  slogan)
    train configs/lm/slogan/base.yaml
    ;;
  math)
    if [ ! -s runs/data/math/sft.jsonl ]; then
      python3 configs/lm/math/make_math.py --sft 60000 --out runs/data/math
    fi
    train configs/lm/math/base.yaml
    ;;
  math-drill|math-drill2|math-interleave|math-long|math-cycles|math-bucketed|math-packed|math-small|math-bpe)
    # 60000 SFT rows in length-bucketed batches of 16, and the arithmetic-fact drill rows.
    if [ ! -s runs/data/math-base/drill_heldout.jsonl ]; then
      python3 configs/lm/math/make_math.py --sft 60000 --bucket 16 --drill --out runs/data/math-base
    fi
    # math-bpe: a 512-entry BPE tokenizer learnt on those SFT rows (deterministic: the same rows give
    # the same file).
    if [ "$task" = math-bpe ] && [ ! -s runs/data/math-base/tokenizer/tokenizer.json ]; then
      python3 scripts/train_bpe.py --input runs/data/math-base/sft.jsonl --vocab-size 512 \
        --out runs/data/math-base/tokenizer
    fi
    train "configs/lm/math/base_${task#math-}.yaml"
    ;;
  *) echo "unknown task '$task' (poem, slogan, math, math-drill, math-drill2, math-interleave, math-long, math-cycles, math-bucketed, math-packed, math-small or math-bpe)" >&2; exit 2 ;;
esac
