"""What the model's replies looked like in finished program-evolution runs, ours and OpenEvolve's:
so that why one side's children fail is counted, not read off by hand.

Per run: the share of replies that stopped at the token limit, the share that open a code fence and
never close it (an odd number of ```), the share of children whose error quotes a line of
backticks, and the median prompt length in characters.

    python bench/reply_stats.py runs/evolve-program/packing-lm-0-served runs/evolve-program/packing-openevolve-0-w16

Our runs keep every call in their samples (DIR/samples/round-NNN.parquet) and the limit in their config.
OpenEvolve's keep each program's prompt, reply and token usage in their last checkpoint (the bench
saves one after the last iteration; runs from before that have one at iteration 100 only, so
`replies` says how many were read). Prints one JSON line per run directory.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import emit

from selfevolve.errors import RunDirError
from selfevolve.store import RunStore


def ours(run: Path) -> dict:
    """Replies, their token counts, prompt lengths (characters) and children's errors of our loop, and
    its token limit."""
    store = RunStore.open(run)
    rows = [row for r in store.rounds() if r["round"] > 0 for row in store.read_samples(r["round"]).to_pylist()]
    rows = [r for r in rows if r["prompt"]]  # random edits ask no model
    return {"replies": [r["response"] for r in rows], "tokens": [r["tokens"] for r in rows],
            "prompts": [sum(len(m["content"]) for m in json.loads(r["prompt"])) for r in rows],
            "errors": [r["error"] for r in rows],
            "limit": store.config_values()["max_tokens"]}


def openevolve(run: Path) -> dict:
    """The same for an OpenEvolve run: the programs in its latest checkpoint, and the errors our
    sandbox gave every child it evaluated (the bench's evaluations.jsonl; the first is the start)."""
    last = max((run / "output" / "checkpoints").glob("checkpoint_*"), key=lambda d: int(d.name.split("_")[1]))
    asks = [ask for f in sorted((last / "programs").glob("*.json"))
            for ask in (json.loads(f.read_text()).get("prompts") or {}).values()]
    evaluated = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()[1:]]
    return {"replies": [a["responses"][0] for a in asks],
            "tokens": [a["token_usage"]["completion_tokens"] for a in asks],
            "prompts": [len(a["system"]) + len(a["user"]) for a in asks], "errors": [e["error"] for e in evaluated],
            "limit": json.loads((run / "config.yaml").read_text())["llm"]["max_tokens"]}


def stats(run: Path) -> dict:
    side = "openevolve" if (run / "config.yaml").exists() else "ours"
    try:
        got = (openevolve if side == "openevolve" else ours)(run)
    except RunDirError as err:
        raise SystemExit(f"{err} (nor an OpenEvolve run of bench/evolve_program.py: no config.yaml)") from None
    replies, tokens, errors = got["replies"], got["tokens"], got["errors"]
    if not replies:
        raise SystemExit(f"{run}: no model replies found (is it a finished run of the program-evolution bench?)")
    return {"run": run.name, "side": side, "replies": len(replies),
            "at_token_limit_share": sum(t >= got["limit"] for t in tokens) / len(tokens),
            "unclosed_fence_share": sum(r.count("```") % 2 for r in replies) / len(replies),
            "children": len(errors), "failed_on_a_fence_line_share": sum("```" in e for e in errors) / len(errors),
            "prompt_chars_median": statistics.median(got["prompts"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args().runs:
        emit(bench="reply_stats", **stats(run))


if __name__ == "__main__":
    main()
