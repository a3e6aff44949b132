"""Two attempts at a problem, and policy gradient over both (SCoRe, Kumar et al. 2024, arXiv:2409.12917).

    turn 1: y1 ~ pi(. | x)
    turn 2: y2 ~ pi(. | x + y1 + REVISE)            REVISE: a fixed instruction to find and fix mistakes

SCoRe's stage I maximises r(y2) while a strong KL (`first_turn_kl`) holds y1 to the reference, so
that turn 2 learns to correct without turn 1 collapsing onto it; stage II maximises r(y1) + r(y2)
with the shaped turn-2 reward r(y2) + alpha (r(y2) - r(y1)), which pays for fixing a wrong answer
and charges for breaking a right one. Each turn's tokens learn from their return to go:

    stage I    G1 = 0 (turn 1 moves only by its KL)     G2 = r2
    stage II   G2 = r2 + alpha (r2 - r1)                 G1 = r1 + r2
    turn2      G2 = r2, G1 = r2 (multi-turn RL on the final answer alone, the paper's baseline)

The bonus shapes turn 2 only. Carried into turn 1's return to go (`shaped_first_turn`, G1 = r1 + G2 =
(1 - alpha) r1 + (1 + alpha) r2) it charges a right first answer alpha - 1, and the model learns to
answer wrong first so that turn 2 can collect the bonus (measured in the README).

and advantages are taken per turn over the group of completions to the same problem. The paper's
other baseline, STaR on successful correction traces (`step_star`), fine-tunes turn 2 on the
batch's wrong-then-right episodes instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from selfevolve.models.policy import Policy
from selfevolve.train.rl import Batch, RewardFn, Trainer, advantages, batch_stats, logprobs_and_entropy, sample_batch

REVISE = "|again:"
OBJECTIVES = ("stage1", "stage2", "turn2")


def second_prompt(prompt: str, first: str) -> str:
    """Turn 2's prompt: the problem, the model's own first answer and the fixed instruction."""
    return f"{prompt}{first}{REVISE}"


def returns(r1: torch.Tensor, r2: torch.Tensor, objective: str, alpha: float,
            shaped_first_turn: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Each turn's return, (P, G) each (see the module docstring)."""
    if objective == "stage1":
        return torch.zeros_like(r1), r2
    if objective == "turn2":
        return r2, r2
    shaped = r2 + alpha * (r2 - r1)
    return r1 + (shaped if shaped_first_turn else r2), shaped


@dataclass
class TwoAttempts:
    first: Batch  # prompts x group first attempts
    second: Batch  # one second attempt per first attempt, rows aligned with `first`


def sample_two_attempts(policy: Policy, prompts: list[str], columns: dict[str, list], rewards: RewardFn, group: int,
                        max_new: int, temperature: float, gen: torch.Generator, native: bool = False) -> TwoAttempts:
    """`group` first attempts per prompt, then one second attempt after each, both scored by `rewards`
    (native: sampled through the forward in C)."""
    first = sample_batch(policy, prompts, columns, rewards, group, max_new, temperature, gen, native)
    seconds = [second_prompt(p, c) for p, c in zip(first.prompts, first.completions, strict=True)]
    repeated = {k: [v for v in col for _ in range(group)] for k, col in columns.items()}
    second = sample_batch(policy, seconds, repeated, rewards, 1, max_new, temperature, gen, native)
    second.rewards = second.rewards.view(len(prompts), group)
    return TwoAttempts(first, second)


def transitions(r1: np.ndarray, r2: np.ndarray, first: list[str], second: list[str]) -> dict[str, float]:
    """SCoRe's measures over paired attempts (1 = right): Accuracy@t1, @t2, Delta(t1, t2), the share
    that turned incorrect -> correct and correct -> incorrect, and the share of second attempts that
    repeat the first (the collapse the paper warns of)."""
    r1, r2 = np.asarray(r1, dtype=bool).ravel(), np.asarray(r2, dtype=bool).ravel()
    return {"accuracy_t1": float(r1.mean()), "accuracy_t2": float(r2.mean()), "delta": float(r2.mean() - r1.mean()),
            "delta_i_to_c": float((~r1 & r2).mean()), "delta_c_to_i": float((r1 & ~r2).mean()),
            "unchanged": float(np.mean([a == b for a, b in zip(first, second, strict=True)]))}


class CorrectionTrainer(Trainer):
    """The RL trainer, stepping on both turns of every episode at once."""

    def step_two(self, pair: TwoAttempts, objective: str, alpha: float, first_turn_kl: float,
                 max_new: int, shaped_first_turn: bool = False) -> dict[str, float]:
        cfg = self.cfg
        g1, g2 = returns(pair.first.rewards, pair.second.rewards, objective, alpha, shaped_first_turn)
        a1, a2 = (advantages(g, cfg.algorithm, cfg.scale_rewards, self.baseline).flatten() for g in (g1, g2))
        p1, p2 = self.prepare(pair.first), self.prepare(pair.second)
        kl1 = first_turn_kl if objective == "stage1" else cfg.kl_coef
        stats = self.update(lambda: [self.loss(p1, a1, kl1, max_new), self.loss(p2, a2, cfg.kl_coef, max_new)])
        return {**batch_stats(pair.second), **{k: float(np.mean([s[k] for s in stats])) for k in stats[0]},
                **self._transitions(pair)}

    def step_star(self, pair: TwoAttempts) -> dict[str, float]:
        """STaR on successful correction traces: one fine-tuning step (negative log-likelihood of the
        completion) on the second attempts that fixed a wrong first attempt; none if there is none."""
        fixed = torch.nonzero((pair.first.rewards.flatten() < 0.5) & (pair.second.rewards.flatten() > 0.5)).flatten()
        loss = float("nan")
        if len(fixed):
            inputs, labels = pair.second.examples.batch(fixed)

            def nll():
                logp, mask, _ = logprobs_and_entropy(self.policy.model, inputs, labels, 1.0)
                return [(-(logp * mask).sum() / mask.sum().clamp(min=1), {})]

            loss = self.update(nll)[0]["loss"]
        else:
            self.steps += 1  # the learning-rate schedule counts the step all the same
        return {**batch_stats(pair.second), "loss": loss, "fixed": len(fixed), **self._transitions(pair)}

    @staticmethod
    def _transitions(pair: TwoAttempts) -> dict[str, float]:
        return transitions(pair.first.rewards.numpy() > 0.5, pair.second.rewards.numpy() > 0.5,
                           pair.first.completions, pair.second.completions)
