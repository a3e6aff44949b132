"""Evaluating a candidate program in stages, each in the sandbox: cheap checks first, the full
evaluation only for candidates that pass them (AlphaEvolve's evaluation cascade).

The user's evaluator is Python source with one function per stage, each taking the candidate as a
module and returning a dict of metrics, e.g.

    def quick(program):      # a few small cases: is it worth a full run?
        return {"score": float(program.heuristic(3) > 0)}

    def evaluate(program):   # the real measurement
        return {"score": ..., "length": ...}

A stage's `score` below its threshold stops the cascade. The candidate is model-written code: it
and the evaluator run together in a fresh confined interpreter per stage (sandbox/process.py),
so nothing it does reaches the run, and a crash, a hang or a refused system call is an error text
for the next prompt, never an exception here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from selfevolve.sandbox.process import run_python

MARK = "@@selfevolve-metrics@@"
DRIVER = """
import json, types
program = types.ModuleType("program")
exec(compile({program!r}, "program.py", "exec"), program.__dict__)
evaluator = {{}}
exec(compile({evaluator!r}, "evaluator.py", "exec"), evaluator)
metrics = evaluator[{stage!r}](program)
print({mark!r} + json.dumps({{str(k): float(v) for k, v in dict(metrics).items()}}))
"""


@dataclass(frozen=True)
class Stage:
    function: str  # the evaluator's function for this stage
    threshold: float = float("-inf")  # a score below it ends the cascade
    timeout: float = 5.0


@dataclass
class Evaluation:
    metrics: dict[str, float]
    error: str  # "" unless a stage failed
    stages: int  # how many stages ran

    def complete(self, of: int) -> bool:
        """Whether the metrics are the last stage's: comparable with other finished candidates."""
        return not self.error and self.stages == of


def run_stage(program: str, evaluator: str, stage: Stage) -> tuple[dict[str, float], str]:
    """One stage in the sandbox: its metrics, or an error text written for the model."""
    result = run_python(DRIVER.format(program=program, evaluator=evaluator, stage=stage.function, mark=MARK),
                        timeout=stage.timeout, cpu_seconds=max(1, int(stage.timeout)))
    if not result.ok:
        tail = "\n".join(result.stderr.strip().splitlines()[-3:])
        return {}, f"{stage.function}: {result.reason}" + (f"\n{tail}" if tail else "")
    line = next((x for x in reversed(result.stdout.splitlines()) if x.startswith(MARK)), None)
    if line is None:
        return {}, f"{stage.function}: the evaluator printed no metrics"
    return json.loads(line[len(MARK):]), ""


def cascade(program: str, evaluator: str, stages: list[Stage]) -> Evaluation:
    """Run the stages in order until one fails or scores below its threshold; the metrics of the last
    stage that ran."""
    metrics: dict[str, float] = {}
    for n, stage in enumerate(stages, start=1):
        metrics, error = run_stage(program, evaluator, stage)
        if error:
            return Evaluation({}, error, n)
        if metrics.get("score", float("-inf")) < stage.threshold:
            return Evaluation(metrics, "", n)
    return Evaluation(metrics, "", len(stages))
