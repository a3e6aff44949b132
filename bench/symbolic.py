"""Agent symbolic learning against the unoptimised pipeline and against DSPy: same model, endpoint and problems.

    python bench/symbolic.py [--seeds 0,1,2] [--tasks wordmath,lookup] [--steps 3] [--batch 4]
                             [--dev 10] [--problems 20] [--candidates 2] [--model smollm2 | --base-url URL]
                             [--out runs/symbolic] [--record FILE]

Without --base-url the bench serves --model with `selfevolve serve` on 127.0.0.1 and both sides ask it.
DSPy (3.x) runs the same two-node pipeline (the same instructions, as two `Predict` modules) and
optimises it with `BootstrapFewShotWithRandomSearch` on the same training problems, choosing on the
same dev problems; `--candidates` sets its random-search size, which fixes its model-call budget
(printed beside ours). A reply without DSPy's field markers is read whole as the one output field,
as our nodes read replies (`--dspy-markers`: DSPy's adapters alone, which a 135M model fails). Prints
one JSON line per seed and task: held-out accuracy before and after optimisation on each side, dev
accuracy by step (ours) and by candidate (DSPy's), and the model calls each optimisation made. With
--record (a JSON-lines file in bench/results/), a seed and task recorded there with the same settings
is read, not run again, and every new one is added.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from common import emit, recorded, seed_list
from evolve_program import Endpoint
from star_family import run

from selfevolve.config import build_config
from selfevolve.recipes.symbolic import Config, gold, question, splits
from selfevolve.search.reasoning_modules import stated_answer
from selfevolve.search.symbolic import default_pipeline
from selfevolve.tasks.wordmath import same_number


def dspy_side(cfg: Config, base_url: str, candidates: int, whole_replies: bool = True) -> dict:
    import dspy
    from dspy.teleprompt import BootstrapFewShotWithRandomSearch

    class WholeReply(dspy.ChatAdapter):
        """DSPy's chat format; a reply without its field markers is the value of the one output field,
        as our pipeline's nodes read replies (small models seldom write the markers)."""

        def __init__(self) -> None:
            super().__init__(use_json_adapter_fallback=False)

        def parse(self, signature, completion: str) -> dict:
            try:
                return super().parse(signature, completion)
            except Exception:  # DSPy raises its AdapterParseError; a one-field reply needs no markers
                if len(signature.output_fields) != 1:
                    raise
                return {next(iter(signature.output_fields)): completion.strip()}

    train, dev, test = splits(cfg)
    lm = dspy.LM(f"openai/{cfg.model}", api_base=base_url, api_key="none", temperature=cfg.temperature,
                 max_tokens=cfg.max_tokens, cache=False)
    dspy.configure(lm=lm, adapter=WholeReply() if whole_replies else None)
    first, last = default_pipeline()
    analysis = dspy.Signature("problem -> analysis", first.instruction)
    solution = dspy.Signature("problem, analysis -> answer", last.instruction + " The answer is a number.")

    class Agent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.analyse, self.solve = dspy.Predict(analysis), dspy.Predict(solution)

        def forward(self, problem):
            return self.solve(problem=problem, analysis=self.analyse(problem=problem).analysis)

    def metric(example, prediction, trace=None) -> bool:
        value = stated_answer(f"Answer: {getattr(prediction, 'answer', '')}")
        return same_number(value, example.gold)

    def examples(problems):
        return [dspy.Example(problem=question(p), gold=gold(p), answer=f"{gold(p):g}").with_inputs("problem")
                for p in problems]

    def accuracy(program, problems) -> float:
        result = dspy.Evaluate(devset=examples(problems), metric=metric, num_threads=4, max_errors=10**6)(program)
        return float(getattr(result, "score", result)) / 100

    initial = accuracy(Agent(), test)
    before = len(lm.history)
    search = BootstrapFewShotWithRandomSearch(metric, max_bootstrapped_demos=2, max_labeled_demos=2,
                                              num_candidate_programs=candidates, num_threads=4, max_errors=10**6)
    best = search.compile(Agent(), trainset=examples(train), valset=examples(dev))
    calls = len(lm.history) - before
    # dev accuracy of each candidate in the order DSPy tried them (its seeds -3, -2, -1, 0, ...)
    dev_scores = [c["score"] / 100 for c in sorted(best.candidate_programs, key=lambda c: c["seed"])]
    return {"initial": initial, "optimised": accuracy(best, test), "calls": calls, "dev_by_candidate": dev_scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--tasks", default="wordmath,lookup")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--dev", type=int, default=10)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=150)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dspy-markers", action="store_true",
                        help="DSPy's own adapters only (a reply without field markers fails, then a JSON retry)")
    parser.add_argument("--out", type=Path, default=Path("runs/symbolic"))
    parser.add_argument("--record", type=Path, help="a JSON-lines file of finished runs, read and added to")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        endpoint = Endpoint(args.base_url, args.model, args.threads, stack)
        name = args.model if args.base_url else "lm"
        for task in args.tasks.split(","):
            for seed in seed_list(args.seeds):
                values = {"seed": seed, "task": task, "steps": args.steps, "batch": args.batch,
                          "dev_problems": args.dev, "problems": args.problems, "max_tokens": args.max_tokens,
                          "model": name}
                key = {**values, "model": args.model, "candidates": args.candidates, "dspy_markers": args.dspy_markers}
                emit(bench="symbolic", seed=seed, task=task,
                     **recorded(args.record, key, both_sides, args, values, task, seed, endpoint))


def both_sides(args, values: dict, task: str, seed: int, endpoint: Endpoint) -> dict:
    """Our optimiser and DSPy's on one task and seed: what the bench prints for it."""
    values = {**values, "base_url": endpoint()}
    s = run("symbolic", args.out / f"{task}-{seed}", values)
    optimisation_calls = s["lm_calls"] - s["rounds"][-1]["lm_calls"]
    theirs = dspy_side(build_config(Config, values), values["base_url"], args.candidates, not args.dspy_markers)
    return {"problems": s["problems"], "model": args.model, "ours_initial": s["test_accuracy"]["initial"],
            "ours_optimised": s["test_accuracy"]["optimised"], "ours_calls": optimisation_calls,
            "ours_dev_by_step": s["dev_by_step"], "dspy_initial": theirs["initial"],
            "dspy_optimised": theirs["optimised"], "dspy_calls": theirs["calls"],
            "dspy_dev_by_candidate": theirs["dev_by_candidate"], "best_pipeline": s["best_pipeline"],
            "wall_seconds": round(s["wall_seconds"], 1)}


if __name__ == "__main__":
    main()
