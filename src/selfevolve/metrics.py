"""What self-training is measured by: pass@k and B-STaR's exploration and exploitation monitors."""

from __future__ import annotations

import numpy as np


def distinct_per_problem(texts: list[list[str]], keep: np.ndarray) -> np.ndarray:
    """Distinct answers per problem among those where keep (problems, k) is True."""
    return np.array([len({t for t, k in zip(row, ks, strict=True) if k}) for row, ks in zip(texts, keep, strict=True)])


def exploration_metrics(correct: np.ndarray, texts: list[list[str]], balance_target: int,
                        reward: np.ndarray | None = None, threshold: float = 0.5) -> dict[str, float]:
    """B-STaR's monitors over k samples per problem (Zeng et al. 2024, arXiv:2412.17256).

    correct: (problems, k) gold verdicts; texts: the answers; reward: the judge's scores (default:
    the verdicts, an exact verifier); an answer is selected when its reward >= threshold.
    Exploration: pass_at_k (Pass@K-S, a correct answer among the k), diversity (distinct correct
    answers). Exploitation: reward_at_k (Reward@K-S, the highest-reward answer is correct) and
    precision (share of selected answers that are correct). balance: mean over problems of
    min(n' / n*, 1) * n' / n, with n' distinct correct selected answers and n distinct selected
    answers. Distinct, as in the authors' code, which deduplicates the selected answers before it
    scores them: counting copies would make a temperature that finds a right answer once look better
    than one that finds it every time.
    """
    reward = correct.astype(np.float32) if reward is None else reward
    selected = reward >= threshold
    good, n = distinct_per_problem(texts, correct & selected), distinct_per_problem(texts, selected)
    balance = np.where(n > 0, np.minimum(good / balance_target, 1) * good / np.maximum(n, 1), 0)
    best = correct[np.arange(len(correct)), reward.argmax(axis=1)]
    return {"pass_at_k": float(correct.any(axis=1).mean()), "sample_accuracy": float(correct.mean()),
            "diversity": float(distinct_per_problem(texts, correct).mean()), "reward_at_k": float(best.mean()),
            "precision": float((correct & selected).sum() / max(1, selected.sum())), "balance": float(balance.mean())}


def judged_balance(texts: list[list[str]], reward: np.ndarray, threshold: float, balance_target: int) -> float:
    """B-STaR's balance score from a reward model's scores alone, with no gold label: over the distinct
    answers a problem has selected (reward >= threshold), n' is their expected number of correct ones
    (the sum of their P(correct)) and n their number; the mean over problems of min(n'/n*, 1) * n'/n."""
    scores = []
    for row, row_reward in zip(texts, reward, strict=True):
        first = {}
        for t, s in zip(row, row_reward, strict=True):
            if s >= threshold:
                first.setdefault(t, float(s))
        good, n = sum(first.values()), len(first)
        scores.append(min(good / balance_target, 1) * good / n if n else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def mean_interval(values, rng: np.random.Generator, resamples: int = 10_000) -> list[float]:
    """A bootstrap 95% interval of the mean (resampling the values, e.g. seeds or markets, with replacement)."""
    values = np.asarray(values, dtype=float)
    means = rng.choice(values, (resamples, len(values))).mean(1)
    return [float(q) for q in np.quantile(means, [0.025, 0.975])]
