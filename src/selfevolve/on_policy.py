"""On-policy self-training: the engine's `Act` hook for the policy-gradient recipes (GRPO, priming,
R1-T1). Each iteration runs `iteration_steps` steps of train/rl.py on its new problems, with a KL
term to the reference (the policy at the start of the iteration, or the round-0 model), and hands
every completion it sampled, with its reward, to the engine's sample table.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from selfevolve.config import check_min
from selfevolve.judge.rewards import combine, resolve
from selfevolve.search.answers import Answers
from selfevolve.selftrain import Learned, Proposal, SelfTrainConfig, Step
from selfevolve.tasks.base import Problem, Task
from selfevolve.train.rl import RLConfig, Trainer, train_steps


@dataclass
class OnPolicyConfig(RLConfig, SelfTrainConfig):
    """Self-training by policy gradient: the trainer's settings, the reward functions, and the setting
    of bench/star_family.py (so GRPO, priming and the rest compare with the STaR family)."""

    rewards: tuple[str, ...] = ("correct",)
    """Reward functions, summed with reward_weights: correct, format, length, or module:function
    (TRL's signature: (prompts, completions, **columns) -> list[float])."""
    reward_weights: tuple[float, ...] = (1.0,)
    """One weight per reward function."""

    # SelfTrainConfig defaults changed: the setting of bench/star_family.py
    difficulty: int = 3
    num_labelled: int = 1500
    n_embd: int = 64
    round0_steps: int = 400
    iterations: int = 4
    iteration_steps: int = 100
    """Policy-gradient steps per iteration."""
    problems_per_iteration: int = 1600
    """New problems each iteration (iteration_steps x prompts_per_step uses each once)."""
    eval_problems: int = 500
    # RLConfig defaults changed (chosen for grpo on the dev split: bench/star_dev_sweep.py)
    rl_learning_rate: float = 3e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"reward_weights needs one weight per reward ({len(self.rewards)}), "
                             f"got {len(self.reward_weights)}")
        self.reward_fn(self.make_task())  # an unknown reward or module fails before the run starts
        if self.native and self.lora_r:
            raise ValueError("native=true runs the model's own weights, not LoRA adapters: set lora_r=0 or "
                             "native=false")
        check_min(self, 1, "iteration_steps")  # each step draws the samples it learns from

    def keeps_base(self) -> bool:
        return super().keeps_base() or not self.refresh_reference

    def sft(self):
        return replace(super().sft(), fused=self.native)  # native=true steps AdamW fused too

    def reward_fn(self, task: Task):
        return combine([(resolve(name, task), w) for name, w in zip(self.rewards, self.reward_weights, strict=True)])


def columns(problems: list[Problem]) -> dict[str, list]:
    """What a reward function gets besides prompts and completions: the problem and its fields."""
    return {"problem": problems, **{k: [p.fields.get(k) for p in problems] for k in problems[0].fields}}


def learn_on_policy(step: Step, problems: list[Problem]) -> tuple[Proposal, Learned]:
    """The iteration's policy-gradient steps; every completion sampled, with its reward, for the table."""
    cfg, task = step.cfg, step.task
    reference = step.policy.model if cfg.refresh_reference else step.base
    done = (step.r - 1) * cfg.iteration_steps
    trainer = Trainer(step.policy, cfg, step.optimizer, cfg.sft(), cfg.iterations * cfg.iteration_steps,
                      copy.deepcopy(reference) if cfg.kl_coef else None, done,
                      step.history[-1].get("baseline", 0.0) if step.history else 0.0)
    log = train_steps(trainer, problems, cfg.iteration_steps, lambda p: p.prompt, columns, cfg.reward_fn(task),
                      task.max_answer_tokens, step.gen, step.progress,
                      f"round {step.r}: {cfg.algorithm}, {cfg.prompts_per_step} prompts x {cfg.group_size}")
    chunks = [p for chunk, _, _ in log for p in chunk]
    texts = [[b.completions[i * cfg.group_size + j] for j in range(cfg.group_size)]
             for _, b, _ in log for i in range(len(b.rewards))]
    correct = np.array([[task.verify(p, t) for t in row] for p, row in zip(chunks, texts, strict=True)])
    reward = np.concatenate([b.rewards.numpy() for _, b, _ in log])
    answers = Answers(chunks, texts, correct, reward, np.full(correct.shape, cfg.rl_temperature))
    stats = [s for _, _, s in log]
    tokens = int(sum(int(b.lengths.sum()) for _, b, _ in log)) * cfg.updates_per_batch
    return (Proposal(answers, cfg.rl_temperature, 1.0, {}),
            Learned(step.optimizer, float(np.mean([s["loss"] for s in stats])), tokens,
                    {"rl_steps": stats, "baseline": trainer.baseline}))


def rl_plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_rl_steps

    return plot_rl_steps(summary["rounds"], plot_dir)


