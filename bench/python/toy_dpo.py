"""The toy DPO experiment of configs/toy/dpo.yaml in plain eager PyTorch: the same math, sizes,
steps, optimizer, batch and thread count as `prefengine run`, including the metrics it logs
(probs/*, grad/* through autograd, rewards/*) every `log_every` steps, written to a JSONL file.

    python3 bench/python/toy_dpo.py --out metrics.jsonl [--threads 1]

Prints one JSON line: {"stages": [{"name", "steps", "seconds", "steps_per_second"}, ...]}.

The options below turn it into one run of the toy study's sweep (configs/toy/study.yaml, as
bench/sweep_bench.py runs it): the SFT data, the pairs, held-out pairs scored at every metrics row
(the engine's `eval: {path: ...}`: eval/logps_*_per_token, eval/pair_accuracy, eval/loss), the
preference loss with its options (docs/algorithms.md, "Pairwise losses"; on the toy model every
response is one token, so per-token averages equal sums), the step counts and the seed. Without
them it is configs/toy/dpo.yaml as before.

    python3 bench/python/toy_dpo.py --out m.jsonl --sft-data configs/toy/data/sft_scenario2.jsonl \
        --eval-pairs configs/toy/data/pairs_heldout.jsonl --loss ipo --tau 0.1 --dpo-steps 2000 --seed 1
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

P, R, HIDDEN = 4, 10, 64


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class ToyMlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(P + R, HIDDEN), torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN, R))
        self.register_buffer("prompt_rows", torch.cat([torch.eye(P), torch.zeros(P, R)], 1))

    def forward(self, prompts):  # logits of the response after each prompt
        return self.net(self.prompt_rows.index_select(0, prompts))


class Sampler:
    def __init__(self, n, batch, generator):
        self.n, self.batch, self.g, self.order, self.cursor = n, batch, generator, [], n

    def next(self):
        out = []
        while len(out) < self.batch:
            if self.cursor == self.n:
                self.order = torch.randperm(self.n, generator=self.g).tolist()
                self.cursor = 0
            out.append(self.order[self.cursor])
            self.cursor += 1
        return torch.tensor(out)


LOSSES = ("dpo", "flex_dpo", "dpo_sft", "ipo", "slic")


def pair_loss(args, logps_w, logps_l, h_w, h_l):
    """The batch-mean loss of the plugin `args.loss` (docs/algorithms.md), and the implicit rewards
    (beta * h, or the policy log-probs for slic) for the rewards/* metrics."""
    if args.loss == "dpo":
        z = args.beta * (h_w - h_l)
        return -F.logsigmoid(z).mean(), args.beta * h_w, args.beta * h_l
    if args.loss == "flex_dpo":
        z = args.beta_chosen * h_w - args.beta_rejected * h_l
        return -F.logsigmoid(z).mean(), args.beta_chosen * h_w, args.beta_rejected * h_l
    if args.loss == "dpo_sft":
        z = args.beta * (h_w - h_l)
        return (-F.logsigmoid(z) - args.sft_weight * logps_w).mean(), args.beta * h_w, args.beta * h_l
    if args.loss == "ipo":
        g = h_w - h_l - 1.0 / (2.0 * args.tau)
        return (g * g).mean(), h_w, h_l
    # slic: a hinge on the policy's own log-probs plus a likelihood term; no reference
    hinge = (args.delta - logps_w + logps_l).clamp_min(0)
    return (hinge - args.lam * logps_w).mean(), logps_w, logps_l


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sft-steps", type=int, default=1000)
    ap.add_argument("--dpo-steps", type=int, default=3000, help="preference steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft-data", default="configs/toy/data/sft_scenario1.jsonl")
    ap.add_argument("--pairs", default="configs/toy/data/pairs.jsonl")
    ap.add_argument("--eval-pairs", default="", help="held-out pairs scored at every metrics row")
    ap.add_argument("--loss", choices=LOSSES, default="dpo")
    ap.add_argument("--beta", type=float, default=0.1, help="dpo, dpo_sft")
    ap.add_argument("--beta-chosen", type=float, default=0.1, help="flex_dpo")
    ap.add_argument("--beta-rejected", type=float, default=0.1, help="flex_dpo")
    ap.add_argument("--sft-weight", type=float, default=1.0, help="dpo_sft")
    ap.add_argument("--tau", type=float, default=0.1, help="ipo")
    ap.add_argument("--delta", type=float, default=1.0, help="slic")
    ap.add_argument("--lambda", dest="lam", type=float, default=0.1, help="slic")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    log = open(args.out, "w")
    stages = []

    model = ToyMlp()
    sft = read_jsonl(args.sft_data)
    sft_prompts = torch.tensor([r["prompt_ids"][0] for r in sft])
    sft_targets = torch.tensor([r["distribution"] for r in sft], dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sampler = Sampler(len(sft), 4, g)
    start = time.perf_counter()
    for step in range(1, args.sft_steps + 1):
        opt.zero_grad()
        idx = sampler.next()
        logp = model(sft_prompts[idx]).log_softmax(-1)
        loss = -(sft_targets[idx] * logp).sum(1).mean()
        if not math.isfinite(loss.item()):
            raise RuntimeError("non-finite loss")
        loss.backward()
        norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
        opt.step()
        if step == 1 or step % 100 == 0 or step == args.sft_steps:
            log.write(json.dumps({"stage": "sft", "step": step, "loss": loss.item(), "grad_norm": norm}) + "\n")
            log.flush()
    seconds = time.perf_counter() - start
    stages.append({"name": "sft", "steps": args.sft_steps, "seconds": seconds,
                   "steps_per_second": args.sft_steps / seconds})

    pairs = read_jsonl(args.pairs)
    n = len(pairs)
    prompts = torch.tensor([p["prompt_ids"][0] for p in pairs])
    chosen = torch.tensor([p["chosen_ids"][0] for p in pairs])
    rejected = torch.tensor([p["rejected_ids"][0] for p in pairs])
    uses_reference = args.loss != "slic"  # as the engine, which builds no reference for slic
    reference = ToyMlp()
    reference.load_state_dict(model.state_dict())

    def reference_logps(p, c, r):
        if not uses_reference:
            return torch.zeros(2 * len(p))
        with torch.no_grad():
            ref_all = reference(torch.cat([p, p])).log_softmax(-1)
            return ref_all.gather(1, torch.cat([c, r]).unsqueeze(1)).squeeze(1)

    ref_logps = reference_logps(prompts, chosen, rejected)
    if args.eval_pairs:
        held = read_jsonl(args.eval_pairs)
        e_prompts = torch.tensor([p["prompt_ids"][0] for p in held])
        e_chosen = torch.tensor([p["chosen_ids"][0] for p in held])
        e_rejected = torch.tensor([p["rejected_ids"][0] for p in held])
        e_ref = reference_logps(e_prompts, e_chosen, e_rejected)
    del reference
    # probes: distinct prompts, per-prompt seen responses, responses in no pair
    distinct = sorted(set(prompts.tolist()))
    pair_prompt = torch.tensor([distinct.index(p) for p in prompts.tolist()])
    unseen = torch.ones(len(distinct), R)
    never = torch.ones(len(distinct), R)
    for p, c, r in zip(prompts.tolist(), chosen.tolist(), rejected.tolist()):
        unseen[distinct.index(p), [c, r]] = 0
        never[:, [c, r]] = 0
    distinct_t = torch.tensor(distinct)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = Sampler(n, 16, g)
    start = time.perf_counter()
    for step in range(1, args.dpo_steps + 1):
        log_now = step == 1 or step % 20 == 0 or step == args.dpo_steps
        opt.zero_grad()
        idx = sampler.next()
        b = len(idx)
        logits = model(torch.cat([prompts[idx], prompts[idx]]))
        targets = torch.cat([chosen[idx], rejected[idx]]).unsqueeze(1)
        logps = (logits.gather(1, targets).squeeze(1) - logits.logsumexp(-1))
        logps.retain_grad()
        h_w = logps[:b] - ref_logps[idx]
        h_l = logps[b:] - ref_logps[idx + n]
        loss, reward_w, reward_l = pair_loss(args, logps[:b], logps[b:], h_w, h_l)
        if not math.isfinite(loss.item()):
            raise RuntimeError("non-finite loss")
        loss.backward()
        norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
        opt.step()
        if log_now:
            row = {"stage": "dpo", "step": step, "loss": loss.item()}
            lw, ll = logps.detach()[:b], logps.detach()[b:]
            row["logps/chosen"] = lw.mean().item()
            row["logps/rejected"] = ll.mean().item()
            rw, rl = reward_w.detach(), reward_l.detach()
            row["rewards/chosen"] = rw.mean().item()
            row["rewards/rejected"] = rl.mean().item()
            row["rewards/margins"] = (rw - rl).mean().item()
            row["rewards/accuracies"] = (rw > rl).float().mean().item()
            with torch.no_grad():
                probs = model(distinct_t).softmax(-1)
                per_pair = probs[pair_prompt]
                row["probs/chosen"] = per_pair.gather(1, chosen.unsqueeze(1)).mean().item()
                row["probs/rejected"] = per_pair.gather(1, rejected.unsqueeze(1)).mean().item()
                row["probs/unseen"] = (probs * unseen).sum(1).mean().item()
                row["probs/never_seen"] = (probs * never).sum(1).mean().item()
            grad = logps.grad.double() * b
            w = grad[:b].abs().log10() - lw.double() / math.log(10)
            l = grad[b:].abs().log10() - ll.double() / math.log(10)
            row["grad/chosen_log10"] = w.mean().item()
            row["grad/rejected_log10"] = l.mean().item()
            row["grad/ratio_log10"] = (l - w).mean().item()
            row["grad_norm"] = norm
            if args.eval_pairs:  # held-out pairs, every metrics row
                with torch.no_grad():
                    e = len(e_prompts)
                    e_logits = model(torch.cat([e_prompts, e_prompts]))
                    e_logps = (e_logits.gather(1, torch.cat([e_chosen, e_rejected]).unsqueeze(1)).squeeze(1)
                               - e_logits.logsumexp(-1))
                    e_hw, e_hl = e_logps[:e] - e_ref[:e], e_logps[e:] - e_ref[e:]
                    row["eval/logps_chosen_per_token"] = e_logps[:e].mean().item()
                    row["eval/logps_rejected_per_token"] = e_logps[e:].mean().item()
                    score_w, score_l = (e_hw, e_hl) if uses_reference else (e_logps[:e], e_logps[e:])
                    row["eval/pair_accuracy"] = (score_w > score_l).float().mean().item()
                    row["eval/loss"] = pair_loss(args, e_logps[:e], e_logps[e:], e_hw, e_hl)[0].item()
            log.write(json.dumps(row) + "\n")
            log.flush()
    seconds = time.perf_counter() - start
    stages.append({"name": "dpo", "steps": args.dpo_steps, "seconds": seconds,
                   "steps_per_second": args.dpo_steps / seconds})
    print(json.dumps({"stages": stages}))


if __name__ == "__main__":
    main()
