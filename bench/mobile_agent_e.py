"""Mobile-Agent-E: a held-out PhoneSim stream with no memory, tips only, shortcuts only and both, over seeds.

    python bench/mobile_agent_e.py [--seeds 0,1,2] [--set key=value ...] [--out runs/mobile-agent-e]

One default `selfevolve run mobile-agent-e` per seed (one operator plays every variant's stream; the seed
also picks the stream); a run already finished in --out with the same settings is read instead of run
again. Prints one JSON line per seed and variant (success, on the training templates and on the two
held-out ones, on the stream's second half, mean actions and operator decisions, shortcut runs and
resamples per task), then one per variant with the means over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.agents.phone import HELD_OUT_TEMPLATES
from selfevolve.config import parse_overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/mobile-agent-e"))
    args = parser.parse_args()
    by_variant: dict[str, list[dict]] = {}
    for seed in seed_list(args.seeds):
        s = finished_or_run("mobile-agent-e", args.out / f"s{seed}", {**parse_overrides(args.set), "seed": seed})
        for r in s["variants"]:
            unseen = [v for t, v in r["by_template"].items() if t in HELD_OUT_TEMPLATES]
            half = r["batches"][len(r["batches"]) // 2:]
            line = {"success": round(r["success"], 4), "seen_templates": round(r["seen_templates"]["success"], 4),
                    "held_out_templates": round(float(np.mean(unseen)), 4) if unseen else None,
                    "second_half": round(float(np.mean([b["success"] for b in half])), 4),
                    **{k: round(r[k], 3) for k in ("actions", "decisions", "invalid", "shortcut_runs", "resampled")}}
            emit(bench="mobile_agent_e", seed=seed, variant=r["variant"], tasks=s["tasks"], **line,
                 shortcuts=r["batches"][-1]["shortcuts"], tips=r["batches"][-1]["tips"],
                 wall_seconds=round(r["wall_seconds"], 1))
            by_variant.setdefault(r["variant"], []).append(line)
        emit(bench="mobile_agent_e", seed=seed, bc_seconds=round(s["bc"]["wall_seconds"], 1),
             wall_seconds=round(s["wall_seconds"], 1))
    for variant, lines in by_variant.items():
        emit(bench="mobile_agent_e", variant=variant, seeds=len(lines),
             mean={k: round(float(np.mean([x[k] for x in lines if x[k] is not None])), 4) for k in lines[0]})


if __name__ == "__main__":
    main()
