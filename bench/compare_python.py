#!/usr/bin/env python3
"""prefengine against eager PyTorch in Python, the same work on the same machine in one run.

    python3 bench/compare_python.py [--repeats 3]

Runs the toy DPO experiment (configs/toy/dpo.yaml: SFT 1000 steps, then DPO 3000 steps, batch 16,
Adam, one thread) with `build/bin/prefengine run` and with bench/python/toy_dpo.py (Debian's
python3-torch: the same LibTorch underneath), alternating, and prints steps/s per stage (best of
the repeats), their ratio, and the peak RSS of each process. Needs a built tree (scripts/setup.sh).
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


def python_toy(tmp):
    wall, rss, out = run([PYTHON, "bench/python/toy_dpo.py", "--out", os.path.join(tmp, "py.jsonl"),
                          "--threads", "1"])
    stages = {s["name"]: s["steps_per_second"] for s in json.loads(out.strip().splitlines()[-1])["stages"]}
    return stages, wall, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    best = {"engine": {}, "python": {}}
    rss = {"engine": 0.0, "python": 0.0}
    wall = {"engine": 1e9, "python": 1e9}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, fn in (("engine", engine_toy), ("python", python_toy)):
                stages, w, r = fn(tmp)
                for k, v in stages.items():
                    best[name][k] = max(best[name].get(k, 0.0), v)
                rss[name] = max(rss[name], r)
                wall[name] = min(wall[name], w)
    print(f"toy DPO (configs/toy/dpo.yaml), best of {args.repeats}, {os.cpu_count()} cores, 1 thread")
    print(f"{'stage':<8}{'prefengine steps/s':>20}{'python steps/s':>18}{'ratio':>8}")
    for stage in ("sft", "dpo"):
        e, p = best["engine"][stage], best["python"][stage]
        print(f"{stage:<8}{e:>20.1f}{p:>18.1f}{e / p:>7.2f}x")
    print(f"{'process':<8}{'wall s (incl. start)':>20}{'peak RSS MiB':>18}")
    for name in ("engine", "python"):
        print(f"{name:<8}{wall[name]:>20.2f}{rss[name]:>18.1f}")


if __name__ == "__main__":
    main()
