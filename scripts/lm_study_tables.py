#!/usr/bin/env python3
"""The language-model study's tables (scripts/lm_study.sh; README "Results: language models"),
read from the run folders' metrics.jsonl: mean ± sample sd over the seeds found (n = seeds).

  python3 scripts/lm_study_tables.py OUT [--check]

OUT is lm_study.sh's output folder (OUT/<task>/scenario-s<N>-seed<S>, ppo-seed<S>, ...). Prints
Markdown. --check: exit 1 unless every table of every task that ran has rows and every number
in it is finite (the --quick ctest). Standard library only.

Tables per task:
  1  per-token log-probs of the scenario's own chosen / rejected responses, all its pairs, before
     DPO (stage `before`) and after (`dpo`'s last row): eval/logps_{chosen,rejected}_per_token
  2  held-out level by generating and grading (eval/score_mean, eval/accuracy = share in the
     grader's top band) at DPO's step 1 and last step; pairs kept and their mean grades
  3  DPO (scenario 1) vs PPO rewarded by the grader: the same held-out evaluation
  4  RM vs DPO held-out pair accuracy (eval/pair_accuracy) over training: first, peak, last, mean
     |change| between evaluations, and the curve (mean over seeds at each evaluation)
  5  flex-beta and DPO+SFT vs DPO on the scenario-1 pairs: per-token change of chosen and rejected,
     held-out score and top-band share after
  6  gradient diagnostics during DPO (grad/*_log10, logps/*_per_token of the step's batch) at the
     first, middle and last step
"""
import glob
import json
import math
import os
import re
import statistics
import sys

SCENARIOS = {1: "1: chosen policy, rejected policy", 2: "2: chosen reference, rejected policy",
             3: "3: chosen policy, rejected other model", 4: "4: chosen reference, rejected other model"}


def rows_of(run):
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def completed(run):
    try:
        with open(os.path.join(run, "run.json")) as f:
            return json.load(f).get("status") == "completed"
    except (OSError, ValueError):
        return False


def stage_rows(rows, stage, metric=None):
    return [r for r in rows if r.get("stage") == stage and (metric is None or isinstance(r.get(metric), (int, float)))]


def first(rows, stage, metric):
    s = stage_rows(rows, stage, metric)
    return s[0][metric] if s else float("nan")


def last(rows, stage, metric):
    s = stage_rows(rows, stage, metric)
    return s[-1][metric] if s else float("nan")


def seed_of(path):
    m = re.search(r"seed(\d+)", path)
    return int(m.group(1)) if m else -1


def runs(pattern):
    """Completed run folders matching pattern, sorted by seed."""
    return sorted((p for p in glob.glob(pattern) if completed(p)), key=seed_of)


def fmt(values, digits=3):
    vals = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if not vals or len(vals) < len(values):
        return "nan"
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def pairs_count(pairs_run):
    path = os.path.join(pairs_run, "pairs", "nonempty.jsonl")  # what DPO trained on (lm_study.sh)
    if not os.path.exists(path):
        path = os.path.join(pairs_run, "pairs", "pairs.jsonl")
    if not os.path.exists(path):
        return float("nan"), float("nan"), float("nan")
    n, sc, sr = 0, 0.0, 0.0
    with open(path) as f:
        for line in f:
            if line.strip():
                j = json.loads(line)
                n += 1
                sc += j["score_chosen"]
                sr += j["score_rejected"]
    return n, (sc / n if n else float("nan")), (sr / n if n else float("nan"))


def loss_of(run):
    """The dpo stage's loss plugin from the run's resolved config.yaml (sweep children)."""
    try:
        text = open(os.path.join(run, "config.yaml")).read()
    except OSError:
        return "?"
    m = re.search(r"sweep_point:.*?plugin:\s*([a-z_]+)", text, re.S)
    if m:
        return m.group(1)
    return "?"


