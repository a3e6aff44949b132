"""R1-T1: translation learned by RL over human-style chain-of-thought templates, on toy languages.

He et al. (2025), "R1-T1: Fully Incentivizing Translation Capability in LLMs via Reasoning
Learning", arXiv:2502.19735

    round 0: supervised fine-tuning on translations into generated languages whose lexicon and rules
             are in the prompt (tasks/toy_translation.py), written after one of two reasoning
             templates (gloss then reorder; parts then order), or directly with templates=false
    iteration i: GRPO exactly as `selfevolve run grpo`, rewarded by the form (the template, then
             "=> translation") plus chrF of the translation, with a KL term to the reference;
             held-out chrF on languages seen in training and on unseen ones after every iteration

    selfevolve run r1t1 --set templates=false      (GRPO without templates)
    selfevolve run r1t1 --set kl_coef=0            (GRPO without KL)
    selfevolve run r1t1 --set iterations=0         (SFT only)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfevolve.on_policy import OnPolicyConfig, learn_on_policy, rl_plots
from selfevolve.selftrain import family, self_train
from selfevolve.tasks.toy_translation import ToyTranslationTask


@dataclass
class Config(OnPolicyConfig):
    task: str = "translation"
    templates: bool = True
    """Round-0 answers (and so the policy's) reason by a template before "=> translation"."""
    seen_languages: int = 200
    """Languages that training draws from; held-out problems are half in these, half in unseen ones."""
    rewards: tuple[str, ...] = ("format", "score")
    reward_weights: tuple[float, ...] = (0.2, 1.0)
    difficulty: int = 3
    num_labelled: int = 3000
    round0_steps: int = 1500
    problems_per_iteration: int = 1600
    eval_problems: int = 300
    samples_per_problem: int = 4

    def __post_init__(self) -> None:
        if self.task != "translation":
            raise ValueError(f"r1t1 translates toy languages (task=translation), got task={self.task!r}")
        if self.seen_languages < 1:
            raise ValueError(f"seen_languages must be >= 1, got {self.seen_languages}")
        super().__post_init__()

    def make_task(self) -> ToyTranslationTask:
        return ToyTranslationTask(self.templates, self.seen_languages)


def chrf_plot(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    rounds = summary["rounds"]
    return [plot_lines([r["round"] for r in rounds],
                       {f"chrF, {g} languages": [r["score_by_group"][g] for r in rounds] for g in ("seen", "unseen")},
                       "held-out chrF per iteration", "iteration", "chrF / 100", plot_dir / "chrf.png")]


def run(cfg: Config, store, progress) -> dict:
    return self_train(cfg, store, progress, act=learn_on_policy)


RECIPE = family(Config, run, lambda summary, plot_dir: rl_plots(summary, plot_dir) + chrf_plot(summary, plot_dir))
