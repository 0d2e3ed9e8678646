"""KV-cache generation in plain eager PyTorch: the Python side of bench/generation_bench.py.

The Llama math of plugins/models/transformer/transformer.cpp (RMSNorm in float, half-split rotary,
SwiGLU, grouped-query attention written out with matmul + additive mask + softmax, tied or untied
lm_head) and the loop of engine/generation/generator.cpp (left-padded prompts, positions counting
the real tokens, greedy = argmax, sampling = multinomial(softmax(logits / temperature)) from a
generator seeded with 0 before every run), written the way an eager PyTorch user would: a rotary
cos/sin table computed once, the keys and values written in place into a cache allocated for the
whole generation, positions advanced by one per step, and an additive mask only where a prompt is
padded. It loads the engine's weights: config.json and model.safetensors as the engine writes them
(`generation_bench write`, `save_pretrained`, `prefengine export`), read with json + struct +
torch.frombuffer (no other packages).

    python3 bench/python/generate.py --model DIR --prompts FILE --batch 16 --new-tokens 64 \
        [--temperature 0] [--reps 3] [--threads 2] [--ids OUT]

PROMPTS holds one prompt a line (token ids separated by spaces); the first BATCH are left-padded
with id 0. Prints one JSON line {"seconds": [...], "cpu_seconds": [...], "new_tokens": N}: one
warm-up run, then REPS timed runs (wall and process CPU time), each timed around the whole generation (prefill + decode), the span the engine's
generation_bench times around prefengine::generate. --ids writes the last run's generated ids.
"""
import argparse
import json
import math
import os
import struct
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    buffer = bytearray(data[8 + n:])
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        count = (end - begin) // torch.empty((), dtype=dtype).element_size()
        flat = torch.frombuffer(buffer, dtype=dtype, count=count, offset=begin) if count else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"]).float()
    return tensors


def rms_norm(x, weight, eps):
    xf = x.to(torch.float32)
    variance = xf.pow(2).mean(-1, keepdim=True)
    return (xf * torch.rsqrt(variance + eps)).to(x.dtype) * weight


def rotate(x, cos, sin):
    half = x.size(-1) // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Model:
    def __init__(self, directory):
        with open(os.path.join(directory, "config.json")) as f:
            c = json.load(f)
        self.hidden, self.layers = c["hidden_size"], c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.d = c.get("head_dim") or self.hidden // self.heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        if c.get("rope_scaling") or c.get("sliding_window"):
            raise ValueError(f"{directory}/config.json: rope scaling and sliding windows are not mirrored here")
        w = read_safetensors(os.path.join(directory, "model.safetensors"))
        self.w = w
        self.embed = w["model.embed_tokens.weight"]
        self.lm_head = w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else w["lm_head.weight"]
        theta, d = c.get("rope_theta", 10000.0), self.d
        # the engine's rotary_inv_freq: in double, rounded to float
        self.inv_freq = (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)).reciprocal().float()
        self.table_cos = self.table_sin = None

    def rotary(self, length):
        """cos, sin [length, D] for positions 0..length-1, computed once (grown when needed)."""
        if self.table_cos is None or self.table_cos.size(0) < length:
            freqs = torch.arange(0, max(length, 256), dtype=torch.float32).unsqueeze(-1) * self.inv_freq
            angles = torch.cat([freqs, freqs], -1)
            self.table_cos, self.table_sin = angles.cos(), angles.sin()
        return self.table_cos, self.table_sin

    def forward(self, ids, positions, bias, cache, past):
        """ids [B, T]; positions [B, T] (or None: past..past+T-1 in every row); bias [B, 1, 1, T, S]
        additive or None; cache: per layer (keys, values) [B, Hkv, capacity, D]. Returns the last
        position's logits [B, V]."""
        b, t = ids.shape
        table_cos, table_sin = self.rotary(past + t)
        if positions is None:
            cos, sin = table_cos[past:past + t].view(1, 1, t, -1), table_sin[past:past + t].view(1, 1, t, -1)
        else:
            cos, sin = table_cos[positions].unsqueeze(1), table_sin[positions].unsqueeze(1)
        h, kvh, d = self.heads, self.kv_heads, self.d
        rep, s = h // kvh, past + t
        x = F.embedding(ids, self.embed)
        for i in range(self.layers):
            p = f"model.layers.{i}."
            w = self.w
            y = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)
            q = F.linear(y, w[p + "self_attn.q_proj.weight"], w.get(p + "self_attn.q_proj.bias"))
            k = F.linear(y, w[p + "self_attn.k_proj.weight"], w.get(p + "self_attn.k_proj.bias"))
            v = F.linear(y, w[p + "self_attn.v_proj.weight"], w.get(p + "self_attn.v_proj.bias"))
            q = rotate(q.view(b, t, h, d).transpose(1, 2), cos, sin)
            k = rotate(k.view(b, t, kvh, d).transpose(1, 2), cos, sin)
            keys, values = cache[i]
            keys[:, :, past:s] = k
            values[:, :, past:s] = v.view(b, t, kvh, d).transpose(1, 2)
            q = q.reshape(b, kvh, rep * t, d)  # the rep query heads of a kv head along time
            scores = torch.matmul(q, keys[:, :, :s].transpose(2, 3)) * (1.0 / math.sqrt(d))
            if bias is not None:
                scores = scores.view(b, kvh, rep, t, s) + bias
            probs = torch.softmax(scores, -1).view(b, kvh, rep * t, s)
            out = torch.matmul(probs, values[:, :, :s]).view(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)
            x = x + F.linear(out, w[p + "self_attn.o_proj.weight"], w.get(p + "self_attn.o_proj.bias"))
            y = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            x = x + F.linear(F.silu(F.linear(y, w[p + "mlp.gate_proj.weight"])) * F.linear(y, w[p + "mlp.up_proj.weight"]),
                             w[p + "mlp.down_proj.weight"])
        x = rms_norm(x[:, -1], self.w["model.norm.weight"], self.eps)
        return torch.matmul(x, self.lm_head.t())


