"""Agentic graph reasoning: steering by the graph's structure (bridge) against unsteered expansion
(random) and continuing from the newest concept (latest), same model, seeds and call budget.

    python bench/graph_reasoning.py [--seeds 0,1,2] [--steering bridge,random,latest] [--iterations 10]
                                    [--model smollm2 | --base-url URL --model NAME] [--out runs/graph-reasoning]

Prints one JSON line per run: the final graph's concepts, relations, communities, modularity,
largest-component share, average path length and clustering, and the share of reply lines that
parsed as relations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, seed_list
from star_family import run

KEEP = ("nodes", "edges", "communities", "modularity", "largest_component_share", "average_path_length",
        "clustering", "max_degree", "hubs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steering", default="bridge,random,latest")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/graph-reasoning"))
    args = parser.parse_args()
    for seed in seed_list(args.seeds):
        for steering in args.steering.split(","):
            s = run("graph-reasoning", args.out / f"{steering}-{seed}", {
                "seed": seed, "steering": steering, "iterations": args.iterations, "model": args.model,
                "base_url": args.base_url, "threads": args.threads})
            log = s["iterations_log"]
            emit(bench="graph_reasoning", seed=seed, steering=steering, iterations=len(log),
                 **{k: s["final"].get(k) for k in KEEP},
                 parsed_share=sum(r["parsed_share"] for r in log) / len(log), wall_seconds=s["wall_seconds"])


if __name__ == "__main__":
    main()
