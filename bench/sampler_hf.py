"""Sampler throughput on a real pretrained model: our sampler vs `transformers` generate on SmolLM2-135M.

    python bench/sampler_hf.py [--batches 1,16,64] [--prompt 32] [--new 64] [--repeats 3] [--dtype float32]
                               [--model smollm2|DIR] [--random-weights] [--device cpu|cuda]
Prints one JSON line per batch size: {"bench": "sampler_hf", "batch", "ours_tokens_per_s",
"hf_tokens_per_s", "speedup", "same_tokens", "matmul_bound_tokens_per_s", "max_speedup"}. Both
decode greedily exactly `new` tokens from the same random prompts, in the same dtype, one process,
timed in alternation. The bound is what any sampler of these weights could reach here: the weight
matmuls of the prefill and of every decode step (the vocabulary head once per row in the prefill),
each timed alone at its shape in the same run; max_speedup is generate's time over that bound, the
most any sampler could be ahead of it on this machine. On a GPU (`--device cuda`) both models and
every timed matmul run there, timed with a synchronise on each side. `--random-weights` needs only
the model's config.json and gives it random weights: the speed is the same, the tokens are not
the model's (for a machine the weights cannot reach).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import torch
from common import emit, interleaved_best

from selfevolve.models.hf import SMOLLM2, load_model, resolve
from selfevolve.models.sampler import generate


def matmul_seconds(model, batch: int, prompt: int, new: int, device: str) -> float:
    """Seconds of the weight matmuls of one `generate` call, each timed alone at its own shape (rows =
    the rows a prefill or a decode step feeds it) with its weights warm in cache: the floor for any
    sampler of these weights on this machine, attention, norms and memory traffic left out."""
    head = model.lm_head
    shapes = Counter(m.weight.shape for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)

    def timed(rows: int, shape: torch.Size, repeats: int = 5) -> float:
        x = torch.randn(rows, shape[1], dtype=head.weight.dtype, device=device)
        w = torch.randn(*shape, dtype=head.weight.dtype, device=device)
        return interleaved_best({"linear": lambda: torch.nn.functional.linear(x, w)}, repeats, device=device)["linear"]

    def step(rows: int) -> float:
        return sum(n * timed(rows, shape) for shape, n in shapes.items())

    logits = timed(batch, head.weight.shape)
    return step(batch * prompt) + logits + (new - 1) * (step(batch) + logits)


def measure(ours_model, hf, batch: int, args) -> None:
    import transformers

    prompts = torch.randint(100, ours_model.cfg.vocab_size, (batch, args.prompt),
                            generator=torch.Generator().manual_seed(batch)).to(args.device)
    rows, out = prompts.tolist(), {}

    def ours() -> None:
        out["ours"] = generate(ours_model, rows, args.new, stop_id=-1, batch_size=batch).tokens

    def theirs() -> None:
        with torch.no_grad():
            t = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=args.new,
                            do_sample=False, use_cache=True, pad_token_id=0)
        out["hf"] = t[:, args.prompt:].cpu()

    best = interleaved_best({"ours": ours, "hf": theirs}, args.repeats, device=args.device)
    tokens = batch * args.new
    floor = matmul_seconds(ours_model, batch, args.prompt, args.new, args.device)
    emit(bench="sampler_hf", model=args.model, peer=f"transformers {transformers.__version__} generate",
         device=args.device, random_weights=args.random_weights, dtype=args.dtype, batch=batch, prompt=args.prompt,
         new_tokens=args.new, unit="tokens/s",
         ours_tokens_per_s=round(tokens / best["ours"], 1), hf_tokens_per_s=round(tokens / best["hf"], 1),
         speedup=round(best["hf"] / best["ours"], 2), same_tokens=bool(torch.equal(out["ours"], out["hf"])),
         same_token_fraction=round((out["ours"] == out["hf"]).float().mean().item(), 4),
         matmul_bound_tokens_per_s=round(tokens / floor, 1),
         max_speedup=round(best["hf"] / floor, 2))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=SMOLLM2)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--random-weights", action="store_true", help="random weights in the shape of --model's config")
    args = ap.parse_args()

    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        path = resolve(args.model)
        if args.random_weights:
            torch.manual_seed(0)
            transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(path)).save_pretrained(tmp)
            path = Path(tmp)
        dtype = getattr(torch, args.dtype)
        ours_model = load_model(str(path), dtype=dtype).to(args.device)
        hf = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(args.device).eval()
    hf.generation_config.eos_token_id = None  # exactly `new` tokens on both sides, as stop_id=-1 does
    for batch in map(int, args.batches.split(",")):
        measure(ours_model, hf, batch, args)


if __name__ == "__main__":
    main()
