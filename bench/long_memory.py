"""Long-term memory (OMNE): no memory, a raw window, the per-user store and distillation into weights, over seeds.

    python bench/long_memory.py [--seeds 0,1,2] [--set key=value ...] [--out runs/long-memory]

One default `selfevolve run long-memory` per seed (the same reader serves every variant); a run already
finished in --out with the same settings is read instead of run again. Prints one JSON line per seed
and variant (held-out accuracy overall, on the last session, on facts told within the window and on
older ones), then one per variant with the means over seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit, seed_list
from star_family import finished_or_run

from selfevolve.config import parse_overrides


def by_window(rows: dict, window: int) -> dict[str, float]:
    """Accuracy on questions about facts told within the last `window` sessions, and on older ones."""
    ages, correct = np.array(rows["age"]), np.array(rows["correct"], dtype=float)
    return {"within_window": round(float(correct[ages <= window].mean()), 4),
            "older_than_window": round(float(correct[ages > window].mean()), 4)}


def main() -> None:
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", action="append", default=[], help="override a setting: key=value")
    parser.add_argument("--out", type=Path, default=Path("runs/long-memory"))
    args = parser.parse_args()
    by_variant: dict[str, list[dict]] = {}
    for seed in seed_list(args.seeds):
        out = args.out / f"s{seed}"
        s = finished_or_run("long-memory", out, {**parse_overrides(args.set), "seed": seed})
        for r in s["variants"]:
            rows = pq.read_table(out / "samples" / f"round-{r['round']:03d}.parquet").to_pydict()
            line = {"accuracy": round(r["accuracy"], 4),
                    "last_session": round(r["by_session"][str(s["sessions"] - 1)], 4), **by_window(rows, s["window"])}
            emit(bench="long_memory", seed=seed, variant=r["variant"], questions=r["questions"], **line,
                 wall_seconds=round(r["wall_seconds"], 1))
            by_variant.setdefault(r["variant"], []).append(line)
        emit(bench="long_memory", seed=seed, reader_seconds=round(s["reader"]["wall_seconds"], 1),
             wall_seconds=round(s["wall_seconds"], 1))
    for variant, lines in by_variant.items():
        emit(bench="long_memory", variant=variant, seeds=len(lines),
             mean={k: round(float(np.mean([x[k] for x in lines])), 4) for k in lines[0]})


if __name__ == "__main__":
    main()
