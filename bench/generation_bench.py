"""KV-cache generation: the engine against eager PyTorch, then pair building end to end.

    /usr/bin/python3 bench/generation_bench.py [--repeats 3] [--no-pairs] [--threads 2]
    /usr/bin/python3 bench/generation_bench.py --decode-ab [--repeats 3]

from the repository root, after building `generation_bench`, `prefengine_cli` and the
`transformer` and `math` plugins (Release).

1. New tokens/s of the engine's generation (build/bench/generation_bench: the transformer plugin's
   core through prefengine::generate) against bench/python/generate.py (eager PyTorch, Debian's
   python3-torch: the same LibTorch and OpenBLAS), both loading the same weights (written once by
   `generation_bench write` as config.json + model.safetensors) and the same 32-token prompts, 64
   new tokens, batch 1 and 16, greedy and sampled (temperature 1, no top-k/p), 2 threads, both
   processes started with the engine's runtime settings (compare_transformer.engine_env()). Each
   side times the whole generation (prefill + decode) and nothing else; every process makes one
   warm-up run and 3 timed ones; the sides alternate (engine, Python, engine, ...) `--repeats`
   times; best and median over all timed runs. Greedy rows check that both sides generated the
   same ids ("ids": same / DIFFERENT); sampled rows report whether the draws coincided too (same
   generator seed, same LibTorch: they usually do). "cpu ratio": the same rates per second of
   process CPU time (every thread), best against best: less sensitive than wall time to other
   processes taking the cores.
   Shapes: "lm" = configs/lm/onpolicy.yaml's model (byte vocabulary 259, hidden 256, intermediate
   688, 4 layers, 4 heads, tied embeddings); "large" = bench/compare_transformer.py's large size
   (vocabulary 4000, hidden 512, intermediate 1376, 6 layers, 8 heads / 4 kv heads, untied).
   Weights: normal(0, 0.08), norm gains 1 (random: the figures do not depend on what is generated,
   there is no EOS).
2. Pair building end to end: a `pairs` stage (configs/lm/onpolicy.yaml's: the lm model, 4 samples
   of up to 28 new tokens per prompt at temperature 1, sampling batch 16, 32 prompts a step) on the
   math task's training prompts (configs/lm/math/train_prompts.jsonl, the first 64) graded by the
   math grader, run with `prefengine run`: samples generated and graded per second of the stage
   (run.json's stage seconds; random weights, so every sample runs to 28 tokens). Engine only.

With `--decode-ab`, instead: the same rows and the pairs stage with the transformer's fused
one-token decode step (the default) against its operator path (model option `fused_decode: false`;
generation_bench's DECODE argument `ops`), both sides engine processes, alternating.

`rows(repeats, pairs=True, threads=2)` returns the table's rows as dicts (for a combined table).
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from compare_transformer import engine_env  # noqa: E402

PYTHON = "/usr/bin/python3"
BENCH = os.path.join(ROOT, "build/bench/generation_bench")
PREFENGINE = os.path.join(ROOT, "build/bin/prefengine")
THREADS, PROMPT, NEW_TOKENS, RUNS_PER_PROCESS = 2, 32, 64, 3
SHAPES = [
    # name, vocab, hidden, intermediate, layers, heads, kv heads, tied
    ("lm", 259, 256, 688, 4, 4, 4, True),
    ("large", 4000, 512, 1376, 6, 8, 4, False),
]
BATCHES = [1, 16]
MODES = [("greedy", 0.0), ("sampled", 1.0)]
PAIRS_PROMPTS, PAIRS_N, PAIRS_NEW = 64, 4, 28


def run(cmd):
    env = dict(os.environ, **engine_env())
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_shape(tmp, shape):
    name, vocab, hidden, inter, layers, heads, kv, tied = shape
    model = os.path.join(tmp, name)
    subprocess.run([BENCH, "write", model, str(vocab), str(hidden), str(inter), str(layers), str(heads), str(kv),
                    "1" if tied else "0", "0"], cwd=ROOT, env=dict(os.environ, **engine_env()), check=True)
    rng = random.Random(0)
    prompts = os.path.join(tmp, f"prompts_{name}.txt")
    with open(prompts, "w") as f:
        for _ in range(max(BATCHES)):
            f.write(" ".join(str(rng.randrange(1, vocab)) for _ in range(PROMPT)) + "\n")
    return model, prompts


def generation_rows(tmp, repeats):
    rows = []
    for shape in SHAPES:
        model, prompts = write_shape(tmp, shape)
        for batch in BATCHES:
            for mode, temperature in MODES:
                times = {"engine": [], "python": []}
                cpu = {"engine": [], "python": []}
                same = True
                for _ in range(repeats):
                    ids = {}
                    for side in ("engine", "python"):
                        ids[side] = os.path.join(tmp, f"ids_{side}.txt")
                        if side == "engine":
                            cmd = [BENCH, "run", model, prompts, str(batch), str(NEW_TOKENS), str(temperature),
                                   str(RUNS_PER_PROCESS), str(THREADS), ids[side]]
                        else:
                            cmd = [PYTHON, "bench/python/generate.py", "--model", model, "--prompts", prompts,
                                   "--batch", str(batch), "--new-tokens", str(NEW_TOKENS), "--temperature",
                                   str(temperature), "--reps", str(RUNS_PER_PROCESS), "--threads", str(THREADS),
                                   "--ids", ids[side]]
                        result = run(cmd)
                        times[side] += [result["new_tokens"] / s for s in result["seconds"]]
                        cpu[side] += [result["new_tokens"] / s for s in result["cpu_seconds"]]
                    with open(ids["engine"]) as a, open(ids["python"]) as b:
                        same = same and a.read() == b.read()
                e, p = times["engine"], times["python"]
                rows.append({"name": f"{shape[0]} b{batch} {mode}", "unit": "new tokens/s",
                             "engine": max(e), "python": max(p), "ratio": max(e) / max(p),
                             "engine_median": statistics.median(e), "python_median": statistics.median(p),
                             "ratio_median": statistics.median(e) / statistics.median(p),
                             "engine_cpu": max(cpu["engine"]), "python_cpu": max(cpu["python"]),
                             "ratio_cpu": max(cpu["engine"]) / max(cpu["python"]),
                             "ids": "same" if same else "DIFFERENT"})
    return rows


def pairs_rows(tmp, repeats, fused_decode=True):
    experiment = os.path.join(tmp, "pairs.yaml")
    with open(experiment, "w") as f:
        f.write(f"""name: bench-pairs
