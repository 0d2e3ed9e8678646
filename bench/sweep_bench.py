#!/usr/bin/env python3
"""The toy study's sweep (configs/toy/study.yaml: 4 SFT scenarios x 5 preference losses x 3 seeds =
60 runs of 1000 SFT + 2000 preference steps, held-out pairs scored at every metrics row), wall time
of the whole sweep three ways, 2 runs at a time (the machine's 2 cores):

  engine, batched       `prefengine run configs/toy/study.yaml --jobs 2` (auto: toy_mlp runs share
                        their worker processes, so LibTorch loads once per worker)
  engine, 1 per process the same with `--runs-per-process 1` (a `prefengine run` process per run)
  python processes      bench/python/toy_dpo.py once per run (the same data, loss, options, steps,
                        eval and seed), 2 processes at a time

    /usr/bin/python3 bench/sweep_bench.py [--repeats 1] [--jobs 2] [--quick]

From the repository root after building prefengine_cli and the toy_mlp, sft, dpo, flex_dpo,
dpo_sft, ipo and slic plugins. The sides alternate within each repeat; the table has the best and
the median wall time over the repeats and the ratios against Python. --quick runs 50 + 50 steps
per run (a smoke test of the script, not a figure). `rows(repeats)` returns the table's rows for a
combined table.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"  # Debian's interpreter with python3-torch: the engine's LibTorch
STUDY = "configs/toy/study.yaml"
ENGINE = os.path.join(ROOT, "build/bin/prefengine")
QUICK_STEPS = 50

# The study's loss options as bench/python/toy_dpo.py's flags.
LOSS_FLAGS = {"beta": "--beta", "beta_chosen": "--beta-chosen", "beta_rejected": "--beta-rejected",
              "sft_weight": "--sft-weight", "tau": "--tau", "delta": "--delta", "lambda": "--lambda"}


def study_runs(quick):
    """The study's 60 runs as toy_dpo.py argument lists (after checking that the study's fixed
    settings are the ones toy_dpo.py hard-codes)."""
    with open(os.path.join(ROOT, STUDY)) as f:
        study = yaml.safe_load(f)
    sft, pref = study["stages"]
    expected = [(study["model"].get("hidden"), 64), (study.get("threads"), 1), (sft["batch_size"], 4),
                (pref["batch_size"], 16), (sft["optimizer"]["lr"], 1e-2), (pref["optimizer"]["lr"], 1e-3),
                (sft["log_every"], 100), (pref["log_every"], 20)]
    if any(a != b for a, b in expected) or set(study["sweep"]) != {"stages.sft.data.path", "stages.pref.loss"}:
        sys.exit(f"{STUDY}: its model, batch sizes, learning rates, log steps or sweep axes are no longer the "
                 "ones bench/python/toy_dpo.py hard-codes; update the script")
    steps = ["--sft-steps", str(QUICK_STEPS if quick else sft["steps"]),
             "--dpo-steps", str(QUICK_STEPS if quick else pref["steps"])]
    runs = []
    for data in study["sweep"]["stages.sft.data.path"]:
        for loss in study["sweep"]["stages.pref.loss"]:
            flags = ["--loss", loss["plugin"]]
            for key, value in loss.items():
                if key != "plugin":
                    flags += [LOSS_FLAGS[key], str(value)]
            for seed in study["seeds"]:
                runs.append(["--sft-data", data, "--pairs", pref["data"]["path"], "--eval-pairs", pref["eval"]["path"],
                             "--seed", str(seed), "--threads", "1"] + steps + flags)
    return runs


def engine_sweep(tmp, jobs, per_process, quick, expected_runs):
    out = os.path.join(tmp, "engine")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [ENGINE, "run", STUDY, "--jobs", str(jobs), "--output", out, "--log-level", "warn"]
    if per_process is not None:
        cmd += ["--runs-per-process", str(per_process)]
    if quick:
        cmd += ["--set", f"stages.sft.steps={QUICK_STEPS}", "--set", f"stages.pref.steps={QUICK_STEPS}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "run.json")) as f:
        status = json.load(f)
    if status.get("completed") != expected_runs:
        sys.exit(f"{out}/run.json: expected {expected_runs} completed runs, got {status.get('completed')}")
    return wall


def python_sweep(tmp, jobs, runs):
    out = os.path.join(tmp, "python")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)

    def one(i):
        cmd = [PYTHON, "bench/python/toy_dpo.py", "--out", os.path.join(out, f"{i}.jsonl")] + runs[i]
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, i) for i in range(len(runs))]:
            future.result()
    return time.perf_counter() - start


SIDES = (("engine, batched (auto)", "engine_batched"), ("engine, 1 run per process", "engine_per_process"),
         ("python processes", "python"))


def measure(repeats, jobs=2, quick=False):
    """Wall seconds per side, one list of `repeats` values each, the sides alternating."""
    runs = study_runs(quick)
    walls = {key: [] for _, key in SIDES}
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        for _ in range(repeats):
            walls["engine_batched"].append(engine_sweep(tmp, jobs, None, quick, len(runs)))
            walls["engine_per_process"].append(engine_sweep(tmp, jobs, 1, quick, len(runs)))
            walls["python"].append(python_sweep(tmp, jobs, runs))
    return len(runs), walls


def rows(repeats, jobs=2, quick=False):
    """The table's rows: one dict per side (wall seconds best and median, runs per second, and the
    speed-up against the Python processes and against one run per process, from the best times)."""
    n, walls = measure(repeats, jobs, quick)
    python_best = min(walls["python"])
    per_process_best = min(walls["engine_per_process"])
    out = []
    for label, key in SIDES:
        best = min(walls[key])
        out.append({"bench": "sweep", "what": f"{STUDY}, {n} runs, {jobs} at a time" + (" (quick)" if quick else ""),
                    "side": label, "repeats": repeats, "wall_s_best": best,
                    "wall_s_median": statistics.median(walls[key]), "runs_per_s": n / best,
                    "speedup_vs_python": python_best / best, "speedup_vs_per_process": per_process_best / best})
    return out


def print_table(table):
    first = table[0]
    print(f"sweep {first['what']}: wall s, best / median of {first['repeats']}")
    print(f"{'side':<28}{'best s':>9}{'median s':>10}{'runs/s':>8}{'vs python':>11}{'vs 1/proc':>11}")
    for r in table:
        print(f"{r['side']:<28}{r['wall_s_best']:>9.2f}{r['wall_s_median']:>10.2f}{r['runs_per_s']:>8.2f}"
              f"{r['speedup_vs_python']:>10.2f}x{r['speedup_vs_per_process']:>10.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time, each side (default 2)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} + {QUICK_STEPS} steps a run: a smoke test")
    args = ap.parse_args()
    if not os.path.exists(ENGINE):
        sys.exit(f"{ENGINE}: not built (cmake --build build --target prefengine_cli and the plugins)")
    print_table(rows(args.repeats, args.jobs, args.quick))


if __name__ == "__main__":
    main()
