#!/usr/bin/env python3
"""Writes the slogan task of configs/lm/slogan (seeded, deterministic; standard library only).

Prompts ask for an advertising slogan for a product with a length limit (words in English, Han
characters in Chinese) and a keyword to include, phrased the ways the slogan grader reads
(plugins/graders/slogan): "at most N words" / "between N and M words" / "no more than N words",
不超过N个字 / N字以内 / N到M个字, and include "kw" / 需包含“kw”. Slogans are made from templates,
a product list and a keyword list (all below), so every reference meets its prompt: the length,
the keyword, none of the grader's banned words, no repeated two-word or two-character run.

Train / held out: by (product, keyword) pair; about one pair in eight is held out, so a held-out
prompt names a product and keyword never asked together in training.

Files (OUT defaults to this script's folder):
  corpus.jsonl         {"text"}: every template filled with every train pair, to pre-train on
  sft.jsonl            {"prompt", "completion", "lang"}: train prompts with a slogan that meets them
  train_prompts.jsonl  {"prompt", "reference", "lang"}: train pairs, for on-policy pairs
  prompts.jsonl        {"prompt", "reference", "lang"}: held-out pairs (evaluation)

  python3 configs/lm/slogan/make_slogan.py [--out DIR] [--seed N]
"""
import argparse
import json
import os
import random
import re

EN_PRODUCTS = [("coffee", "a coffee shop"), ("tea", "a tea house"), ("bikes", "a bike shop"),
               ("shoes", "running shoes"), ("bread", "a bakery"), ("water", "bottled water"),
               ("books", "a bookstore"), ("cars", "an electric car maker"),
               ("plants", "a garden center"), ("phones", "a phone maker"),
               ("games", "a board game shop"), ("soap", "a soap brand")]
EN_KEYWORDS = ["fresh", "bright", "simple", "smart", "green", "bold", "clean", "quick", "warm",
               "pure", "strong", "easy", "calm", "light", "happy", "honest"]
EN_TEMPLATES = ["{Kw} {p} for every day.", "Your {kw} {p} starts here.", "Make it {kw} with our {p}.",
                "Life feels {kw} with {p}.", "Think {kw}. Choose {p}.", "Every day deserves {kw} {p}.",
                "{Kw} {p}, happy you.", "Go {kw}, go {p}.", "The {kw} way to enjoy {p}.",
                "{Kw} {p} made for people who care.", "Discover how {kw} good {p} can be.",
                "Small price, {kw} {p}, big smiles."]
ZH_PRODUCTS = [("奶茶", "奶茶店"), ("咖啡", "咖啡馆"), ("跑鞋", "运动跑鞋"), ("汽车", "新能源汽车"),
               ("好书", "书店"), ("水杯", "环保水杯"), ("手机", "智能手机"), ("面包", "面包店"),
               ("绿植", "花卉市场"), ("台灯", "护眼台灯"), ("牙膏", "牙膏品牌"), ("单车", "共享单车")]
ZH_KEYWORDS = ["环保", "健康", "自然", "快乐", "轻松", "温暖", "清新", "便捷", "安心", "美味",
               "时尚", "品质"]
ZH_TEMPLATES = ["{kw}生活，从{p}开始", "{kw}相伴，{p}更懂你", "有了{p}，日子更{kw}", "{kw}好{p}，值得拥有",
                "把{kw}带回家", "{p}在手，{kw}常有", "每一天都{kw}", "{kw}{p}，伴你左右",
                "用心做{p}，只为{kw}", "{p}里藏着{kw}的秘密"]


def en_length(text):
    return len(re.findall(r"[A-Za-z0-9]+", text))


def zh_length(text):
    return len(re.findall(r"[\u3400-\u9fff]", text))


def en_prompt(rng, product, kw, length):
    kind = rng.randrange(3)
    if kind == 0:
        n = length + rng.randint(0, 3)
        limit = f"in at most {n} words"
    elif kind == 1:
        n = length + rng.randint(0, 2)
        limit = f"in no more than {n} words"
    else:
        lo = max(2, length - rng.randint(0, 2))
        limit = f"in between {lo} and {length + rng.randint(1, 3)} words"
    return f'Write a slogan for {product} {limit}. Include the word "{kw}".\nSlogan:'


def zh_prompt(rng, product, kw, length):
    kind = rng.randrange(3)
    if kind == 0:
        limit = f"不超过{length + rng.randint(0, 3)}个字"
    elif kind == 1:
        limit = f"{length + rng.randint(0, 3)}字以内"
    else:
        limit = f"{max(2, length - rng.randint(0, 2))}到{length + rng.randint(1, 3)}个字"
    return f"请为{product}写一句广告语，{limit}，需包含“{kw}”。\n广告语："


def slogans(lang, short, kw):
    """Every template filled with (short product name, keyword), with its length."""
    out = []
    for t in (EN_TEMPLATES if lang == "en" else ZH_TEMPLATES):
        s = t.format(p=short, kw=kw, Kw=kw.capitalize())
        out.append((s, en_length(s) if lang == "en" else zh_length(s)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus, sft, train, held = [], [], [], []
    for lang, products, keywords in (("en", EN_PRODUCTS, EN_KEYWORDS), ("zh", ZH_PRODUCTS, ZH_KEYWORDS)):
        pairs = [(p, k) for p in products for k in keywords]
        rng.shuffle(pairs)
        n_held = len(pairs) // 8
        make_prompt = en_prompt if lang == "en" else zh_prompt
        for i, ((short, product), kw) in enumerate(pairs):
            filled = slogans(lang, short, kw)
            is_held = i < n_held
            if not is_held:
                corpus += [{"text": s} for s, _ in filled]
            # Two prompts per pair (each with its own slogan and limit), four SFT rows per train pair.
            picks = rng.sample(filled, 2 if is_held else 6)
            for j, (s, length) in enumerate(picks):
                row = {"prompt": make_prompt(rng, product, kw, length), "lang": lang}
                if is_held:
                    held.append({**row, "reference": " " + s})
                elif j < 2:
                    train.append({**row, "reference": " " + s})
                else:
                    sft.append({"prompt": row["prompt"], "completion": " " + s, "lang": lang})
    rng.shuffle(corpus)
    os.makedirs(args.out, exist_ok=True)
    for name, rows in (("corpus", corpus), ("sft", sft), ("train_prompts", train), ("prompts", held)):
        with open(os.path.join(args.out, name + ".jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
