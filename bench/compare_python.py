#!/usr/bin/env python3
"""prefengine against eager PyTorch in Python, the same work on the same machine in one run.

    /usr/bin/python3 bench/compare_python.py [--repeats 3] [--only toy|transformer]

Runs the toy DPO experiment (configs/toy/dpo.yaml: SFT 1000 steps, then DPO 3000 steps, batch 16,
Adam, one thread) with `build/bin/prefengine run` and with bench/python/toy_dpo.py (Debian's
python3-torch: the same LibTorch underneath), alternating, and prints steps/s per stage (best of
the repeats), their ratio, and the peak RSS of each process. Then the same for one DPO stage on the
Llama-style transformer at two sizes (bench/python/transformer_dpo.py is the Python side), the
machine's fp32 matmul peak (torch.mm, the same OpenBLAS as LibTorch, at the same thread count) and
the MFU of the transformer step. Needs a built tree (scripts/setup.sh).
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
    print("py env: python with the engine's runtime settings (engine/cli/main.cpp)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=("toy", "transformer"))
    args = ap.parse_args()
    if args.only != "transformer":
        toy_table(args)
    if args.only != "toy":
        if args.only is None:
            print()
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import compare_transformer  # noqa: E402  (a sibling: the transformer tables, peak and MFU)
        compare_transformer.report(run, args.repeats)


if __name__ == "__main__":
    main()