def causal_bias(mask, past, t):
    """[B, 1, 1, T, S] additive: query past+i sees key j <= past+i when key j is a real token."""
    s = past + t
    query = torch.arange(past, s).unsqueeze(1)
    key = torch.arange(0, s).unsqueeze(0)
    allowed = key.le(query).unsqueeze(0) & mask[:, :s].ne(0).unsqueeze(1)
    bias = torch.zeros(mask.size(0), t, s).masked_fill(allowed.logical_not(), torch.finfo(torch.float32).min)
    return bias.view(mask.size(0), 1, 1, t, s)


@torch.no_grad()
def generate(model, ids, mask, new_tokens, temperature, generator):
    b, t = ids.shape
    capacity = t + new_tokens
    cache = [(torch.empty(b, model.kv_heads, capacity, model.d), torch.empty(b, model.kv_heads, capacity, model.d))
             for _ in range(model.layers)]
    padded = not bool(mask.all())
    full_mask = torch.ones(b, capacity, dtype=torch.long)
    full_mask[:, :t] = mask
    counts = mask.sum(1)
    positions = (mask.cumsum(1) - 1).clamp_min(0) if padded else None
    logits = model.forward(ids, positions, causal_bias(full_mask, 0, t) if padded or t > 1 else None, cache, 0)
    tokens = []
    for step in range(new_tokens):
        if temperature == 0:
            next_ids = logits.argmax(-1)
        else:
            next_ids = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(-1)
        tokens.append(next_ids)
        if step + 1 == new_tokens:
            break
        past = t + step
        if padded:
            positions = counts.view(b, 1).clone()  # every generated token is real: its position is the count before it
            counts += 1
            bias = torch.zeros(b, past + 1).masked_fill(full_mask[:, :past + 1].eq(0), torch.finfo(torch.float32).min)
            bias = bias.view(b, 1, 1, 1, past + 1)
        else:
            bias = None
        logits = model.forward(next_ids.unsqueeze(1), positions, bias, cache, past)
    return torch.stack(tokens, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--new-tokens", type=int, required=True)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ids")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = Model(a.model)
    with open(a.prompts) as f:
        prompts = [[int(x) for x in line.split()] for line in f if line.strip()][:a.batch]
    if len(prompts) < a.batch:
        raise SystemExit(f"{a.prompts}: {len(prompts)} prompts, the batch needs {a.batch}")
    width = max(len(p) for p in prompts)
    ids = torch.zeros(a.batch, width, dtype=torch.long)
    mask = torch.zeros(a.batch, width, dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    seconds, cpu_seconds = [], []
    for rep in range(a.reps + 1):
        generator = torch.Generator().manual_seed(0)
        cpu_start, start = time.process_time(), time.perf_counter()
        out = generate(model, ids, mask, a.new_tokens, a.temperature, generator)
        if rep > 0:
            seconds.append(time.perf_counter() - start)
            cpu_seconds.append(time.process_time() - cpu_start)
    if a.ids:
        with open(a.ids, "w") as f:
            for row in out.tolist():
                f.write(" ".join(str(x) for x in row) + "\n")
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "new_tokens": out.numel()}))


if __name__ == "__main__":
    main()
