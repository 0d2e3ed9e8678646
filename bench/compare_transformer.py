"""The transformer half of bench/compare_python.py: one DPO stage on the Llama-style transformer at
two sizes, `prefengine run` against bench/python/transformer_dpo.py (same shapes, batch, steps,
threads, data and logging), alternating, best of the repeats; then the fp32 matmul peak of the
machine and the MFU of the transformer step.

MFU = 6 * N * tokens_per_step * steps_per_second / peak, where N counts the non-embedding
parameters (the decoder layers and the final norm: not embed_tokens, not lm_head) and
tokens_per_step = 2 * batch * (prompt + response - 1): chosen and rejected rows, each fed without
its last token (the engine's score_sequences). "MFU+head" adds lm_head to N (it is a real matmul).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
THREADS = 2
BATCH, PROMPT, RESPONSE, PAIRS, LOG_EVERY = 8, 32, 32, 64, 10
SIZES = [
    # name, vocab, hidden, intermediate, layers, heads, kv heads, steps
    ("small", 4000, 128, 344, 4, 4, 2, 20),
    ("large", 4000, 512, 1376, 6, 8, 4, 3),
]

PEAK_SCRIPT = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = int(sys.argv[2])
a, b = torch.randn(n, n), torch.randn(n, n)
torch.mm(a, b)
best = 1e9
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); torch.mm(a, b); best = min(best, time.perf_counter() - t)
print(2 * n ** 3 / best / 1e9)
"""


def non_embedding_params(hidden, intermediate, layers, heads, kv_heads):
    d = hidden // heads
    layer = hidden * heads * d + 2 * hidden * kv_heads * d + heads * d * hidden + 3 * hidden * intermediate
    return layers * (layer + 2 * hidden) + hidden


def write_pairs(path, vocab):
    rng = random.Random(0)
    with open(path, "w") as f:
        for _ in range(PAIRS):
            tokens = lambda k: [rng.randrange(vocab) for _ in range(k)]  # noqa: E731
            f.write(json.dumps({"prompt_ids": tokens(PROMPT), "chosen_ids": tokens(RESPONSE),
                                "rejected_ids": tokens(RESPONSE)}) + "\n")


def write_experiment(path, pairs, size):
    name, vocab, hidden, inter, layers, heads, kv, steps = size
    with open(path, "w") as f:
        f.write(f"""name: bench-transformer-{name}
seed: 0
threads: {THREADS}
model: {{plugin: transformer, vocab_size: {vocab}, hidden_size: {hidden}, intermediate_size: {inter},
         num_hidden_layers: {layers}, num_attention_heads: {heads}, num_key_value_heads: {kv}}}
stages:
  - name: dpo
    kind: pairwise
    loss: {{plugin: dpo, beta: 0.1}}
    reference: frozen_copy
    data: {{path: {pairs}}}
    optimizer: {{name: adam, lr: 1.0e-4}}
    batch_size: {BATCH}
    steps: {steps}
    log_every: {LOG_EVERY}
""")


def engine_side(run, tmp, experiment):
    out_dir = os.path.join(tmp, "engine_run")
    shutil.rmtree(out_dir, ignore_errors=True)
    _, rss, _ = run([os.path.join(ROOT, "build/bin/prefengine"), "run", experiment, "--output", out_dir,
                     "--log-level", "warn"])
    with open(os.path.join(out_dir, "run.json")) as f:
        return json.load(f)["stages"][0]["steps_per_second"], rss


def python_side(run, tmp, pairs, size, same_env=False):
    name, vocab, hidden, inter, layers, heads, kv, steps = size
    out_dir = os.path.join(tmp, "python_run")
    shutil.rmtree(out_dir, ignore_errors=True)
    prefix = ["env", "OMP_WAIT_POLICY=passive", f"OPENBLAS_CORETYPE={engine_core()}"] if same_env else []
    _, rss, out = run(prefix + [PYTHON, "bench/python/transformer_dpo.py", "--pairs", pairs, "--out", out_dir,
                       "--vocab", str(vocab), "--hidden", str(hidden), "--intermediate", str(inter),
                       "--layers", str(layers), "--heads", str(heads), "--kv-heads", str(kv),
                       "--steps", str(steps), "--batch", str(BATCH), "--threads", str(THREADS),
                       "--log-every", str(LOG_EVERY)])
    return json.loads(out.strip().splitlines()[-1])["steps_per_second"], rss


