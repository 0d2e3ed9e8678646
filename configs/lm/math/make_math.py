#!/usr/bin/env python3
"""Writes the MATH-like task of configs/lm/math (seeded, deterministic; standard library only).

Problems, each with step-by-step working whose every "expression = number" step is true:
  arith  multi-step arithmetic with precedence and parentheses      (levels 1-3: 2, 3, 4 operations)
  frac   fractions, answers reduced                                   (levels 1-3)
  eq     linear equations, solve for x (integer solutions)            (levels 1-3)
  word   word problems of two or three steps                          (levels 1-2)
  zh     Chinese word problems (SuperCLUE-Math-like), working in Chinese, last line "答案是 N"
English solutions end with "The answer is \\boxed{...}".

Files (OUT defaults to this script's folder):
  sft.jsonl, sft_zh.jsonl                      {"prompt", "completion", "reference", "kind", "level"}
  train_prompts.jsonl, train_prompts_zh.jsonl  {"prompt", "reference", "solution", "kind", "level"}:
                                               prompts for on-policy pairs
  prompts.jsonl, prompts_zh.jsonl              {"prompt", "reference", "solution", "kind", "level"}:
                                               held out (evaluation)
("solution" is the worked reference solution, the same text an SFT completion would be.)
  pairs.jsonl, pairs_zh.jsonl                  {"prompt", "chosen", "rejected"}: the train prompts,
                                               chosen = the worked solution, rejected = the same
                                               working with the last step's result wrong
The three sets of each language are disjoint in prompt text, and word problems also in their
numbers (kind, level and the numbers in order): no held-out word problem is a training one renamed. References are the final answer
alone ("19", "\\frac{5}{6}", "-3"), which the math grader compares by value.

  python3 configs/lm/math/make_math.py [--out DIR] [--seed N] [--sft N] [--bucket B] [--drill]

--sft N writes N English SFT rows instead of 3000 (the base-model recipe, configs/lm/math/base.yaml,
uses --sft 60000 --out runs/data/math): the problem stream is the same, so the held-out and train
prompts and the first 3000 SFT rows are those of the committed files, and every further SFT row is
still disjoint from them (the same `seen` check).

--bucket B writes the English SFT rows in batches of B rows of similar length (same rows, another
order), for a stage with data.shuffle false and batch_size B: padding to each batch's longest row
then costs ~1% instead of ~60%. --drill also writes drill.jsonl (every "a op b = c" step of the
English SFT rows as a row "a op b =" -> " c") and drill_heldout.jsonl (the held-out solutions'
steps, each once, as eval prompts with the result as reference). The committed files are written
without these options and stay byte-identical.
"""
import argparse
import json
import math
import os
import random
import re

SIZES = {"en": (3000, 400, 200), "zh": (2000, 400, 200)}  # sft, train prompts, held out

