"""Is a run's judge a measurement? The reward models a finished run holds (rstar's PPM, PRM and ORM;
a STaR-family run's ORM with judge=orm), checked the way the audit checks a model's self-assessment.

The run's own policy samples answers to fresh problems and the task's verifier marks them. For each
judge: its agreement with the verifier (AUC: how often a right answer outscores a wrong one), and
its invariance under paraphrase: the task rewrites every answer in other words that keep its
meaning (a variable renamed, the operands of + and * swapped; `task.paraphrase`, and only
paraphrases the verifier marks the same are used), and the judge should score both alike. Reported:
the mean absolute change of the score, the same over the scores' own spread across answers, the
AUC on the paraphrases, and the share of (right, wrong) pairs of one problem whose order a
paraphrase flips. Position bias does not apply: these judges score one answer at a time, so a
comparison by their scores is the same in either order (said in the report, not measured).
"""

from __future__ import annotations

import numpy as np
import torch

from selfevolve.models.policy import Policy
from selfevolve.search.answers import sample_and_judge
from selfevolve.tasks.base import Problem
from selfevolve.train.sft import Examples


def auc(scores: np.ndarray, right: np.ndarray) -> float | None:
    """P(a right answer scores above a wrong one), ties counting half; None without both kinds."""
    pos, neg = scores[right], scores[~right]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).mean()
    return float(greater + 0.5 * (pos[:, None] == neg[None, :]).mean())


def flipped_share(original: np.ndarray, paraphrased: np.ndarray, right: np.ndarray, groups: np.ndarray) -> float | None:
    """Of the (right, wrong) answer pairs of one problem that the original scores order strictly, the share
    that the paraphrases' scores order the other way."""
    flips = total = 0
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        for i in idx[right[idx]]:
            for j in idx[~right[idx]]:
                before = np.sign(original[i] - original[j])
                if before:
                    total += 1
                    flips += int(np.sign(paraphrased[i] - paraphrased[j]) == -before)
    return flips / total if total else None


def judge_report(policy: Policy, judges: dict, task, problems: list[Problem], samples: int, temperature: float,
                 gen: torch.Generator, rng: np.random.Generator) -> dict:
    """Each judge's agreement with the verifier and invariance under paraphrase, on the policy's own answers."""
    answers = sample_and_judge(policy, task, problems, samples, temperature, gen)
    rows = [(k, p, t, bool(c)) for k, (p, texts, verdicts) in enumerate(zip(answers.problems, answers.texts,
                                                                          answers.correct, strict=True))
            for t, c in zip(texts, verdicts, strict=True)]
    para = [task.paraphrase(p, t, rng) for _, p, t, _ in rows]
    same = [i for i, ((_, p, t, c), q) in enumerate(zip(rows, para, strict=True)) if q != t and task.verify(p, q) == c]
    groups = np.array([rows[i][0] for i in same])
    right = np.array([rows[i][3] for i in same])
    prompts = [rows[i][1].prompt for i in same]
    report = {"answers": len(rows), "paraphrased": len(same), "right_share": float(right.mean()) if len(same) else None,
              "position_bias": "not applicable: each judge scores one answer at a time", "judges": {}}
    for name, judge in judges.items():
        original = judge.score(Examples.encode(policy.tok, prompts, [rows[i][2] for i in same]))
        other = judge.score(Examples.encode(policy.tok, prompts, [para[i] for i in same]))
        change = float(np.abs(original - other).mean())
        report["judges"][name] = {
            "auc": auc(original, right), "auc_paraphrased": auc(other, right), "mean_abs_change": change,
            "change_over_spread": change / (float(original.std()) + 1e-9),
            "flipped_pairs": flipped_share(original, other, right, groups)}
    return report
