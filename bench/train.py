"""Training throughput: our SFT step vs a `transformers` Llama of the same shape, and the share of
the fp32 matmul peak we reach, all measured in one run.

    python bench/train.py [--batch 64] [--seq 64] [--steps 10] [--repeats 5]
Prints one JSON line: {"bench": "train", "ours_tokens_per_s", "hf_tokens_per_s", "speedup",
"fraction_of_peak", ...}.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import SHAPE, emit, interleaved_best, matmul_peak_gflops, ours_and_hf

from selfevolve.train.sft import SFTConfig, lr_at, make_optimizer, sft_step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    model, hf = ours_and_hf()
    model, hf = model.to(args.device).train(), hf.to(args.device).train()
    x = torch.randint(2, 90, (args.batch, args.seq + 1), device=args.device)
    inputs, labels = x[:, :-1], x[:, 1:]
    cfg = SFTConfig()
    ours_opt = make_optimizer(model, cfg)
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def ours() -> None:
        sft_step(model, ours_opt, inputs, labels, lr_at(10, 100, cfg), cfg)

    def theirs() -> None:  # the plain way: forward with labels, backward, clip, step
        out = hf(input_ids=inputs)
        loss = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten())
        hf_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), cfg.grad_clip)
        hf_opt.step()

    best = interleaved_best({"ours": ours, "hf": theirs}, args.repeats, args.steps, args.device)
    t_ours, t_hf = best["ours"], best["hf"]
    peak = matmul_peak_gflops(args.device)
    tokens = args.batch * args.seq
    n_params = sum(p.numel() for p in model.parameters())
    d, layers = SHAPE["n_embd"], SHAPE["n_layer"]
    # 6 flops per parameter per token (forward + backward) plus attention scores and values
    flops = 6 * n_params * tokens + 6 * layers * args.batch * args.seq * args.seq * d
    emit(bench="train", peer=f"transformers {__import__('transformers').__version__} LlamaForCausalLM + AdamW",
         device=args.device, batch=args.batch, seq=args.seq, params=n_params, shape=SHAPE, unit="tokens/s",
         ours_tokens_per_s=round(tokens / t_ours, 1), hf_tokens_per_s=round(tokens / t_hf, 1),
         speedup=round(t_hf / t_ours, 2), ours_gflops=round(flops / t_ours / 1e9, 1),
         matmul_peak_gflops=round(peak, 1), fraction_of_peak=round(flops / t_ours / 1e9 / peak, 3))


if __name__ == "__main__":
    main()
