#!/usr/bin/env python3
"""Prompt files of the language-model study (issue 15, item 3), derived from the committed task
files; Python 3, standard library only. Rewrites its outputs byte for byte.

  python3 configs/lm/study/make_study_data.py [--out configs/lm/study]

- poem_train_prompts.jsonl: the rows of configs/lm/poem/train_prompts.jsonl that carry a
  `reference` (the real poem, where the title's poem has the asked form): a `pairs` stage with
  `chosen_from: reference` needs one in every row (scenarios 2 and 4). Every scenario uses these
  prompts, so the four differ only in where chosen and rejected come from.
- math_train_prompts.jsonl: configs/lm/math/train_prompts.jsonl with `reference` set to the worked
  `solution` (which ends in \\boxed{answer}, so the math grader reads the same answer from it):
  `chosen_from: reference` then takes the data set's worked solution as chosen, as the paper's
  off-policy chosen side is the data set's solution, not a bare number.
Slogan prompts are used as they are (configs/lm/slogan/train_prompts.jsonl: every row has a
reference slogan).
"""
import argparse
import json
import os

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} rows")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "configs", "lm", "study"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    poem = [r for r in read("configs/lm/poem/train_prompts.jsonl") if r.get("reference")]
    write(os.path.join(args.out, "poem_train_prompts.jsonl"), poem)
    math = []
    for r in read("configs/lm/math/train_prompts.jsonl"):
        row = dict(r)
        row["reference"] = r["solution"]
        math.append(row)
    write(os.path.join(args.out, "math_train_prompts.jsonl"), math)


if __name__ == "__main__":
    main()
