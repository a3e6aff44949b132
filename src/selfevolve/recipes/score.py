"""SCoRe: self-correction learned by multi-turn RL on the model's own attempts.

Kumar et al. (2024), "Training Language Models to Self-Correct via Reinforcement Learning",
arXiv:2409.12917

    round 0: supervised fine-tuning on the labelled problems, plus as many second-attempt examples
             (the problem, a first answer, the instruction, then the right answer), half after the
             right answer (kept) and half after a wrong one (one digit changed): a model that has
             seen the format, not one that corrects its own mistakes
    iterations 1..stage1_iterations: stage I, turn 2 learns from r(y2) while a strong KL
             (first_turn_kl) holds turn 1 to the reference
    later iterations: stage II, both turns learn from r(y1) + r(y2), turn 2 with the bonus
             alpha (r(y2) - r(y1)) (train/correction.py)
    every iteration: held-out Accuracy@t1, Accuracy@t2, Delta(t1, t2), Delta i->c, Delta c->i and
             the share of second attempts that repeat the first, greedy

    selfevolve run score --set objective=turn2      (multi-turn RL on r(y2) alone, no shaping)
    selfevolve run score --set objective=star       (STaR on successful correction traces)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.on_policy import OnPolicyConfig, columns
from selfevolve.search.answers import Answers
from selfevolve.search.sampling import ask
from selfevolve.selftrain import Learned, Proposal, Step, family, self_train
from selfevolve.tasks.base import Problem, first_attempts, first_digit_up
from selfevolve.train.correction import CorrectionTrainer, sample_two_attempts, second_prompt, transitions
from selfevolve.train.rl import step_problems
from selfevolve.train.sft import Examples

OBJECTIVES = ("score", "turn2", "star")


@dataclass
class Config(OnPolicyConfig):
    LATER_ROUNDS = (*OnPolicyConfig.LATER_ROUNDS, "objective", "stage1_iterations", "alpha", "shaped_first_turn",
                    "first_turn_kl")
    objective: str = "score"
    """score (stage I, then stage II with the shaped bonus), turn2 (both turns learn from r(y2) alone) or
    star (fine-tuning on the second attempts that fixed a wrong first one): the last two are the paper's
    baselines, drawing the same completions."""
    stage1_iterations: int = 1
    """Iterations of stage I before stage II (objective=score)."""
    alpha: float = 10.0
    """Stage II's bonus weight on r(y2) - r(y1)."""
    shaped_first_turn: bool = False
    """Stage II also credits turn 1 with turn 2's bonus (its literal return to go): an ablation, since
    it charges a right first answer and the model learns to answer wrong first."""
    first_turn_kl: float = 0.5
    """Stage I's KL weight on the first attempt (kl_coef weighs the rest)."""
    fixable_mistakes: float = 0.0
    """Share of round 0's first answers taught wrong the same way (the first digit one up; its second
    attempts are taught right as always): a model that makes mistakes it knows how to fix, the setting
    in which tests/test_score.py checks what SCoRe does with them. 0: every answer taught right."""
    group_size: int = 4
    prompts_per_step: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.rewards != ("correct",):
            raise ValueError("score's rewards are the verifier's (rewards=correct): its measures count right answers")
        if self.alpha < 0 or self.first_turn_kl < 0 or self.stage1_iterations < 0:
            raise ValueError("alpha, first_turn_kl and stage1_iterations must be >= 0")
        if not 0 <= self.fixable_mistakes <= 1:
            raise ValueError(f"fixable_mistakes must be a share in [0, 1], got {self.fixable_mistakes}")
        if self.updates_per_batch != 1:
            raise ValueError("score takes one update per batch of two attempts (updates_per_batch=1)")

    def round0_examples(self, tok, seed_set: list[Problem], rng: np.random.Generator) -> Examples:
        firsts = first_attempts(seed_set, rng)
        answers = [p.answer for p in seed_set]
        if self.fixable_mistakes:  # drawn only then, so that the default's round 0 stays as measured
            wrong = rng.random(len(seed_set)) < self.fixable_mistakes
            answers = [first_digit_up(a) if w else a for a, w in zip(answers, wrong, strict=True)]
        return Examples.encode(tok, [p.prompt for p in seed_set] + [second_prompt(p.prompt, f)
                                                                   for p, f in zip(seed_set, firsts, strict=True)],
                               answers + [p.answer for p in seed_set])

    def evaluate_more(self, policy, task, problems: list[Problem], greedy: list[str]) -> dict:
        again = ask(policy, problems, [second_prompt(p.prompt, g) for p, g in zip(problems, greedy, strict=True)],
                    task.max_answer_tokens)
        return transitions([task.verify(p, g) for p, g in zip(problems, greedy, strict=True)],
                           [task.verify(p, a) for p, a in zip(problems, again, strict=True)], greedy, again)


