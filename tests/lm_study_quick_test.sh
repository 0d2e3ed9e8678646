#!/usr/bin/env bash
# scripts/lm_study.sh --quick end to end (tests/lm_study.cmake): every experiment of the
# language-model study runs on miniature base models of the three tasks, and every table of
# scripts/lm_study_tables.py has rows with finite numbers (what the numbers are is not checked:
# the miniature models are not meant to learn anything).
# usage: tests/lm_study_quick_test.sh PREFENGINE [WORK_DIR]
set -euo pipefail
bin=$(realpath "$1")
cd "$(dirname "$0")/.."
work=${2:-$(mktemp -d)}
trap '[ -z "${2:-}" ] && rm -rf "$work"' EXIT
start=$(date +%s)
PREFENGINE=$bin scripts/lm_study.sh --quick "$work/out" >"$work/study.log" 2>&1 || {
  echo "lm_study.sh --quick failed:"; tail -20 "$work/study.log"; exit 1; }
python3 scripts/lm_study_tables.py "$work/out" --check || { cat "$work/out/tables.md"; exit 1; }
for task in poem math slogan; do
  for group in scenario gradients rm-vs-dpo; do
    [ -s "$work/out/$task/$group.html" ] || { echo "missing $work/out/$task/$group.html"; exit 1; }
  done
done
echo "lm_study.sh --quick: every table produced with finite numbers in $(( $(date +%s) - start )) s"