NAMES = ["Ann", "Bob", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lee"]
THINGS = ["apples", "pens", "cards", "books", "coins", "shells", "stamps", "eggs", "marbles"]
ZH_NAMES = ["小明", "小红", "小华", "小丽", "小刚", "小芳", "小军", "小兰"]
ZH_THINGS = [("苹果", "个"), ("铅笔", "支"), ("故事书", "本"), ("气球", "个"), ("贴纸", "张"),
             ("橘子", "个"), ("彩笔", "支"), ("饼干", "块")]

PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


# ---------------------------------------------------------------- arithmetic with precedence
def arith_tree(rng, ops, hi):
    """A random expression tree with `ops` operations: (value, text, steps), steps in the order
    they are worked out (post-order, left to right), every value a non-negative integer."""
    if ops == 0:
        v = rng.randint(1, hi)
        return ("num", v, None, None)
    left_ops = rng.randint(0, ops - 1)
    left = arith_tree(rng, left_ops, hi)
    op = rng.choice("+-*/")
    lv = value(left)
    if op == "/":
        divisors = [d for d in range(2, 10) if lv % d == 0 and lv // d > 0]
        if not divisors or ops - 1 - left_ops != 0:
            op = "*"
        else:
            return ("op", "/", left, ("num", rng.choice(divisors), None, None))
    right = arith_tree(rng, ops - 1 - left_ops, hi if op != "*" else min(hi, 9))
    rv = value(right)
    if op == "-" and rv > lv:
        op = "+"
    if op == "*" and lv * rv > 999:
        op = "+"
    return ("op", op, left, right)


def value(node):
    if node[0] == "num":
        return node[1]
    _, op, l, r = node
    a, b = value(l), value(r)
    return apply(op, a, b)


def apply(op, a, b):
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    assert a % b == 0
    return a // b


def text(node, parent_prec=0, right_side=False, parent_op=None):
    if node[0] == "num":
        return str(node[1])
    _, op, l, r = node
    s = f"{text(l, PREC[op], False, op)} {op} {text(r, PREC[op], True, op)}"
    if PREC[op] < parent_prec or (right_side and PREC[op] == parent_prec and parent_op in "-/"):
        s = f"({s})"
    return s


def steps(node, out):
    if node[0] == "num":
        return node[1]
    _, op, l, r = node
    a, b = steps(l, out), steps(r, out)
    v = apply(op, a, b)
    out.append((f"{a} {op} {b}", v))
    return v


def arith_problem(rng, level):
    ops, hi = {1: (2, 12), 2: (3, 20), 3: (4, 30)}[level]
    tree = arith_tree(rng, ops, hi)
    while sum(1 for _ in iter_ops(tree)) < ops or not (("+" in text(tree) or "-" in text(tree))
                                                       and ("*" in text(tree) or "/" in text(tree))):
        tree = arith_tree(rng, ops, hi)
    work = []
    answer = steps(tree, work)
    lines = ["Brackets first, then * and /, then + and -, each from left to right."]
    lines += [f"{expr} = {v}" for expr, v in work]
    return f"Compute {text(tree)}.", lines, str(answer), "The answer is \\boxed{%s}." % answer


def iter_ops(node):
    if node[0] == "op":
        yield node[1]
        yield from iter_ops(node[2])
        yield from iter_ops(node[3])


# ---------------------------------------------------------------- fractions
def frac_str(n, d):
    return str(n) if d == 1 else f"{n}/{d}"


def frac_tex(n, d):
    return str(n) if d == 1 else "\\frac{%d}{%d}" % (n, d)


def reduce_lines(n, d, lines):
    g = math.gcd(n, d)
    if g > 1:
        lines.append(f"Reduce by {g}: {n} / {g} = {n // g} and {d} / {g} = {d // g}, "
                     f"so {frac_str(n // g, d // g)}.")
    return n // g, d // g


def frac_op(a, b, op, c, d, lines):
    """(a/b) op (c/d) with working appended to lines; the reduced result."""
    if op in "+-":
        lcd = b * d // math.gcd(b, d)
        n1, n2 = a * (lcd // b), c * (lcd // d)
        if lcd != b or lcd != d:
            parts = []
            for (x, y, m) in ((a, b, lcd // b), (c, d, lcd // d)):
                if m != 1:
                    parts.append(f"{x}/{y} = {x * m}/{lcd} since {x} * {m} = {x * m}")
            lines.append(f"The common denominator is {lcd}: " + "; ".join(parts) + ".")
        n = n1 + n2 if op == "+" else n1 - n2
        lines.append(f"{n1} {op} {n2} = {n}, so {frac_str(n, lcd)}.")
        return reduce_lines(n, lcd, lines)
    if op == "/":
        lines.append(f"Dividing by {frac_str(c, d)} is multiplying by {frac_str(d, c)}.")
        c, d = d, c
    n, m = a * c, b * d
    lines.append(f"{a} * {c} = {n} and {b} * {d} = {m}, so {n}/{m}.")
    return reduce_lines(n, m, lines)


def rand_frac(rng, hi):
    d = rng.randint(2, hi)
    n = rng.randint(1, d - 1)
    g = math.gcd(n, d)
    return n // g, d // g


def frac_problem(rng, level):
    while True:
        lines = []
        if level == 1:
            (a, b), (c, d) = rand_frac(rng, 9), rand_frac(rng, 9)
            op = rng.choice("+-")
            if op == "-" and a * d < c * b:
                (a, b), (c, d) = (c, d), (a, b)
            if a * d == c * b:
                continue
            question = f"Compute {a}/{b} {op} {c}/{d}."
            n, m = frac_op(a, b, op, c, d, lines)
        elif level == 2:
            (a, b), (c, d) = rand_frac(rng, 9), rand_frac(rng, 9)
            op = rng.choice("*/")
            if (a, b) == (c, d):
                continue
            question = (f"Compute {a}/{b} * {c}/{d}." if op == "*" else
                        f"Compute ({a}/{b}) ÷ ({c}/{d}).")
            n, m = frac_op(a, b, op, c, d, lines)
        else:
            (a, b), (c, d), (e, f) = rand_frac(rng, 8), rand_frac(rng, 8), rand_frac(rng, 8)
            op2 = rng.choice("*/")
            question = f"Compute ({a}/{b} + {c}/{d}) {'*' if op2 == '*' else '÷'} ({e}/{f})."
            lines.append("Brackets first.")
            x, y = frac_op(a, b, "+", c, d, lines)
            lines.append(f"Then ({frac_str(x, y)}) {'*' if op2 == '*' else '÷'} ({e}/{f}).")
            n, m = frac_op(x, y, op2, e, f, lines)
        question += " Give the answer as a reduced fraction."
        return question, lines, frac_tex(n, m), "The answer is \\boxed{%s}." % frac_tex(n, m)


# ---------------------------------------------------------------- linear equations
def solve_ax_b(a, b, c, x, lines):
    """Working for a*x + b = c (b may be negative)."""
    if b > 0:
        lines.append(f"Subtract {b} from both sides: {c} - {b} = {c - b}, so {a}x = {c - b}.")
    elif b < 0:
        lines.append(f"Add {-b} to both sides: {c} + {-b} = {c - b}, so {a}x = {c - b}.")
    if a != 1:
        lines.append(f"Divide both sides by {a}: {c - b} / {a} = {x}, so x = {x}.")


def side(a, b):
    """The text of a*x + b."""
    ax = "x" if a == 1 else f"{a}x"
    if b == 0:
        return ax
    return f"{ax} + {b}" if b > 0 else f"{ax} - {-b}"


def eq_problem(rng, level):
    x = rng.randint(1, 12) if level == 1 else rng.choice([v for v in range(-9, 13) if v != 0])
    lines = []
    if level == 1:
        a, b = rng.randint(2, 9), rng.choice([v for v in range(-15, 21) if v != 0])
        c = a * x + b
        question = f"Solve for x: {side(a, b)} = {c}."
        solve_ax_b(a, b, c, x, lines)
    elif level == 2:
        c2 = rng.randint(1, 6)
        a = c2 + rng.randint(1, 6)
        b = rng.choice([v for v in range(-15, 21) if v != 0])
        d = a * x + b - c2 * x
        question = f"Solve for x: {side(a, b)} = {side(c2, d)}."
        lines.append(f"Subtract {'x' if c2 == 1 else str(c2) + 'x'} from both sides: "
                     f"{a} - {c2} = {a - c2}, so {side(a - c2, b)} = {d}.")
        solve_ax_b(a - c2, b, d, x, lines)
    else:
        a, b = rng.randint(2, 7), rng.randint(1, 9)
        c = a * (x + b)
        question = f"Solve for x: {a}(x + {b}) = {c}."
        lines.append(f"Divide both sides by {a}: {c} / {a} = {x + b}, so x + {b} = {x + b}.")
        lines.append(f"Subtract {b} from both sides: {x + b} - {b} = {x}, so x = {x}.")
    return question, lines, str(x), "The answer is \\boxed{%d}." % x


# ---------------------------------------------------------------- word problems (English)
def word_problem(rng, level):
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    t = rng.randrange(3) if level == 1 else rng.randrange(3, 6)
    if t == 0:
        n, k = rng.randint(2, 9), rng.randint(2, 12)
        g = rng.randint(1, n * k - 1)
        q = (f"{name} buys {n} packs of {thing} with {k} in each pack and gives {g} to a friend. "
             f"How many {thing} does {name} have left?")
        lines = [f"{name} buys {n} * {k} = {n * k} {thing}.",
                 f"After giving {g} away: {n * k} - {g} = {n * k - g}."]
        ans = n * k - g
    elif t == 1:
        n, p = rng.randint(2, 8), rng.randint(2, 15)
        m = n * p + rng.randint(0, 40)
        q = (f"{name} has {m} dollars and buys {n} notebooks at {p} dollars each. "
             f"How many dollars are left?")
        lines = [f"The notebooks cost {n} * {p} = {n * p} dollars.",
                 f"Left: {m} - {n * p} = {m - n * p} dollars."]
        ans = m - n * p
    elif t == 2:
        f_, k = rng.randint(2, 9), rng.randint(2, 8)
        total = f_ * k
        q = (f"{total} {thing} are shared equally among {f_} friends. Then each friend gets "
             f"{k + 1} more. How many {thing} does each friend have now?")
        lines = [f"Each friend first gets {total} / {f_} = {k}.",
                 f"Then {k} + {k + 1} = {2 * k + 1}."]
        ans = 2 * k + 1
    elif t == 3:
        a, k = rng.randint(3, 9), rng.randint(4, 12)
        s1, s2 = rng.randint(1, a * k // 3), rng.randint(1, a * k // 3)
        q = (f"A shop has {a} boxes of {thing} with {k} in each box. It sells {s1} in the morning "
             f"and {s2} in the afternoon. How many {thing} are left?")
        lines = [f"The shop has {a} * {k} = {a * k} {thing}.",
                 f"It sells {s1} + {s2} = {s1 + s2}.",
                 f"Left: {a * k} - {s1 + s2} = {a * k - s1 - s2}."]
        ans = a * k - s1 - s2
    elif t == 4:
        p, d, last = rng.randint(5, 20), rng.randint(2, 7), rng.randint(1, 15)
        book = p * d + last + rng.randint(1, 60)
        q = (f"{name} reads {p} pages a day for {d} days and {last} pages on the next day. "
             f"The book has {book} pages. How many pages are left?")
        lines = [f"In {d} days: {p} * {d} = {p * d} pages.",
                 f"With the next day: {p * d} + {last} = {p * d + last} pages.",
                 f"Left: {book} - {p * d + last} = {book - p * d - last}."]
        ans = book - p * d - last
    else:
        r, c, kids = rng.randint(2, 6), rng.randint(2, 6), rng.randint(2, 6)
        extra = rng.randint(0, 3)
        q = (f"{name} has {r} bags of {c * kids} {thing}. {name} keeps {extra} extra {thing} "
             f"aside and shares the bags' {thing} equally among {kids} children. How many "
             f"{thing} does each child get?")
        lines = [f"The bags hold {r} * {c * kids} = {r * c * kids} {thing}.",
                 f"Each child gets {r * c * kids} / {kids} = {r * c}."]
        ans = r * c
    return q, lines, str(ans), "The answer is \\boxed{%d}." % ans


# ---------------------------------------------------------------- Chinese word problems
def zh_problem(rng, level):
    name = rng.choice(ZH_NAMES)
    thing, unit = rng.choice(ZH_THINGS)
    t = rng.randrange(3) if level == 1 else rng.randrange(3, 6)
    if t == 0:
        n, k = rng.randint(2, 9), rng.randint(2, 12)
        g = rng.randint(1, n * k - 1)
        q = f"{name}买了{n}盒{thing}，每盒{k}{unit}，送给同学{g}{unit}。{name}还剩多少{unit}{thing}？"
        lines = [f"一共买了：{n} × {k} = {n * k}（{unit}）。",
                 f"送出后还剩：{n * k} - {g} = {n * k - g}（{unit}）。"]
        ans = n * k - g
    elif t == 1:
        n, p = rng.randint(2, 8), rng.randint(2, 15)
        m = n * p + rng.randint(0, 40)
        q = f"{name}带了{m}元去文具店，买了{n}本笔记本，每本{p}元。{name}还剩多少元？"
        lines = [f"笔记本一共花了：{n} × {p} = {n * p}（元）。",
                 f"还剩：{m} - {n * p} = {m - n * p}（元）。"]
        ans = m - n * p
    elif t == 2:
        a, k, b = rng.randint(6, 14), rng.randint(2, 5), rng.randint(1, 30)
        q = f"{name}今年{a}岁，爸爸的年龄是{name}的{k}倍还多{b}岁。爸爸今年多少岁？"
        lines = [f"{name}年龄的{k}倍是：{a} × {k} = {a * k}（岁）。",
                 f"再多{b}岁：{a * k} + {b} = {a * k + b}（岁）。"]
        ans = a * k + b
    elif t == 3:
        a, b, k = rng.randint(100, 500), rng.randint(2, 9), rng.randint(10, 30)
        c = rng.randint(1, a)
        q = f"图书馆原有{a}本书，又买来{b}箱新书，每箱{k}本，后来借出{c}本。图书馆现在有多少本书？"
        lines = [f"买来的新书：{b} × {k} = {b * k}（本）。",
                 f"加上原有的：{a} + {b * k} = {a + b * k}（本）。",
                 f"借出后还有：{a + b * k} - {c} = {a + b * k - c}（本）。"]
        ans = a + b * k - c
    elif t == 4:
        kids, per = rng.randint(2, 9), rng.randint(2, 9)
        bags = rng.choice([b for b in range(2, 7) if (kids * per) % b == 0] or [kids])
        each_bag = kids * per // bags
        q = (f"{bags}袋{thing}，每袋{each_bag}{unit}，平均分给{kids}个小朋友。每个小朋友分到"
             f"多少{unit}？")
        lines = [f"一共有：{bags} × {each_bag} = {kids * per}（{unit}）。",
                 f"每人分到：{kids * per} ÷ {kids} = {per}（{unit}）。"]
        ans = per
    else:
        a, x = rng.randint(2, 9), rng.randint(2, 30)
        b = rng.randint(1, 40)
        c = a * x + b
        q = f"一个数的{a}倍加上{b}等于{c}，这个数是多少？"
        lines = [f"设这个数为x，则{a}x + {b} = {c}。",
                 f"两边减去{b}：{c} - {b} = {c - b}，所以{a}x = {c - b}。",
                 f"两边除以{a}：{c - b} ÷ {a} = {x}，所以x = {x}。"]
        ans = x
    return q, lines, str(ans), f"答案是 {ans}"


# ---------------------------------------------------------------- assembling the files
EN_KINDS = [("arith", 1), ("arith", 2), ("arith", 3), ("frac", 1), ("frac", 2), ("frac", 3),
            ("eq", 1), ("eq", 2), ("eq", 3), ("word", 1), ("word", 2)]
ZH_KINDS = [("zh", 1), ("zh", 2)]
MAKERS = {"arith": arith_problem, "frac": frac_problem, "eq": eq_problem, "word": word_problem,
          "zh": zh_problem}


def wrong_answer(answer):
    """A wrong final answer for a rejected solution: the right one moved by 1..3 (a fraction's
    numerator moves)."""
    if answer.startswith("\\frac"):
        n, d = answer[len("\\frac{"):-1].split("}{")
        return "\\frac{%d}{%s}" % (int(n) + 1, d) if math.gcd(int(n) + 1, int(d)) == 1 else \
            "\\frac{%d}{%s}" % (int(n) + 2, d)
    return str(int(answer) + 1)


def problem_key(kind, level, prompt):
    """What makes two problems the same: the text, or for word problems (whose names and things
    vary) the kind, level and numbers, so no held-out word problem is a training one renamed."""
    if kind in ("word", "zh"):
        return (kind, level, tuple(re.findall(r"\d+", prompt)))
    return prompt


def make(lang, rng, sft_count=None):
    kinds = EN_KINDS if lang == "en" else ZH_KINDS
    sft_n, train_n, held_n = SIZES[lang]
    if sft_count is not None:
        sft_n = sft_count
    seen, rows = set(), []
    i = 0
    while len(rows) < sft_n + train_n + held_n:
        kind, level = kinds[i % len(kinds)]
        i += 1
        question, lines, answer, final = MAKERS[kind](rng, level)
        prompt = f"问：{question}\n解：" if lang == "zh" else f"Q: {question}\nA:"
        key = problem_key(kind, level, prompt)
        if key in seen:
            continue
        seen.add(key)
        completion = " " + "\n".join(lines + [final])
        rows.append({"prompt": prompt, "completion": completion, "reference": answer,
                     "kind": kind, "level": level, "final": final})
    held, train, sft = rows[:held_n], rows[held_n:held_n + train_n], rows[held_n + train_n:]
    return sft, train, held


def rejected(row):
    """The same working with the final answer wrong (the last line replaced)."""
    wrong = wrong_answer(row["reference"])
    body = row["completion"][: -len(row["final"])]
    if row["kind"] == "zh":
        return body + f"答案是 {wrong}"
    return body + "The answer is \\boxed{%s}." % wrong


def drill_rows(sft, seed):
    """Every working step "a op b = c" of the SFT completions as a row of its own (prompt
    "a op b =", completion " c"), in a seeded random order: the arithmetic facts alone, short rows
    that are cheap to train on. Made from the SFT rows only, so disjoint from nothing held out but
    the facts themselves (a held-out problem's steps are mostly facts the SFT rows also hold)."""
    step = re.compile(r"(?<![-\d])(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)\b")
    rows = [{"prompt": f"{a} {op} {b} =", "completion": f" {c}"}
            for row in sft for a, op, b, c in step.findall(row["completion"])
            if op != "/" and apply(op, int(a), int(b)) == int(c)
            or op == "/" and int(b) != 0 and int(a) == int(b) * int(c)]
    random.Random(f"{seed}-drill").shuffle(rows)
    return rows


def bucketed(rows, size, seed, window=64):
    """The rows in batches of `size` of similar length (bytes of prompt + completion): shuffled,
    sorted by length within windows of `window` batches, cut into batches, the batches shuffled.
    A stage with data.shuffle false and batch_size `size` then pads each batch to little more than
    its rows (the median row is ~180 bytes, the longest ~416)."""
    rng = random.Random(f"{seed}-bucket")
    rows = rows[:]
    rng.shuffle(rows)
    batches = []
    span = size * window
    for start in range(0, len(rows), span):
        chunk = sorted(rows[start:start + span], key=lambda r: len((r["prompt"] + r["completion"]).encode()))
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    last = batches.pop() if len(batches[-1]) < size else []  # a short batch goes last
    rng.shuffle(batches)
    return [row for batch in batches for row in batch] + last


def write(path, rows, keys):
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft", type=int, default=None,
                        help="English SFT rows (default %d)" % SIZES["en"][0])
    parser.add_argument("--bucket", type=int, default=0, metavar="B",
                        help="write the English SFT rows in batches of B rows of similar length "
                             "(for a stage with data.shuffle false and batch_size B)")
    parser.add_argument("--drill", action="store_true",
                        help="also write drill.jsonl: every 'a op b = c' step of the English SFT "
                             "rows as a row of its own (prompt 'a op b =', completion ' c')")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for lang, suffix in (("en", ""), ("zh", "_zh")):
        rng = random.Random(f"{args.seed}-{lang}")
        sft, train, held = make(lang, rng, args.sft if lang == "en" else None)
        if lang == "en" and args.drill:
            write(os.path.join(args.out, "drill.jsonl"), drill_rows(sft, args.seed),
                  ["prompt", "completion"])
            # The held-out solutions' steps, once each, as eval prompts: how many facts a model
            # knows (a bare right number grades 4 with the math grader). For evaluation only.
            facts = {r["prompt"]: r["completion"].strip()
                     for r in drill_rows([{"completion": h["completion"]} for h in held], args.seed)}
            write(os.path.join(args.out, "drill_heldout.jsonl"),
                  [{"prompt": p, "reference": c} for p, c in sorted(facts.items())], ["prompt", "reference"])
        if lang == "en" and args.bucket > 0:
            sft = bucketed(sft, args.bucket, args.seed)
        write(os.path.join(args.out, f"sft{suffix}.jsonl"), sft,
              ["prompt", "completion", "reference", "kind", "level"])
        for row in train + held:
            row["solution"] = row["completion"]
        write(os.path.join(args.out, f"train_prompts{suffix}.jsonl"), train,
              ["prompt", "reference", "solution", "kind", "level"])
        write(os.path.join(args.out, f"prompts{suffix}.jsonl"), held,
              ["prompt", "reference", "solution", "kind", "level"])
        pairs = [{"prompt": r["prompt"], "chosen": r["completion"], "rejected": rejected(r)}
                 for r in train]
        write(os.path.join(args.out, f"pairs{suffix}.jsonl"), pairs, ["prompt", "chosen", "rejected"])


if __name__ == "__main__":
    main()
