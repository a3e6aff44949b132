"""An outcome reward model as a judge: trained on the policy's own verified answers to labelled
problems, then the only thing that decides which answers to new problems are kept."""

from __future__ import annotations

import numpy as np
import torch

from selfevolve.judge.invariance import auc
from selfevolve.judge.reward import RewardModel, train_pointwise
from selfevolve.models.policy import Policy
from selfevolve.progress import Progress
from selfevolve.search.answers import Judge, sample_and_judge
from selfevolve.search.sampling import NO_STOP
from selfevolve.tasks.base import Problem, Task
from selfevolve.train.sft import Examples, SFTConfig


def train_outcome_judge(policy: Policy, task: Task, labelled: list[Problem], samples: int, temperature: float,
                        steps: int, sft: SFTConfig, gen: torch.Generator, progress: Progress,
                        title: str) -> tuple[Judge, dict, RewardModel]:
    """Sample `samples` answers to each labelled problem, verify them, train an ORM (initialised from
    the policy) on those verdicts; returns the judge (P(correct) per answer), what it trained on, and
    the ORM itself (saved with the round's checkpoint, so `selfevolve audit RUN` can judge it)."""
    with progress.task(f"{title}: sample {samples} answers x {len(labelled)} labelled problems",
                       len(labelled)) as advance:
        seen = sample_and_judge(policy, task, labelled, samples, temperature, gen, advance=advance)
    prompts = [p.prompt for p, row in zip(seen.problems, seen.texts, strict=True) for _ in row]
    orm = RewardModel.from_policy(policy.model)
    examples = Examples.encode(policy.tok, prompts, [t for row in seen.texts for t in row])
    loss = train_pointwise(orm, examples, seen.correct.ravel(), steps, sft, gen, progress, f"{title}: train the ORM")
    fit_auc = auc(orm.score(examples), seen.correct.ravel())

    def judge(problems: list[Problem], texts: list[list[str]], correct: np.ndarray) -> np.ndarray:
        flat = [t for row in texts for t in row]
        scores = orm.score(Examples.encode(policy.tok, [p.prompt for p, row in zip(problems, texts, strict=True)
                                                        for _ in row], flat))
        scores[[t == NO_STOP for t in flat]] = 0.0  # an unfinished answer is no answer
        return scores.reshape(correct.shape)

    return judge, {"orm_loss": loss, "orm_fit_auc": fit_auc, "orm_samples": int(seen.correct.size)}, orm
