"""SELF: a model that learns to criticise and refine its own answers, then evolves on what it judges right.

Lu et al. (2023), "SELF: Self-Evolution with Language Feedback", arXiv:2310.00533

    round 0: the meta-skills: supervised fine-tuning on the labelled problems' answers, critiques of
             first answers (the task's feedback, e.g. "gives 96, not 100") and refinements
             (search/refine.py); meta_skills=false trains the answers alone (the ablation)
    iteration i: sample answers to new problems; the model criticises each, refines those it does
             not call correct and criticises the refinement; keep the final answers by
             `filter`: self (the model calls them correct), oracle (the verifier: an upper bound,
             not a method) or none; fine-tune on them as STaR, mixing in the meta-skill examples
    every iteration: held-out pass@1 without refinement and with it at inference (pass1_refined),
             and how often the model's own verdict on its greedy answer is right (judge_accuracy)

    selfevolve run self --set filter=oracle
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfevolve.search.answers import Answers, sample_and_judge
from selfevolve.search.refine import meta_skill_examples, self_refine
from selfevolve.selftrain import Proposal, SelfTrainConfig, Step, family, finetune_on_kept, self_train
from selfevolve.tasks.base import Problem
from selfevolve.train.sft import Examples

FILTERS = ("self", "oracle", "none")


@dataclass
class Config(SelfTrainConfig):
    LATER_ROUNDS = (*SelfTrainConfig.LATER_ROUNDS, "filter")
    meta_skills: bool = True
    """Round 0 also learns to criticise and refine (false: answers only, the paper's ablation)."""
    filter: str = "self"
    """Which final answers are kept: self (the model's own verdict), oracle (the verifier) or none."""
    samples_per_problem: int = 2
    # SelfTrainConfig defaults changed: the setting of bench/star_family.py, with three times its round-0
    # steps for three kinds of examples (on seed 0's dev split: 400 steps 0.156, 1,200 steps 0.292 pass@1)
    difficulty: int = 3
    num_labelled: int = 1500
    n_embd: int = 64
    round0_steps: int = 1200
    iteration_steps: int = 100
    problems_per_iteration: int = 1600
    eval_problems: int = 500

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.filter not in FILTERS:
            raise ValueError(f"filter must be one of {', '.join(FILTERS)}, got {self.filter!r}")
        if not hasattr(self.make_task(), "feedback"):
            raise ValueError(f"self needs a task that writes feedback (countdown, addition, multiplication), "
                             f"got task={self.task!r}")

    def round0_examples(self, tok, seed_set: list[Problem], rng: np.random.Generator) -> Examples:
        if not self.meta_skills:
            return Examples.of_problems(tok, seed_set)
        return meta_skill_examples(tok, self.make_task(), seed_set, rng)

    def evaluate_more(self, policy, task, problems: list[Problem], greedy: list[str]) -> dict:
        feedback, finals, _ = self_refine(policy, task, problems, greedy)
        right = [task.verify(p, g) for p, g in zip(problems, greedy, strict=True)]
        return {"pass1_refined": float(np.mean([task.verify(p, f) for p, f in zip(problems, finals, strict=True)])),
                "judge_accuracy": float(np.mean([(f == "correct") == r for f, r in zip(feedback, right, strict=True)]))}


def sample_and_refine(step: Step, problems: list[Problem]) -> Proposal:
    """Answers, each criticised and (unless called correct) refined by the model; the table holds the
    final answers, scored by the filter."""
    cfg, task, k = step.cfg, step.task, step.cfg.samples_per_problem
    with step.progress.task(f"sample {k} answers x {len(problems)}", len(problems)) as advance:
        drawn = sample_and_judge(step.policy, task, problems, k, cfg.temperature, step.gen, advance=advance)
    flat = [p for p in problems for _ in range(k)]
    with step.progress.task(f"criticise and refine {len(flat)} answers", 1) as advance:
        feedback, finals, judged = self_refine(step.policy, task, flat, [t for row in drawn.texts for t in row])
        advance(1)
    correct = np.array([task.verify(p, f) for p, f in zip(flat, finals, strict=True)]).reshape(-1, k)
    judged = np.array(judged).reshape(-1, k)
    score = {"self": judged, "oracle": correct, "none": np.ones_like(correct)}[cfg.filter].astype(float)
    answers = Answers(problems, [finals[i * k:(i + 1) * k] for i in range(len(problems))], correct, score,
                      drawn.temperature)
    refined = np.array([f != "correct" for f in feedback])
    return Proposal(answers, cfg.temperature, 0.5,
                    {"refined_share": float(refined.mean()),
                     "judged_precision": float(correct[judged].mean()) if judged.any() else float("nan"),
                     "first_correct": float(drawn.correct.mean())})


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, propose=sample_and_refine, learn=finetune_on_kept)


RECIPE = family(Config, run)
