"""Sampler throughput: our batched KV-cache sampler vs `transformers` generate, same weights, one run.

    python bench/sampler.py [--batch 256] [--prompt 16] [--new 64] [--repeats 5]
Prints one JSON line: {"bench": "sampler", "ours_tokens_per_s", "hf_tokens_per_s", "speedup", ...}; on the
CPU also ours with `native=True` (the forward in C, models/native.py), its speedup over transformers and
whether its greedy tokens are the default path's.
"""

from __future__ import annotations

import argparse

import torch
from common import SHAPE, emit, interleaved_best, matmul_peak_gflops, memory_read_gbps, ours_and_hf

from selfevolve.models.sampler import generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    model, hf = ours_and_hf()
    model, hf = model.to(args.device), hf.to(args.device)
    prompts = torch.randint(2, 12, (args.batch, args.prompt), generator=torch.Generator().manual_seed(1))
    ours_out, hf_out, native_out = {}, {}, {}

    def ours() -> None:
        ours_out["t"] = generate(model, prompts.tolist(), args.new, stop_id=-1, batch_size=args.batch).tokens

    def native() -> None:
        native_out["t"] = generate(model, prompts.tolist(), args.new, stop_id=-1, batch_size=args.batch,
                                   native=True).tokens

    def theirs() -> None:
        with torch.no_grad():
            x = prompts.to(args.device)
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.new,
                              min_new_tokens=args.new, do_sample=False, use_cache=True, pad_token_id=0)
        hf_out["t"] = out[:, args.prompt:].cpu()

    contestants = {"ours": ours, "hf": theirs} | ({"native": native} if args.device == "cpu" else {})
    best = interleaved_best(contestants, args.repeats, device=args.device)
    t_ours, t_hf = best["ours"], best["hf"]
    tokens = args.batch * args.new
    n_params = sum(p.numel() for p in model.parameters())
    # the weight matmuls alone (2 flops per parameter per token) at the measured peak: no sampler beats this
    matmul_s = tokens * 2 * n_params / (matmul_peak_gflops(args.device) * 1e9)
    # nor can a decode step read the KV cache faster than memory gives it: keys and values of every
    # layer for all positions so far, fp32, at each of the new tokens
    cfg = model.cfg
    cache_bytes = sum(2 * cfg.n_layer * args.batch * cfg.n_embd * (args.prompt + t) * 4 for t in range(args.new))
    cache_s = cache_bytes / (memory_read_gbps(args.device) * 1e9)
    emit(bench="sampler", peer=f"transformers {__import__('transformers').__version__} generate",
         device=args.device, batch=args.batch, prompt=args.prompt, new_tokens=args.new,
         params=n_params, shape=SHAPE, unit="tokens/s",
         matmul_bound_tokens_per_s=round(tokens / matmul_s, 1),
         matmul_and_cache_bound_tokens_per_s=round(tokens / (matmul_s + cache_s), 1),
         ours_tokens_per_s=round(tokens / t_ours, 1), hf_tokens_per_s=round(tokens / t_hf, 1),
         speedup=round(t_hf / t_ours, 2), same_tokens=bool(torch.equal(ours_out["t"], hf_out["t"])),
         **({"native_tokens_per_s": round(tokens / best["native"], 1),
             "native_speedup": round(t_hf / best["native"], 2),
             "native_same_tokens": bool(torch.equal(native_out["t"], ours_out["t"]))} if native_out else {}))


if __name__ == "__main__":
    main()
