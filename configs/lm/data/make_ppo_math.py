#!/usr/bin/env python3
"""Writes the tiny arithmetic task of configs/lm/ppo_math.yaml (deterministic, no randomness).

ppo_math_prompts.jsonl  {"prompt": "a+b=", "reference": "a+b"} for a in 0..4, b in 0..1: the ppo
                        stage's 10 prompts, answers 0..5, graded by the math grader. No answer is
                        right for more than 2 of the 10, so a policy that ignores the prompt
                        cannot score much above chance.
ppo_math_sft.jsonl      {"prompt": "a+b=", "completion": "d"} for every prompt and EVERY d in
                        0..5: the sft stage teaches the format (one digit, then EOS) and nothing
                        about which digit is right - each prompt's answers are uniform over the
                        range, so after SFT a sampled answer is right about 1 time in 6.

tests/ppo_math_test.cpp writes the same rows itself.
Run from the repository root: python3 configs/lm/data/make_ppo_math.py
"""
import json
import os

A = range(0, 5)
B = range(0, 2)
ANSWERS = range(0, 6)


def main():
    out = os.path.dirname(os.path.abspath(__file__))
    prompts = [(a, b) for a in A for b in B]
    with open(os.path.join(out, "ppo_math_prompts.jsonl"), "w") as f:
        for a, b in prompts:
            f.write(json.dumps({"prompt": f"{a}+{b}=", "reference": str(a + b)}) + "\n")
    with open(os.path.join(out, "ppo_math_sft.jsonl"), "w") as f:
        for a, b in prompts:
            for d in ANSWERS:
                f.write(json.dumps({"prompt": f"{a}+{b}=", "completion": str(d)}) + "\n")


if __name__ == "__main__":
    main()
