"""Auditing a run's judges: the measures on scores with a known effect, paraphrases that keep an answer's
meaning, and the report on a finished rstar run's three reward models."""

import json

import numpy as np
from helpers import assert_clean_error, run_cli
from test_rstar import TINY

from selfevolve.judge.invariance import auc, flipped_share
from selfevolve.tasks import get_task


def test_the_measures_on_scores_with_a_known_effect():
    right = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), right) == 1.0 and auc(np.array([0.1, 0.2, 0.8, 0.9]), right) == 0.0
    assert auc(np.full(4, 0.5), right) == 0.5 and auc(np.ones(2), right[:2]) is None
    groups = np.array([0, 0, 0, 0])
    # the paraphrase turns one of the four strictly ordered (right, wrong) pairs around
    assert flipped_share(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0.9, 0.15, 0.2, 0.1]), right, groups) == 0.25


def test_paraphrases_keep_the_verdict_and_change_the_words():
    rng = np.random.default_rng(0)
    for name, difficulty in (("wordmath", 4), ("countdown", 3)):
        task = get_task(name)
        changed = 0
        for p in task.sample(50, difficulty, rng, mixed=True):
            other = task.paraphrase(p, p.answer, rng)
            assert task.verify(p, other), (p.answer, other)
            changed += other != p.answer
        assert changed >= (50 if name == "wordmath" else 35)  # "6+6" or "9-2" have no other words here
        wrong = task.sample(1, difficulty, rng)[0]
        assert not task.verify(wrong, task.paraphrase(wrong, "1+2", rng))


def test_a_finished_rstar_run_s_reward_models_are_audited_as_judges(finished_run, tmp_path):
    run = finished_run("rstar", TINY)
    out = tmp_path / "judges.json"
    proc = run_cli("audit", str(run), "--problems", "12", "--samples", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report["judges"]) == {"ppm", "prm", "orm"} and report["paraphrased"] > 0
    for row in report["judges"].values():
        assert row["mean_abs_change"] >= 0 and all(row[k] is None or 0 <= row[k] <= 1 for k in ("auc", "flipped_pairs"))
    assert "not applicable" in report["position_bias"]
    assert_clean_error(run_cli("audit", str(run), "--samples", "1"), "--samples >= 2")
