#!/usr/bin/env python3
"""Share of poems in the asked form (issue 15: "at least half the samples in the asked form").

Reads eval answer files (RUN_DIR/eval/<stage>-<step>.jsonl, or any JSONL with "prompt" and
"response"; `prefengine generate` output, "prompt" and "completions", counts every completion), grades them with `prefengine grade --grader poem` (unless a row already carries the
grader's "scores") and counts an answer as in the asked form when the poem grader's `row_number`
and `chars_per_row` dimensions are both 1: 4 clauses (绝句) or 8 (律诗) of 5 (五言) or 7 (七言) Han
characters each, as the prompt asks. Prints one line per file and a breakdown by asked form.

  python3 scripts/poem_form_share.py RUN_DIR/eval/sft-600.jsonl [more files] [--prefengine BIN]
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

FORMS = ("五言绝句", "七言绝句", "五言律诗", "七言律诗")


def asked_form(prompt):
    for form in FORMS:
        if form in prompt:
            return form
    return "other"


def graded_rows(path, binary):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if rows and all("scores" in r for r in rows):
        return rows
    with tempfile.TemporaryDirectory() as tmp:
        answers = os.path.join(tmp, "answers.jsonl")
        with open(answers, "w", encoding="utf-8") as f:
            for r in rows:
                for response in r["completions"] if "completions" in r else [r["response"]]:
                    f.write(json.dumps({"prompt": r["prompt"], "response": response},
                                       ensure_ascii=False) + "\n")
        out = os.path.join(tmp, "graded.jsonl")
        subprocess.run([binary, "grade", "--grader", "poem", "--input", answers, "--output", out],
                       check=True, stdout=subprocess.DEVNULL)
        with open(out, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


def in_form(row):
    scores = row.get("scores") or {}
    return scores.get("row_number", 0) == 1 and scores.get("chars_per_row", 0) == 1


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--prefengine", default=os.path.join(here, "..", "build", "bin", "prefengine"))
    args = ap.parse_args()
    for path in args.files:
        rows = graded_rows(path, args.prefengine)
        by_form = collections.defaultdict(lambda: [0, 0])
        for r in rows:
            k = by_form[asked_form(r["prompt"])]
            k[0] += in_form(r)
            k[1] += 1
        hits = sum(v[0] for v in by_form.values())
        mean = sum(r.get("score", 0) for r in rows) / max(1, len(rows))
        detail = " ".join(f"{f}={by_form[f][0]}/{by_form[f][1]}" for f in FORMS if f in by_form)
        print(f"{path}: in_asked_form={hits}/{len(rows)} ({hits / max(1, len(rows)):.3f}) "
              f"mean_score={mean:.3f} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
