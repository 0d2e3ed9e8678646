"""One DPO stage on the Llama-style transformer in plain eager PyTorch: the math of
plugins/models/transformer/transformer.cpp (RMSNorm in float, half-split rotary from cumsum
positions, SwiGLU, grouped-query attention written out with matmul + additive mask + softmax,
untied lm_head) and of the engine's pairwise stage (reference log-probs once, in chunks of
max(batch, 64); logits for all but the last token; log-probs by gather - logsumexp over response
tokens; DPO loss; Adam; on log steps: retain_grad on the log-probs, grad norm, rewards/*, grad/*;
a checkpoint of model and optimizer state at the last step), timed like the engine's
`steps_per_second` (from reading the pairs to the final checkpoint).

    python3 bench/python/transformer_dpo.py --pairs pairs.jsonl --out dir --vocab 1000 \
        --hidden 128 --intermediate 344 --layers 4 --heads 4 --kv-heads 2 --steps 50 --threads 2

Prints one JSON line: {"steps", "seconds", "steps_per_second"}.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F


class RmsNorm(torch.nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        xf = x.to(torch.float32)
        variance = xf.pow(2).mean(-1, keepdim=True)
        return (xf * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rotate(x, cos, sin):
    half = x.size(-1) // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


class Layer(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        d = a.hidden // a.heads
        self.heads, self.kv_heads, self.d = a.heads, a.kv_heads, d
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)  # noqa: E731
        self.q_proj, self.k_proj = lin(a.hidden, a.heads * d), lin(a.hidden, a.kv_heads * d)
        self.v_proj, self.o_proj = lin(a.hidden, a.kv_heads * d), lin(a.heads * d, a.hidden)
        self.gate_proj, self.up_proj = lin(a.hidden, a.intermediate), lin(a.hidden, a.intermediate)
        self.down_proj = lin(a.intermediate, a.hidden)
        self.input_layernorm = RmsNorm(a.hidden, 1e-6)
        self.post_attention_layernorm = RmsNorm(a.hidden, 1e-6)

    def attention(self, x, cos, sin, bias):
        b, t, _ = x.shape
        h, kvh, d = self.heads, self.kv_heads, self.d
        rep = h // kvh
        q = rotate(self.q_proj(x).view(b, t, h, d).transpose(1, 2), cos, sin)
        k = rotate(self.k_proj(x).view(b, t, kvh, d).transpose(1, 2), cos, sin)
        v = self.v_proj(x).view(b, t, kvh, d).transpose(1, 2)
        q = q.reshape(b, kvh, rep * t, d)  # the rep query heads of a kv head along time
        scores = torch.matmul(q, k.transpose(2, 3)) * (1.0 / math.sqrt(d))
        scores = scores.view(b, kvh, rep, t, t) + bias
        probs = torch.softmax(scores, -1).to(v.dtype).view(b, kvh, rep * t, t)
        out = torch.matmul(probs, v).view(b, h, t, d).transpose(1, 2).reshape(b, t, h * d)
        return self.o_proj(out)

    def forward(self, x, cos, sin, bias):
        h = x + self.attention(self.input_layernorm(x), cos, sin, bias)
        y = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Transformer(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed_tokens = torch.nn.Parameter(torch.empty(a.vocab, a.hidden))
        self.layers = torch.nn.ModuleList(Layer(a) for _ in range(a.layers))
        self.norm = RmsNorm(a.hidden, 1e-6)
        self.lm_head = torch.nn.Parameter(torch.empty(a.vocab, a.hidden))
        d = a.hidden // a.heads
        self.inv_freq = (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)).reciprocal().float()
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "norm." not in name:
                    p.normal_(0.0, 0.02)

    def forward(self, ids, mask):
        b, t = ids.shape
        positions = (mask.cumsum(1) - 1).clamp_min(0)
        freqs = positions.float().unsqueeze(-1) * self.inv_freq
        angles = torch.cat([freqs, freqs], -1).unsqueeze(1)
        cos, sin = angles.cos(), angles.sin()
        index = torch.arange(0, t)
        allowed = index.unsqueeze(0).le(index.unsqueeze(1)).unsqueeze(0) & mask.ne(0).unsqueeze(1)
        bias = torch.zeros(b, t, t).masked_fill(allowed.logical_not(), torch.finfo(torch.float32).min)
        bias = bias.view(b, 1, 1, t, t)
        x = F.embedding(ids, self.embed_tokens)
        for layer in self.layers:
            x = layer(x, cos, sin, bias)
        return torch.matmul(self.norm(x), self.lm_head.t())


def sequence_logps(model, ids, mask, response):
    # logits at the last position score nothing: feed all but the last token
    logits = model(ids[:, :-1], mask[:, :-1])
    picked = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    return (picked * response[:, 1:]).sum(1)


def main():
    ap = argparse.ArgumentParser()
    for key in ("vocab", "hidden", "intermediate", "layers", "heads", "kv-heads", "steps", "batch"):
        ap.add_argument("--" + key, type=int, required=key != "batch", default=8)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Transformer(a)
    beta, bsz = 0.1, a.batch
    os.makedirs(a.out, exist_ok=True)
    log = open(os.path.join(a.out, "metrics.jsonl"), "w")

    start = time.perf_counter()
    with open(a.pairs) as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    n = len(pairs)
    seqs = [p["prompt_ids"] + p["chosen_ids"] for p in pairs] + [p["prompt_ids"] + p["rejected_ids"] for p in pairs]
    width = max(len(s) for s in seqs)
    ids = torch.zeros(2 * n, width, dtype=torch.long)
    mask = torch.zeros(2 * n, width, dtype=torch.long)
    response = torch.zeros(2 * n, width)
    for i, (p, s) in enumerate(zip(2 * pairs, seqs)):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
        response[i, len(p["prompt_ids"]):len(s)] = 1
    reference = Transformer(a)
    reference.load_state_dict(model.state_dict())
    reference.eval()
    with torch.no_grad():
        chunk = max(bsz, 64)
        ref_logps = torch.cat([sequence_logps(reference, ids[s:s + chunk], mask[s:s + chunk], response[s:s + chunk])
                               for s in range(0, 2 * n, chunk)])
    del reference
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(0)
    order, cursor = [], n
    step_seconds, timed = 0.0, 0  # steady state: steps after the first, as the engine's step_time
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        log_now = step == 1 or step % a.log_every == 0 or step == a.steps
        opt.zero_grad()
        idx = []
        while len(idx) < bsz:
            if cursor == n:
                order, cursor = torch.randperm(n, generator=g).tolist(), 0
            idx.append(order[cursor])
            cursor += 1
        rows = torch.tensor(idx + [i + n for i in idx])
        logps = sequence_logps(model, ids[rows], mask[rows], response[rows])
        if log_now:
            logps.retain_grad()
        ref = ref_logps[rows]
        h_w, h_l = logps[:bsz] - ref[:bsz], logps[bsz:] - ref[bsz:]
        loss = -F.logsigmoid(beta * (h_w - h_l)).mean()
        value = loss.item()
        if not math.isfinite(value):
            raise RuntimeError(f"step {step}: non-finite loss")
        loss.backward()
        norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item() if log_now else 0.0
        opt.step()
        if log_now:
            lw, ll = logps.detach()[:bsz], logps.detach()[bsz:]
            rw, rl = beta * h_w.detach(), beta * h_l.detach()
            grad = logps.grad.double() * bsz
            w = grad[:bsz].abs().log10() - lw.double() / math.log(10)
            l_ = grad[bsz:].abs().log10() - ll.double() / math.log(10)
            row = {"step": step, "loss": value, "logps/chosen": lw.mean().item(), "logps/rejected": ll.mean().item(),
                   "rewards/chosen": rw.mean().item(), "rewards/rejected": rl.mean().item(),
                   "rewards/margins": (rw - rl).mean().item(),
                   "rewards/accuracies": (rw > rl).float().mean().item(),
                   "grad/chosen_log10": w.mean().item(), "grad/rejected_log10": l_.mean().item(),
                   "grad/ratio_log10": (l_ - w).mean().item(), "grad_norm": norm}
            log.write(json.dumps(row) + "\n")
            log.flush()
        if step > 1:
            step_seconds += time.perf_counter() - t0
            timed += 1
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, os.path.join(a.out, "checkpoint.pt"))
    seconds = time.perf_counter() - start
    print(json.dumps({"steps": a.steps, "seconds": seconds, "steps_per_second": a.steps / seconds,
                      "step_time": {"steps": timed, "seconds": step_seconds,
                                    "steps_per_second": timed / max(step_seconds, 1e-9)}}))


if __name__ == "__main__":
    main()