def engine_core():
    """The OpenBLAS core type engine/cli/main.cpp picks from CPUID (or the user's setting)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return os.environ["OPENBLAS_CORETYPE"]
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    if all(x in flags for x in ("avx512f", "avx512bw", "avx512dq", "avx512vl")):
        return "SkylakeX"
    return "Haswell" if "avx2" in flags and "fma" in flags else "Prescott"


def matmul_peak(n=2048, repeats=5):
    """The better of OpenBLAS as it detects the CPU and with the core type the engine picks
    (engine/cli/main.cpp sets OPENBLAS_CORETYPE where OpenBLAS falls back to Prescott)."""
    best = 0.0
    for core in (None, "SkylakeX"):
        env = dict(os.environ, **({"OPENBLAS_CORETYPE": core} if core else {}))
        out = subprocess.run([PYTHON, "-c", PEAK_SCRIPT, str(THREADS), str(n), str(repeats)], cwd=ROOT,
                             env=env, check=True, capture_output=True, text=True).stdout
        best = max(best, float(out.strip().splitlines()[-1]))
    return best


def report(run, repeats):
    peak = matmul_peak()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            pairs = os.path.join(tmp, f"pairs_{size[0]}.jsonl")
            experiment = os.path.join(tmp, f"{size[0]}.yaml")
            write_pairs(pairs, size[1])
            write_experiment(experiment, pairs, size)
            best = {"engine": (0.0, 0.0), "python": (0.0, 0.0), "python_env": (0.0, 0.0)}
            for _ in range(repeats):
                for side in ("engine", "python", "python_env"):
                    if side == "engine":
                        sps, rss = engine_side(run, tmp, experiment)
                    else:
                        sps, rss = python_side(run, tmp, pairs, size, same_env=side == "python_env")
                    best[side] = (max(best[side][0], sps), max(best[side][1], rss))
            results[size[0]] = best
    peak = max(peak, matmul_peak())  # before and after the tables: the better of the two
    tokens = 2 * BATCH * (PROMPT + RESPONSE - 1)
    print(f"transformer DPO step (batch {BATCH} pairs, prompt {PROMPT} + response {RESPONSE} tokens, Adam, "
          f"{THREADS} threads), best of {repeats}")
    print(f"{'size':<7}{'params':>8}{'non-emb':>9}{'engine steps/s':>16}{'python steps/s':>16}{'ratio':>8}"
          f"{'engine MFU':>12}{'python MFU':>12}{'MFU+head':>10}{'RSS MiB e/p':>14}"
          f"{'python same env':>17}{'ratio':>8}")
    for size in SIZES:
        name, vocab, hidden, inter, layers, heads, kv, _ = size
        n = non_embedding_params(hidden, inter, layers, heads, kv)
        total = n + 2 * vocab * hidden
        (e, e_rss), (p, p_rss) = results[name]["engine"], results[name]["python"]
        mfu = lambda sps, params: 6 * params * tokens * sps / (peak * 1e9)  # noqa: E731
        print(f"{name:<7}{total / 1e6:>7.2f}M{n / 1e6:>8.2f}M{e:>16.3f}{p:>16.3f}{e / p:>7.2f}x"
              f"{mfu(e, n):>11.1%}{mfu(p, n):>12.1%}{mfu(e, n + vocab * hidden):>10.1%}"
              f"{e_rss:>7.0f}/{p_rss:<6.0f}{results[name]['python_env'][0]:>17.3f}"
              f"{e / results[name]['python_env'][0]:>7.2f}x")
    print(f"fp32 matmul peak (torch.mm 2048^3, {THREADS} threads, best of 5, default and SkylakeX OpenBLAS core, "
          f"before and after): {peak:.1f} GFLOP/s")
    print("engine: its defaults (OMP_WAIT_POLICY=passive, OPENBLAS_CORETYPE from CPUID, engine/cli/main.cpp); "
          "python: Debian's defaults; python same env: "
          f"OMP_WAIT_POLICY=passive OPENBLAS_CORETYPE={engine_core()}")
    print("MFU = 6 * non-embedding params * tokens/step * steps/s / peak; tokens/step = "
          f"2 * {BATCH} * {PROMPT + RESPONSE - 1}; MFU+head also counts lm_head")
    sys.stdout.flush()