seed: 0
threads: {THREADS}
tokenizer: {{kind: byte}}
model: {{plugin: transformer, vocab_size: 259, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4,
         num_attention_heads: 4, max_position_embeddings: 128, tie_word_embeddings: true,
         fused_decode: {"true" if fused_decode else "false"}}}
stages:
  - name: pairs
    kind: pairs
    data: {{path: {os.path.join(ROOT, 'configs/lm/math/train_prompts.jsonl')}, max_records: {PAIRS_PROMPTS}}}
    grader: {{plugin: math}}
    sampling: {{n: {PAIRS_N}, max_new_tokens: {PAIRS_NEW}, temperature: 1.0, batch_size: 16}}
    batch_size: 32
""")
    rates = []
    for _ in range(repeats):
        out = os.path.join(tmp, "pairs_run")
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([PREFENGINE, "run", experiment, "--output", out, "--log-level", "warn"], cwd=ROOT,
                       env=dict(os.environ, **engine_env()), check=True, capture_output=True)
        with open(os.path.join(out, "run.json")) as f:
            stage = json.load(f)["stages"][0]
        rates.append(PAIRS_PROMPTS * PAIRS_N / stage["seconds"])
    return [{"name": f"pairs stage (math, {PAIRS_PROMPTS} prompts x {PAIRS_N})", "unit": "samples/s",
             "engine": max(rates), "engine_median": statistics.median(rates), "rates": rates}]


def decode_ab_rows(tmp, repeats):
    """The fused one-token decode step against the transformer's operator path (fused_decode: false),
    both engine processes, alternating; the pairs stage likewise."""
    rows = []
    for shape in SHAPES:
        model, prompts = write_shape(tmp, shape)
        for batch in BATCHES:
            for mode, temperature in MODES:
                rates = {"fused": [], "ops": []}
                ids = {}
                for _ in range(repeats):
                    for decode in ("fused", "ops"):
                        ids[decode] = os.path.join(tmp, f"ids_{decode}.txt")
                        result = run([BENCH, "run", model, prompts, str(batch), str(NEW_TOKENS), str(temperature),
                                      str(RUNS_PER_PROCESS), str(THREADS), ids[decode], decode])
                        rates[decode] += [result["new_tokens"] / s for s in result["seconds"]]
                with open(ids["fused"]) as a, open(ids["ops"]) as b:
                    same = a.read() == b.read()
                rows.append({"name": f"{shape[0]} b{batch} {mode}", "unit": "new tokens/s", "fused": rates["fused"],
                             "ops": rates["ops"], "ids": "same" if same else "DIFFERENT"})
    pairs = {}
    for decode in ("fused", "ops"):
        pairs[decode] = pairs_rows(tmp, repeats, fused_decode=decode == "fused")[0]
    rows.append({"name": pairs["fused"]["name"], "unit": "samples/s", "fused": pairs["fused"]["rates"],
                 "ops": pairs["ops"]["rates"], "ids": ""})
    return rows


def print_decode_ab(table, repeats):
    print(f"fused decode step against the operator path (model option fused_decode: false), engine only, "
          f"{repeats} alternating processes; best (median)")
    print(f"{'row':<36}{'unit':>14}{'fused':>18}{'operators':>18}{'ratio':>16}{'ids':>6}")
    for r in table:
        f, o = r["fused"], r["ops"]
        ratio = f"{max(f) / max(o):.2f}x ({statistics.median(f) / statistics.median(o):.2f}x)"
        print(f"{r['name']:<36}{r['unit']:>14}{f'{max(f):.1f} ({statistics.median(f):.1f})':>18}"
              f"{f'{max(o):.1f} ({statistics.median(o):.1f})':>18}{ratio:>16}{r['ids']:>6}")


def rows(repeats=3, pairs=True, threads=2):
    global THREADS
    THREADS = threads
    with tempfile.TemporaryDirectory() as tmp:
        out = generation_rows(tmp, repeats)
        if pairs:
            out += pairs_rows(tmp, repeats)
    return out


def print_table(table, repeats):
    print(f"KV-cache generation, prompt {PROMPT} + {NEW_TOKENS} new tokens, {THREADS} threads, engine settings on "
          f"both sides; {repeats} alternating processes x {RUNS_PER_PROCESS} runs; best (median)")
    print(f"{'row':<36}{'unit':>14}{'engine':>18}{'python':>18}{'ratio':>16}{'cpu ratio':>10}{'ids':>6}")
    for r in table:
        engine = f"{r['engine']:.1f} ({r['engine_median']:.1f})"
        if "python" in r:
            python = f"{r['python']:.1f} ({r['python_median']:.1f})"
            ratio = f"{r['ratio']:.2f}x ({r['ratio_median']:.2f}x)"
            print(f"{r['name']:<36}{r['unit']:>14}{engine:>18}{python:>18}{ratio:>16}{r['ratio_cpu']:>9.2f}x"
                  f"{r['ids']:>6}")
        else:
            print(f"{r['name']:<36}{r['unit']:>14}{engine:>18}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-pairs", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-ab", action="store_true",
                    help="instead: the fused decode step against the operator path, engine only")
    a = ap.parse_args()
    if a.decode_ab:
        global THREADS
        THREADS = a.threads
        with tempfile.TemporaryDirectory() as tmp:
            print_decode_ab(decode_ab_rows(tmp, a.repeats), a.repeats)
        return
    table = rows(a.repeats, not a.no_pairs, a.threads)
    print_table(table, a.repeats)


if __name__ == "__main__":
    main()