def learn_to_correct(step: Step, problems: list[Problem]) -> tuple[Proposal, Learned]:
    """The iteration's two-attempt policy-gradient steps; the table holds, per problem, the group's first
    attempts and then their second attempts."""
    cfg, task = step.cfg, step.task
    objective = (cfg.objective if cfg.objective in ("turn2", "star") else
                 "stage1" if step.r <= cfg.stage1_iterations else "stage2")
    reference = step.policy.model if cfg.refresh_reference else step.base
    trainer = CorrectionTrainer(step.policy, cfg, step.optimizer, cfg.sft(), cfg.iterations * cfg.iteration_steps,
                                copy.deepcopy(reference), (step.r - 1) * cfg.iteration_steps)
    log, rewards = [], cfg.reward_fn(task)
    with step.progress.task(f"round {step.r}: {objective}, {cfg.prompts_per_step} prompts x {cfg.group_size} x 2",
                            cfg.iteration_steps) as advance:
        for s in range(cfg.iteration_steps):
            chunk = step_problems(problems, s, cfg.prompts_per_step)
            pair = sample_two_attempts(step.policy, [p.prompt for p in chunk], columns(chunk), rewards, cfg.group_size,
                                       task.max_answer_tokens, cfg.rl_temperature, step.gen, cfg.native)
            log.append((chunk, pair, trainer.step_star(pair) if objective == "star" else
                        trainer.step_two(pair, objective, cfg.alpha, cfg.first_turn_kl, task.max_answer_tokens,
                                         cfg.shaped_first_turn)))
            advance(t1=log[-1][2]["accuracy_t1"], t2=log[-1][2]["accuracy_t2"])
    g = cfg.group_size
    chunks = [p for chunk, _, _ in log for p in chunk]
    texts = [pair.first.completions[i * g:(i + 1) * g] + pair.second.completions[i * g:(i + 1) * g]
             for _, pair, _ in log for i in range(len(pair.first.rewards))]
    reward = np.concatenate([np.concatenate([pair.first.rewards.numpy(), pair.second.rewards.numpy()], axis=1)
                             for _, pair, _ in log])
    answers = Answers(chunks, texts, reward > 0.5, reward, np.full(reward.shape, cfg.rl_temperature))
    stats = [s for _, _, s in log]
    losses = [s["loss"] for s in stats if not np.isnan(s["loss"])]  # a STaR step with no fix has none
    tokens = int(sum(int(pair.first.lengths.sum() + pair.second.lengths.sum()) for _, pair, _ in log))
    return (Proposal(answers, cfg.rl_temperature, 1.0, {"objective": objective}),
            Learned(step.optimizer, float(np.mean(losses)) if losses else float("nan"), tokens, {"rl_steps": stats}))


def correction_plot(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    rounds = summary["rounds"]
    return [plot_lines([r["round"] for r in rounds],
                       {name: [r[key] for r in rounds] for name, key in
                        (("Accuracy@t1", "accuracy_t1"), ("Accuracy@t2", "accuracy_t2"), ("i -> c", "delta_i_to_c"),
                         ("c -> i", "delta_c_to_i"), ("t2 repeats t1", "unchanged"))},
                       "held-out attempts per iteration (greedy)", "iteration", "share of problems",
                       plot_dir / "correction.png")]


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, act=learn_to_correct)


RECIPE = family(Config, run, correction_plot)