def task_tables(out, task):
    t = os.path.join(out, task)
    tables = []  # (title, header, rows)
    missing = []

    # Table 1 and 2
    t1, t2 = [], []
    for s in range(1, 5):
        rs = runs(os.path.join(t, f"scenario-s{s}-seed*"))
        if not rs:
            missing.append(f"scenario {s}")
            continue
        data = [rows_of(r) for r in rs]
        seeds = ",".join(str(seed_of(r)) for r in rs)
        pc = [pairs_count(os.path.join(t, f"pairs-s{s}-seed{seed_of(r)}")) for r in rs]
        cb = [first(d, "before", "eval/logps_chosen_per_token") for d in data]
        rb = [first(d, "before", "eval/logps_rejected_per_token") for d in data]
        ca = [last(d, "dpo", "eval/logps_chosen_per_token") for d in data]
        ra = [last(d, "dpo", "eval/logps_rejected_per_token") for d in data]
        t1.append([SCENARIOS[s], seeds, fmt([p[0] for p in pc], 0), fmt(cb), fmt(ca), fmt([a - b for a, b in zip(ca, cb)]),
                   fmt(rb), fmt(ra), fmt([a - b for a, b in zip(ra, rb)])])
        t2.append([SCENARIOS[s], seeds, fmt([p[1] for p in pc]), fmt([p[2] for p in pc]),
                   fmt([first(d, "dpo", "eval/score_mean") for d in data]),
                   fmt([last(d, "dpo", "eval/score_mean") for d in data]),
                   fmt([first(d, "dpo", "eval/accuracy") for d in data]),
                   fmt([last(d, "dpo", "eval/accuracy") for d in data])])
    tables.append(("Table 1: per-token log-probs of each scenario's own pairs, before and after DPO",
                   ["scenario", "seeds", "pairs", "chosen before", "chosen after", "Δ chosen", "rejected before",
                    "rejected after", "Δ rejected"], t1))
    tables.append(("Table 2: held-out level (generated and graded) at DPO's first and last step",
                   ["scenario", "seeds", "pair grade chosen", "pair grade rejected", "score step 1", "score after",
                    "top band step 1", "top band after"], t2))

    # Table 3
    t3 = []
    for label, pattern, stage in (("DPO (scenario 1 pairs)", "scenario-s1-seed*", "dpo"), ("PPO (grader reward)", "ppo-seed*", "ppo")):
        rs = runs(os.path.join(t, pattern))
        if stage == "dpo":  # over the seeds PPO ran with
            ppo_seeds = {seed_of(r) for r in runs(os.path.join(t, "ppo-seed*"))}
            rs = [r for r in rs if seed_of(r) in ppo_seeds]
        if not rs:
            missing.append(label)
            continue
        data = [rows_of(r) for r in rs]
        t3.append([label, ",".join(str(seed_of(r)) for r in rs),
                   fmt([first(d, stage, "eval/score_mean") for d in data]), fmt([last(d, stage, "eval/score_mean") for d in data]),
                   fmt([first(d, stage, "eval/accuracy") for d in data]), fmt([last(d, stage, "eval/accuracy") for d in data]),
                   fmt([last(d, stage, "eval/sample_kl_per_token") for d in data])])
    tables.append(("Table 3: DPO vs PPO, held-out mean grade and share in the grader's top band",
                   ["method", "seeds", "score step 1", "score after", "top band step 1", "top band after",
                    "sample KL/token after"], t3))

    # Table 4
    t4 = []
    rs = runs(os.path.join(t, "rm-vs-dpo-seed*"))
    if not rs:
        missing.append("RM vs DPO")
    for stage, label in (("rm", "reward model (r_w > r_l)"), ("dpo", "DPO implicit reward (h_w > h_l)")):
        if not rs:
            break
        curves = []
        for r in rs:
            s = stage_rows(rows_of(r), stage, "eval/pair_accuracy")
            curves.append([(x["step"], x["eval/pair_accuracy"]) for x in s])
        firsts = [c[0][1] if c else float("nan") for c in curves]
        peaks = [max(v for _, v in c) if c else float("nan") for c in curves]
        lasts = [c[-1][1] if c else float("nan") for c in curves]
        changes = [statistics.fmean(abs(b[1] - a[1]) for a, b in zip(c, c[1:])) if len(c) > 1 else float("nan") for c in curves]
        steps = [x for x, _ in curves[0]] if curves else []
        curve = " ".join(f"{st}:{statistics.fmean(c[i][1] for c in curves):.2f}" for i, st in enumerate(steps)
                         if all(len(c) > i for c in curves))
        t4.append([label, ",".join(str(seed_of(r)) for r in rs), fmt(firsts), fmt(peaks), fmt(lasts),
                   fmt([l - p for l, p in zip(lasts, peaks)]), fmt(changes), curve])
    tables.append(("Table 4: held-out pair accuracy over training, reward model vs DPO",
                   ["model", "seeds", "first eval", "peak", "last", "last - peak", "mean abs change", "curve (step:accuracy, seed mean)"], t4))

    # Table 5
    t5 = []
    children = [c for c in glob.glob(os.path.join(t, "losses-seed*", "*")) if completed(c)]
    # Plain DPO is scenario 1, over the seeds the other losses ran with.
    loss_seeds = {seed_of(c) for c in children}
    groups = [("dpo", [r for r in runs(os.path.join(t, "scenario-s1-seed*")) if seed_of(r) in loss_seeds])]
    for name in ("flex_dpo", "dpo_sft"):
        groups.append((name, sorted((c for c in children if loss_of(c) == name), key=seed_of)))
    for name, rs in groups:
        if not rs:
            missing.append(f"loss {name}")
            continue
        data = [rows_of(r) for r in rs]
        dc = [last(d, "dpo", "eval/logps_chosen_per_token") - first(d, "before", "eval/logps_chosen_per_token") for d in data]
        dr = [last(d, "dpo", "eval/logps_rejected_per_token") - first(d, "before", "eval/logps_rejected_per_token") for d in data]
        label = {"dpo": "DPO β 0.1", "flex_dpo": "flex β_w 0.1, β_l 0.01", "dpo_sft": "DPO+SFT β 0.1, sft 1.0"}[name]
        t5.append([label, ",".join(str(seed_of(r)) for r in rs), fmt(dc), fmt(dr),
                   fmt([last(d, "dpo", "eval/score_mean") for d in data]), fmt([last(d, "dpo", "eval/accuracy") for d in data])])
    tables.append(("Table 5: flex-beta and DPO+SFT vs DPO (scenario-1 pairs)",
                   ["loss", "seeds", "Δ chosen logp/token", "Δ rejected logp/token", "score after", "top band after"], t5))

    # Table 6
    t6 = []
    rs = runs(os.path.join(t, "gradients-seed*"))
    if not rs:
        missing.append("gradients")
    else:
        data = [stage_rows(rows_of(r), "dpo", "grad/ratio_log10") for r in rs]
        for where in ("first", "middle", "last"):
            picked = []
            for d in data:
                if not d:
                    picked.append({})
                    continue
                picked.append(d[0] if where == "first" else d[len(d) // 2] if where == "middle" else d[-1])
            get = lambda m: fmt([p.get(m, float("nan")) for p in picked])
            t6.append([where, ",".join(str(seed_of(r)) for r in rs), fmt([p.get("step", float("nan")) for p in picked], 0),
                       get("grad/chosen_log10"), get("grad/rejected_log10"), get("grad/ratio_log10"),
                       get("logps/chosen_per_token"), get("logps/rejected_per_token"), get("rewards/margins")])
    tables.append(("Table 6: gradient diagnostics during DPO (the step's batch)",
                   ["row", "seeds", "step", "grad/chosen_log10", "grad/rejected_log10", "grad/ratio_log10",
                    "logps/chosen_per_token", "logps/rejected_per_token", "rewards/margins"], t6))
    return tables, missing


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    check = "--check" in sys.argv[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = args[0]
    bad = []
    ran = 0
    for task in ("poem", "math", "slogan"):
        if not os.path.isdir(os.path.join(out, task)):
            continue
        ran += 1
        tables, missing = task_tables(out, task)
        print(f"## {task}\n")
        for title, header, rows in tables:
            print(f"### {title}\n")
            if rows:
                print(table(header, rows))
            else:
                print("(not run)")
            print()
            if not rows:
                bad.append(f"{task}: {title}: no rows")
            for r in rows:
                for c in r[2:]:
                    if re.search(r"\bnan\b|\binf\b", str(c)):
                        bad.append(f"{task}: {title}: {r[0]}: {c}")
        if missing:
            print("Not run: " + ", ".join(missing) + "\n")
    if check:
        if ran == 0:
            bad.append("no task ran")
        for b in bad:
            print("check: " + b, file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
