#!/usr/bin/env python3
"""prefengine against eager PyTorch in Python, the same work on the same machine in one run.

    /usr/bin/python3 bench/compare_python.py [--repeats 3] [--only startup|toy|transformer|generation|sweep]

Every section alternates the engine and Python in the same invocation and reports best (and, where
measured, median) figures; then one table of issue 18's targets against this run's figures.
- startup (bench/startup_bench.py): whole-process start-up against dlopen of libtorch_cpu and
  Python's `import torch`;
- toy: configs/toy/dpo.yaml (SFT 1000 steps, then DPO 3000 steps, batch 16, Adam, one thread) with
  `build/bin/prefengine run` and bench/python/toy_dpo.py: steps/s per stage, wall time, peak RSS;
- transformer (bench/compare_transformer.py): one DPO stage of the Llama-style transformer at three
  sizes, the fp32 matmul peak and the MFU;
- generation (bench/generation_bench.py): KV-cache generation, new tokens/s, and a pairs stage;
- sweep (bench/sweep_bench.py): configs/toy/study.yaml's 60 runs, 2 at a time, against the same
  runs as Python processes.
Python is Debian's python3-torch (the same LibTorch and OpenBLAS). Needs a built tree
(scripts/setup.sh) and `apt-get install python3-torch`.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"  # Debian's interpreter, where python3-torch lives


def run(cmd):
    """Runs cmd, returns (wall seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read()
    err = proc.stderr.read()
    if status != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, out


def engine_toy(tmp):
    out_dir = os.path.join(tmp, "run")
    shutil.rmtree(out_dir, ignore_errors=True)
    wall, rss, _ = run([os.path.join(ROOT, "build/bin/prefengine"), "run", "configs/toy/dpo.yaml",
                        "--output", out_dir, "--log-level", "warn"])
    with open(os.path.join(out_dir, "run.json")) as f:
        stages = {s["name"]: s["steps_per_second"] for s in json.load(f)["stages"]}
    return stages, wall, rss


def python_toy(tmp, same_env=False):
    prefix = []
    if same_env:  # Python with the runtime settings the engine gives itself (engine/cli/main.cpp)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import compare_transformer  # noqa: E402
        prefix = ["env"] + [f"{k}={v}" for k, v in compare_transformer.engine_env().items()]
    wall, rss, out = run(prefix + [PYTHON, "bench/python/toy_dpo.py", "--out", os.path.join(tmp, "py.jsonl"),
                                   "--threads", "1"])
    stages = {s["name"]: s["steps_per_second"] for s in json.loads(out.strip().splitlines()[-1])["stages"]}
    return stages, wall, rss


def toy_table(args):
    sides = ("engine", "python", "python_env")
    best = {side: {} for side in sides}
    rss = {side: 0.0 for side in sides}
    wall = {side: 1e9 for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name in sides:
                stages, w, r = engine_toy(tmp) if name == "engine" else python_toy(tmp, name == "python_env")
                for k, v in stages.items():
                    best[name][k] = max(best[name].get(k, 0.0), v)
                rss[name] = max(rss[name], r)
                wall[name] = min(wall[name], w)
    print(f"toy DPO (configs/toy/dpo.yaml), best of {args.repeats}, {os.cpu_count()} cores, 1 thread; steps/s")
    print(f"{'stage':<8}{'prefengine':>12}{'python':>10}{'ratio':>8}{'py env':>10}{'ratio':>8}")
    for stage in ("sft", "dpo"):
        e, p, pe = best["engine"][stage], best["python"][stage], best["python_env"][stage]
        print(f"{stage:<8}{e:>12.1f}{p:>10.1f}{e / p:>7.2f}x{pe:>10.1f}{e / pe:>7.2f}x")
    print(f"{'process':<11}{'wall s (incl. start)':>21}{'peak RSS MiB':>14}")
    for name in sides:
        print(f"{name:<11}{wall[name]:>21.2f}{rss[name]:>14.1f}")
    print("py env: python with the engine's runtime settings (engine/cli/runtime_defaults.h)")
    return {"sft": best["engine"]["sft"] / best["python"]["sft"], "dpo": best["engine"]["dpo"] / best["python"]["dpo"],
            "process": wall["python"] / wall["engine"]}


SECTIONS = ("startup", "toy", "transformer", "generation", "sweep")


def sibling(name):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    return __import__(name)


def verdict(value, target, at_least):
    if target is None or value is None:
        return ""
    return "met" if (value >= target if at_least else value <= target) else "MISSED"


def summary(results):
    """Issue 18's targets against this run's figures (best of the repeats; ratios engine : Python)."""
    lines = []  # (what, best, median or None, target text, target, at_least)
    if "startup" in results:
        by_name = {r["name"]: r for r in results["startup"]}
        for name in ("validate / dlopen", "validate / import torch", "--version / import torch"):
            r = by_name[name]
            lines.append((f"start-up: {name}", r["best"], r["median"], f"<= {r['target']:.2f}", r["target"], False))
    if "toy" in results:
        t = results["toy"]
        lines.append(("toy: SFT stage rate, engine / python", t["sft"], None, ">= 5", 5.0, True))
        lines.append(("toy: DPO stage rate, engine / python", t["dpo"], None, ">= 5", 5.0, True))
        lines.append(("toy: whole process, python s / engine s", t["process"], None, ">= 3", 3.0, True))
    if "sweep" in results:
        for r in results["sweep"]:
            if r["side"].startswith("engine"):
                lines.append((f"sweep: {r['side']}, python s / engine s", r["speedup_vs_python"], None, "", None, True))
    if "generation" in results:
        for r in results["generation"]:
            if "python" not in r:
                lines.append((f"generation: {r['name']} ({r['unit']})", r["engine"], r["engine_median"], "", None, True))
                continue
            small_b1 = r["name"].split()[:2] == ["lm", "b1"]
            target = 2.0 if small_b1 else 1.0
            lines.append((f"generation: {r['name']}, engine / python", r["ratio"], r["ratio_median"],
                          f">= {target:g}" + ("" if small_b1 else " (parity)"), target, True))
    print("issue 18 targets (best of the repeats; median in brackets where measured)")
    print(f"{'what':<58}{'measured':>20}{'target':>16}{'':>8}")
    for what, best, median, text, target, at_least in lines:
        measured = f"{best:.2f}" + (f" ({median:.2f})" if median is not None else "")
        print(f"{what:<58}{measured:>20}{text:>16}{verdict(best, target, at_least):>8}")


def main():
    ap = argparse.ArgumentParser(description="prefengine against eager PyTorch: every benchmark of bench/README.md "
                                             "and issue 18's targets, in one run")
    ap.add_argument("--repeats", type=int, default=3, help="alternating repeats of the toy, transformer and "
                    "generation sections (start-up: 10 x this / 3; the sweep: 1)")
    ap.add_argument("--only", choices=SECTIONS, action="append",
                    help="run only these sections (repeatable); default: all")
    args = ap.parse_args()
    if args.repeats < 1:
        sys.exit("--repeats: expected at least 1")
    only = args.only or list(SECTIONS)
    results = {}
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"bench/compare_python.py, {stamp}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    if "startup" in only:
        startup = sibling("startup_bench")
        results["startup"] = startup.rows(max(3, args.repeats * 10 // 3))
        print("\nstart-up (whole processes, alternating; seconds)")
        startup.print_table(results["startup"])
    if "toy" in only:
        print()
        results["toy"] = toy_table(args)
    if "transformer" in only:
        print()
        sibling("compare_transformer").report(run, args.repeats)
    if "generation" in only:
        generation = sibling("generation_bench")
        results["generation"] = generation.rows(args.repeats)
        print()
        generation.print_table(results["generation"], args.repeats)
    if "sweep" in only:
        sweep = sibling("sweep_bench")
        results["sweep"] = sweep.rows(1)
        print()
        sweep.print_table(results["sweep"])
    print()
    summary(results)
    print(f"finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
