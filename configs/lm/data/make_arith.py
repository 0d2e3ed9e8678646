#!/usr/bin/env python3
"""Writes the synthetic arithmetic word problems of configs/lm (deterministic, seed 0).

sft.jsonl      {"prompt", "completion"}: a problem and its worked solution
pairs.jsonl    {"prompt", "chosen", "rejected"}: chosen = the correct worked solution, rejected =
               the same solution with a corrupted result (off by 1..3, or the wrong operation)
prompts.jsonl  {"prompt", "reference"}: held-out problems for `prefengine generate` and evaluation
train_prompts.jsonl  {"prompt", "reference"}: problems outside the SFT set, for on-policy pairs

Run from the repository root: python3 configs/lm/data/make_arith.py
"""
import json
import os
import random

NAMES = ["Ann", "Bob", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon"]
THINGS = ["apples", "pens", "cards", "books", "coins", "shells", "stamps", "eggs"]


def problem(rng):
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    a = rng.randint(2, 20)
    if rng.random() < 0.5:
        b = rng.randint(1, 20)
        text = f"{name} has {a} {thing} and gets {b} more. How many {thing} now?"
        return text, a, "+", b, a + b
    b = rng.randint(1, a - 1)
    text = f"{name} has {a} {thing} and gives away {b}. How many {thing} now?"
    return text, a, "-", b, a - b


def solution(a, op, b, result):
    return f" {a} {op} {b} = {result}. Answer: {result}"


def corrupt(rng, a, op, b, result):
    if rng.random() < 0.3:  # the wrong operation, carried through
        wrong = a - b if op == "+" else a + b
        return solution(a, "-" if op == "+" else "+", b, wrong)
    wrong = result + rng.choice([-3, -2, -1, 1, 2, 3])
    return solution(a, op, b, wrong)


def main():
    rng = random.Random(0)
    here = os.path.dirname(os.path.abspath(__file__))
    seen = set()
    rows = []
    while len(rows) < 2300:
        text, a, op, b, result = problem(rng)
        if text in seen:
            continue
        seen.add(text)
        rows.append((f"Q: {text}\nA:", a, op, b, result))
    train, pair_rows, held_out = rows[:1500], rows[:1000], rows[2200:]
    with open(os.path.join(here, "sft.jsonl"), "w") as out:
        for prompt, a, op, b, result in train:
            out.write(json.dumps({"prompt": prompt, "completion": solution(a, op, b, result)}) + "\n")
    with open(os.path.join(here, "pairs.jsonl"), "w") as out:
        for prompt, a, op, b, result in pair_rows:
            out.write(json.dumps({"prompt": prompt, "chosen": solution(a, op, b, result),
                                  "rejected": corrupt(rng, a, op, b, result)}) + "\n")
    with open(os.path.join(here, "prompts.jsonl"), "w") as out:
        for prompt, a, op, b, result in held_out:
            out.write(json.dumps({"prompt": prompt, "reference": str(result)}) + "\n")
    with open(os.path.join(here, "train_prompts.jsonl"), "w") as out:
        for prompt, a, op, b, result in rows[1500:1900]:
            out.write(json.dumps({"prompt": prompt, "reference": str(result)}) + "\n")


if __name__ == "__main__":
    main()
