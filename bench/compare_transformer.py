"""The transformer half of bench/compare_python.py: one DPO stage on the Llama-style transformer at
three sizes (the middle one has the shape of configs/lm/arith.yaml's model, untied here), `prefengine
run` against bench/python/transformer_dpo.py (same shapes, batch, steps,
threads, data and logging), alternating, best of the repeats; then the fp32 matmul peak of the
machine and the MFU of the transformer step.

Two rates per side: "stage" = steps / the whole stage (reading the pairs, the reference pass over
all pairs, the loop and the final checkpoint), and "step" = the steady-state DPO step (the issue's
"policy forward on chosen and rejected, cached reference log-probs, backward, Adam"): the steps
after the first, without checkpoint writes (the engine's run.json `step_time`, the same span in
the Python script).

MFU = 6 * N * tokens_per_step * step rate / peak, peak = the best sustained fp32 matmul rate (a
3-second loop of 2048^3 torch.mm, measured before each size and after the last; the single fastest
call is printed too), N = the parameters of the step's matmuls: the
decoder layers, the final norm and lm_head (not embed_tokens, a lookup; attention's T^2 FLOPs are
not counted, so the figure is conservative); tokens_per_step = 2 * batch * (prompt + response - 1):
chosen and rejected rows, each fed without its last token (the engine's score_sequences).
"MFU body" leaves lm_head out too (N = non-embedding parameters).
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
    ("small", 4000, 128, 344, 4, 4, 2, 30),
    ("lm", 259, 256, 688, 4, 4, 4, 20),  # the shape of configs/lm/arith.yaml's model (byte vocabulary)
    ("large", 4000, 512, 1376, 6, 8, 4, 8),
]

PEAK_SCRIPT = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n, seconds = int(sys.argv[2]), float(sys.argv[3])
a, b = torch.randn(n, n), torch.randn(n, n)
torch.mm(a, b)
times = []
start = time.perf_counter()
while time.perf_counter() - start < seconds:
    t = time.perf_counter(); torch.mm(a, b); times.append(time.perf_counter() - t)
flops = 2 * n ** 3
print(flops / min(times) / 1e9, flops * len(times) / sum(times) / 1e9)
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
        stage = json.load(f)["stages"][0]
    return stage["steps_per_second"], stage["step_time"]["steps_per_second"], rss


def python_side(run, tmp, pairs, size, same_env=False):
    name, vocab, hidden, inter, layers, heads, kv, steps = size
    out_dir = os.path.join(tmp, "python_run")
    shutil.rmtree(out_dir, ignore_errors=True)
    prefix = ["env"] + [f"{k}={v}" for k, v in engine_env().items()] if same_env else []
    _, rss, out = run(prefix + [PYTHON, "bench/python/transformer_dpo.py", "--pairs", pairs, "--out", out_dir,
                       "--vocab", str(vocab), "--hidden", str(hidden), "--intermediate", str(inter),
                       "--layers", str(layers), "--heads", str(heads), "--kv-heads", str(kv),
                       "--steps", str(steps), "--batch", str(BATCH), "--threads", str(THREADS),
                       "--log-every", str(LOG_EVERY)])
    result = json.loads(out.strip().splitlines()[-1])
    return result["steps_per_second"], result["step_time"]["steps_per_second"], rss


def engine_core():
    """The OpenBLAS core type engine/cli/main.cpp picks from CPUID (or the user's setting)."""
    if os.environ.get("OPENBLAS_CORETYPE"):
        return os.environ["OPENBLAS_CORETYPE"]
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    if all(x in flags for x in ("avx512f", "avx512bw", "avx512dq", "avx512vl")):
        return "SkylakeX"
    return "Haswell" if "avx2" in flags and "fma" in flags else "Prescott"


def engine_env():
    """The runtime settings engine/cli/main.cpp gives itself (where the user has not set them)."""
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive"), "OPENBLAS_CORETYPE": engine_core()}
    if "LD_LIBRARY_PATH" in os.environ:
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    else:
        for d in ("/usr/lib/x86_64-linux-gnu/openblas-openmp", "/usr/lib/aarch64-linux-gnu/openblas-openmp"):
            if os.path.exists(os.path.join(d, "libopenblas.so.0")):
                env["LD_LIBRARY_PATH"] = d
                break
    return env


def matmul_peak(n=2048, seconds=3.0):
    """(burst, sustained) fp32 matmul GFLOP/s: the fastest single torch.mm n^3 call and the rate of
    a loop of them for `seconds` (the scale of a step measurement), the better of OpenBLAS as
    Debian sets it up and with the engine's runtime settings."""
    burst = sustained = 0.0
    for extra in ({}, engine_env()):
        env = dict(os.environ, **extra)
        out = subprocess.run([PYTHON, "-c", PEAK_SCRIPT, str(THREADS), str(n), str(seconds)], cwd=ROOT,
                             env=env, check=True, capture_output=True, text=True).stdout
        b, s = (float(x) for x in out.strip().splitlines()[-1].split())
        burst, sustained = max(burst, b), max(sustained, s)
    return burst, sustained


def report(run, repeats):
    peaks = [matmul_peak()]  # before each size and after the last: the machine's speed drifts
    results = {}
    sides = ("engine", "python", "python_env")
    with tempfile.TemporaryDirectory() as tmp:
        for index, size in enumerate(SIZES):
            if index > 0:
                peaks.append(matmul_peak())
            pairs = os.path.join(tmp, f"pairs_{size[0]}.jsonl")
            experiment = os.path.join(tmp, f"{size[0]}.yaml")
            write_pairs(pairs, size[1])
            write_experiment(experiment, pairs, size)
            best = {side: [0.0, 0.0, 0.0] for side in sides}  # stage rate, step rate, RSS
            for _ in range(repeats):
                for side in sides:
                    if side == "engine":
                        result = engine_side(run, tmp, experiment)
                    else:
                        result = python_side(run, tmp, pairs, size, same_env=side == "python_env")
                    best[side] = [max(a, b) for a, b in zip(best[side], result)]
            results[size[0]] = best
    peaks.append(matmul_peak())
    burst = max(b for b, _ in peaks)
    peak = max(s for _, s in peaks)  # MFU's denominator: the best sustained rate
    tokens = 2 * BATCH * (PROMPT + RESPONSE - 1)
    print(f"transformer DPO step (batch {BATCH} pairs, prompt {PROMPT} + response {RESPONSE} tokens, Adam, "
          f"{THREADS} threads), best of {repeats}; steps/s")
    print(f"{'size':<7}{'params':>8}{'matmul':>8}{'':>3}{'engine':>9}{'python':>9}{'py env':>9}"
          f"{'ratio':>8}{'ratio env':>10}{'MFU':>7}{'py MFU':>8}{'MFU body':>10}{'RSS MiB e/p':>13}")
    for size in SIZES:
        name, vocab, hidden, inter, layers, heads, kv, steps = size
        body = non_embedding_params(hidden, inter, layers, heads, kv)
        matmul = body + vocab * hidden  # + lm_head
        total = body + 2 * vocab * hidden
        r = results[name]
        mfu = lambda sps, params: 6 * params * tokens * sps / (peak * 1e9)  # noqa: E731
        for kind, column in (("stage", 0), ("step", 1)):
            e, p, pe = r["engine"][column], r["python"][column], r["python_env"][column]
            label = f"{name:<7}{total / 1e6:>7.2f}M{matmul / 1e6:>7.2f}M" if kind == "stage" else " " * 22
            line = f"{label}{kind:>6}{e:>9.3f}{p:>9.3f}{pe:>9.3f}{e / p:>7.2f}x{e / pe:>9.2f}x"
            if kind == "step":
                line += f"{mfu(e, matmul):>7.1%}{mfu(pe, matmul):>8.1%}{mfu(e, body):>10.1%}"
            else:
                line += " " * 25
            line += f"{r['engine'][2]:>7.0f}/{max(r['python'][2], r['python_env'][2]):<6.0f}" if kind == "stage" else ""
            print(line)
    print(f"fp32 matmul peak (torch.mm 2048^3, {THREADS} threads, Debian defaults and the engine's settings, "
          f"before each size and after): sustained (3 s loop) {peak:.1f} GFLOP/s, burst (fastest call) "
          f"{burst:.1f} GFLOP/s; measured: " + ", ".join(f"{s:.0f}/{b:.0f}" for b, s in peaks))
    print("stage: steps / whole stage (pairs, reference pass, loop, final checkpoint); step: steady-state "
          "step (steps after the first, no checkpoint writes)")
    print("engine: its own runtime settings (engine/cli/main.cpp); python: Debian's defaults; py env: python with "
          "the engine's settings: " + " ".join(f"{k}={v}" for k, v in engine_env().items()))
    print(f"MFU = 6 * N * {tokens} tokens/step * step rate / sustained peak, N = matmul parameters (decoder "
          "layers + lm_head; not embed_tokens, not attention T^2); MFU body: N without lm_head; py MFU: py env; "
          f"against the burst peak multiply by {peak / burst:.2f}")
    sys.stdout.flush()
