"""Judges that need no label: does the model agree with itself under changes that must not change
the answer? (Lee et al. 2025, length generalisation by self-improvement: a longer problem's
self-label is kept only when these checks pass.) Each returns one verdict per problem; `advance(n)`
is told as each batch of n problems is answered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from selfevolve.config import check_min
from selfevolve.progress import Progress
from selfevolve.search.sampling import answer, majority_vote
from selfevolve.tasks.arithmetic import ArithmeticTask
from selfevolve.tasks.base import Problem

Advance = Callable[[int], None] | None
FILTERS = ("length", "commute", "split", "offsets", "vote", "confidence")


@dataclass
class ConsistencyConfig:
    """The label-free filters' settings, for any recipe that keeps self-labels by them."""

    filters: tuple[str, ...] = ("length", "commute", "split")
    """Unsupervised filters a self-label must pass: length, commute, split, offsets, vote, confidence."""
    split_checks: int = 9
    """split filter: the answer must agree with the model's answers to the problem split into its
    k lowest digits and the rest, for k = d-1, d-2, ... (this many values): easier problems."""
    num_offsets: int = 3
    """offsets filter: greedy answers under this many digit-index offsets must agree."""
    num_votes: int = 8
    """vote filter: samples per problem at vote_temperature."""
    vote_temperature: float = 0.7
    """vote filter: sampling temperature."""
    agreement_threshold: float = 0.8
    """vote filter: the greedy answer must have at least this share of the votes."""
    min_confidence: float = 0.9
    """confidence filter: every answer token must have at least this probability."""

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]  (a mixin before the recipe's config base)
        bad = [f for f in self.filters if f not in FILTERS]
        if bad:
            raise ValueError(f"filters: unknown filter {bad[0]!r}; valid: {', '.join(FILTERS)}")
        check_min(self, 1, "split_checks", "num_offsets", "num_votes")
        for name in ("agreement_threshold", "min_confidence"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.vote_temperature <= 0:
            raise ValueError(f"vote_temperature must be > 0, got {self.vote_temperature}")


def self_labels(model, tok, task: ArithmeticTask, problems: list[Problem], cfg: ConsistencyConfig, digits: int,
                max_offset: int, generator: torch.Generator, progress: Progress, title: str) -> dict[str, list]:
    """The model's greedy answers to `problems` of `digits` digits, each filter's verdicts, and which
    answers pass them all (`kept`); one progress bar over every answering pass."""
    splits = range(max(1, digits - cfg.split_checks), digits)
    offsets = [round(k * max_offset / cfg.num_offsets) for k in range(1, cfg.num_offsets)]
    passes = {"commute": 1, "split": 2 * len(splits), "offsets": len(offsets), "vote": 1}
    cols: dict[str, list] = {}
    with progress.task(title, len(problems) * (1 + sum(n for f, n in passes.items() if f in cfg.filters))) as advance:
        labels, confidence = answer(model, tok, problems, advance=advance)
        if "length" in cfg.filters:
            cols["well_formed"] = [task.well_formed(p, a) for p, a in zip(problems, labels, strict=True)]
        if "commute" in cfg.filters:
            cols["commute_agrees"] = commute_agrees(model, tok, task, problems, labels, advance)
        if "split" in cfg.filters:
            cols["split_agrees"] = split_agrees(model, tok, task, problems, labels, splits, advance)
        if "offsets" in cfg.filters:
            cols["offsets_agree"] = offsets_agree(model, tok, problems, labels, offsets, advance)
        if "vote" in cfg.filters:
            cols["vote_share"] = vote_shares(model, tok, problems, labels, cfg.num_votes, cfg.vote_temperature,
                                             generator, advance)
    keep = np.ones(len(problems), dtype=bool)
    for name, values in cols.items():
        keep &= np.array(values) >= cfg.agreement_threshold if name == "vote_share" else np.array(values, bool)
    if "confidence" in cfg.filters:
        keep &= (confidence >= cfg.min_confidence).numpy()
    return {"answer": labels, "min_token_prob": confidence.tolist(), **cols, "kept": keep.tolist()}


def commute_agrees(model, tok, task: ArithmeticTask, problems: list[Problem], labels: list[str],
                   advance: Advance = None) -> list[bool]:
    """b + a gives the same answer as a + b."""
    swapped, _ = answer(model, tok, [task.variants(p)[0] for p in problems], advance=advance)
    return [a == b for a, b in zip(labels, swapped, strict=True)]


def split_agrees(model, tok, task: ArithmeticTask, problems: list[Problem], labels: list[str], splits: range,
                 advance: Advance = None) -> list[bool]:
    """At each split point k, the answers to the low k digits and to the rest combine into the label."""
    agree = np.ones(len(problems), dtype=bool)
    for k in splits:
        low, high = zip(*(task.split(p, k) for p in problems), strict=True)
        low_answers, _ = answer(model, tok, list(low), advance=advance)
        high_answers, _ = answer(model, tok, list(high), advance=advance)
        agree &= [task.agrees_with_split(*v, k) for v in zip(labels, low_answers, high_answers, strict=True)]
    return agree.tolist()


def offsets_agree(model, tok, problems: list[Problem], labels: list[str], offsets: list[int],
                  advance: Advance = None) -> list[bool]:
    """Shifting every digit position by each offset (the abacus index) leaves the answer unchanged."""
    agree = np.ones(len(problems), dtype=bool)
    for offset in offsets:
        shifted, _ = answer(model, tok, problems, digit_offset=offset, advance=advance)
        agree &= [a == b for a, b in zip(labels, shifted, strict=True)]
    return agree.tolist()


def vote_shares(model, tok, problems: list[Problem], labels: list[str], votes: int, temperature: float,
                generator: torch.Generator, advance: Advance = None) -> list[float]:
    """The share of the greedy label and `votes` samples that agree with the label when it is the
    majority answer, 0 otherwise."""
    sampled, _ = answer(model, tok, problems, num_samples=votes, temperature=temperature, generator=generator,
                        advance=advance)
    groups = [[labels[i], *sampled[i * votes:(i + 1) * votes]] for i in range(len(problems))]
    return [share if best == labels[i] else 0.0 for i, (best, share) in enumerate(majority_vote(groups))]
