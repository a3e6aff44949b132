"""Program evolution at an equal number of evaluations: a language model as the operator against random
edits to the same code, against OpenEvolve with the same model behind the same endpoint, and
(regression) against our GP on the same points.

    python bench/evolve_program.py [--seeds 0,1,2] [--problems regression,packing,minimize]
                                   [--operators lm,random,openevolve] [--generations 8] [--children 16]
                                   [--openevolve-workers N] [--model smollm2] [--base-url URL]
                                   [--out runs/evolve-program] [--record FILE]

With `openevolve` among the operators and no --base-url, the bench serves --model itself with
`selfevolve serve` on 127.0.0.1, and our loop asks the same server. OpenEvolve (0.4, full rewrites,
2 islands, `generations x children` iterations, --openevolve-workers processes, each one request at a
time: by default --children, as many as our loop sends at once) scores its candidates with the same
evaluator, through our sandbox, and keeps every prompt and reply in its checkpoint after the last
iteration; bench/reply_stats.py reads them, and ours, from the run directories.

Every side gets 1 + generations x children evaluations (GP, population 32: its best training RMSE
at the first generation where it has evaluated as many expressions). Prints one JSON line per run: best score (higher is
better), the score of the starting program, the share of children that ran and scored, evaluations
per second, seconds in the model. With --record (a JSON-lines file in bench/results/), a run recorded
there with the same problem, seed, operator, budget and model is read, not run again, and every new one
is added: a study of many half-hour runs spans sessions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from common import emit, recorded, seed_list
from star_family import run

from selfevolve.evolve.program_problems import get_problem

ADAPTER = """import json
from selfevolve.evolve.cascade import Stage, cascade

EVALUATOR, LOG = {evaluator!r}, {log!r}
STAGES = [Stage("quick", timeout=5.0), Stage("evaluate", timeout=5.0)]


def evaluate(program_path):
    result = cascade(open(program_path).read(), EVALUATOR, STAGES)
    valid = result.complete(len(STAGES))
    with open(LOG, "a") as log:
        log.write(json.dumps({{"valid": valid, "error": result.error[:200]}}) + "\\n")
    return {{"combined_score": result.metrics["score"] if valid else -1e9, **(result.metrics if valid else {{}})}}
"""


@contextmanager
def served(model: str, threads: int):
    """`selfevolve serve MODEL` on a free local port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "selfevolve", "serve", model, "--port", str(port), "--name", "lm"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": str(threads)})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/models", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Endpoint:
    """The base URL both sides ask: --base-url, or `selfevolve serve MODEL` started at the first request,
    so that a bench whose runs are all in the record reads them without loading a model."""

    def __init__(self, base_url: str, model: str, threads: int, stack: contextlib.ExitStack) -> None:
        self.base_url, self.model, self.threads, self.stack = base_url, model, threads, stack

    def __call__(self) -> str:
        if not self.base_url:
            self.base_url = self.stack.enter_context(served(self.model, self.threads))
        return self.base_url


def openevolve(problem: str, seed: int, base_url: str, iterations: int, workers: int, out: Path) -> dict:
    """OpenEvolve on the same problem, model, endpoint and budget; its candidates run in our sandbox."""
    from openevolve import run_evolution
    from openevolve.config import load_config

    spec = get_problem(problem, seed)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "evaluations.jsonl"
    log.write_text("")
    (out / "evaluator.py").write_text(ADAPTER.format(evaluator=spec.evaluator, log=str(log)))
    (out / "config.yaml").write_text(json.dumps({
        "max_iterations": iterations, "checkpoint_interval": iterations, "random_seed": seed,
        "diff_based_evolution": False,
        "llm": {"api_base": base_url, "api_key": "none", "models": [{"name": "lm", "weight": 1.0}],
                "temperature": 0.8, "max_tokens": 256, "timeout": 600, "retries": 1},
        "database": {"num_islands": 2, "population_size": 200},
        "evaluator": {"timeout": 30, "parallel_evaluations": workers, "cascade_evaluation": False}}))
    t0 = time.time()
    result = run_evolution(spec.program, str(out / "evaluator.py"), load_config(str(out / "config.yaml")),
                           iterations=iterations, output_dir=str(out / "output"), cleanup=False)
    wall = time.time() - t0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return {"best_score": result.metrics.get("score", result.best_score), "evaluations": len(rows),
            "valid_share": sum(r["valid"] for r in rows[1:]) / max(1, len(rows) - 1),
            "evaluations_per_second": len(rows) / wall, "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--problems", default="regression,packing,minimize")
    parser.add_argument("--operators", default="lm,random")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--children", type=int, default=16)
    parser.add_argument("--openevolve-workers", type=int, default=0,
                        help="OpenEvolve's parallel_evaluations, its requests in flight at once (0: --children)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/evolve-program"))
    parser.add_argument("--record", type=Path, help="a JSON-lines file of finished runs, read and added to")
    args = parser.parse_args()
    args.openevolve_workers = args.openevolve_workers or args.children
    operators = args.operators.split(",")
    with contextlib.ExitStack() as stack:
        asks_a_server = "openevolve" in operators or args.base_url
        bench(args, operators, Endpoint(args.base_url, args.model, args.threads, stack) if asks_a_server else None)


def one_run(args, operator: str, problem: str, seed: int, endpoint: Endpoint | None) -> dict:
    """One operator's run on one problem and seed: what the bench prints for it."""
    base_url = endpoint() if endpoint else ""
    if operator == "openevolve":
        workers = args.openevolve_workers
        out = args.out / f"{problem}-openevolve-{seed}-w{workers}"
        return {"operator": "openevolve 0.4",
                **openevolve(problem, seed, base_url, args.generations * args.children, workers, out)}
    s = run("evolve-program", args.out / f"{problem}-{operator}-{seed}{'-served' if base_url else ''}", {
        "seed": seed, "problem": problem, "operator": operator, "generations": args.generations,
        "children": args.children, "model": "lm" if base_url else args.model, "base_url": base_url,
        "threads": args.threads})
    return {"operator": operator, "model": s["model"], "start_score": s["start_score"], "best_score": s["best_score"],
            "best_metrics": s["best_metrics"], "evaluations": s["evaluations"], "valid_share": s["valid_share"],
            "evaluations_per_second": s["evaluations_per_second"], "lm_seconds": s["lm_seconds"],
            "wall_seconds": s["wall_seconds"]}


def bench(args, operators: list[str], endpoint: Endpoint | None) -> None:
    for seed in seed_list(args.seeds):
        for problem in args.problems.split(","):
            for operator in operators:
                key = {"problem": problem, "seed": seed, "operator": operator, "generations": args.generations,
                       "children": args.children, "model": args.model, "served": endpoint is not None,
                       **({"workers": args.openevolve_workers} if operator == "openevolve" else {})}
                emit(bench="evolve_program", problem=problem, seed=seed,
                     **recorded(args.record, key, one_run, args, operator, problem, seed, endpoint))
            if problem == "regression":  # GP's best RMSE once it has spent as many evaluations
                budget = 1 + args.generations * args.children
                g = run("gp", args.out / f"regression-gp-{seed}", {
                    "seed": seed, "problem": "nguyen-2", "mate_choice": "none", "pop_size": 32, "generations": 500})
                at = next((r for r in g["generations_log"] if r["evaluations"] >= budget), g["generations_log"][-1])
                emit(bench="evolve_program", problem=problem, seed=seed, operator="gp (population 32)",
                     best_score=-at["best_rmse"], evaluations=at["evaluations"], generation=at["generation"])


if __name__ == "__main__":
    main()
