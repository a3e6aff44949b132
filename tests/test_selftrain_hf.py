"""The self-training recipes on a user's own Hugging Face model with its own tokenizer."""

import json

import pytest
from helpers import run_cli, save_word_level_llama, sets, summary

pytest.importorskip("transformers")

# one-digit reversed addition: a random 2 x 64 Llama learns it from 300 labels in 400 steps (about 3 s)
ADD = ["task=addition", "difficulty=1", "num_labelled=300", "round0_steps=400", "learning_rate=3e-3", "iterations=1",
       "problems_per_iteration=100", "samples_per_problem=4", "iteration_steps=20", "eval_problems=50", "threads=2"]


@pytest.fixture(scope="module")
def word_llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("word-llama")
    save_word_level_llama(path)
    return path


@pytest.mark.parametrize("recipe, extra", [("star", []), ("bstar", ["probe_problems=20", "temperature_grid=0.8,1.2"]),
                                           ("dpo", []), ("upo", []), ("star", ["judge=orm", "orm_steps=30"])])
def test_self_training_runs_and_learns_on_a_word_level_llama(tmp_path, word_llama, recipe, extra):
    out = tmp_path / "run"
    proc = run_cli("run", recipe, "--out", str(out), *sets(ADD + extra + [f"model={word_llama}"]))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    # round 0 learned from nothing, through the model's own ids (a random model answers none)
    assert s["round0_pass1"] >= 0.8, s["rounds"][0]
    last = s["rounds"][1]
    assert last["kept"] > 0 and last["tokens_trained"] > 0, last  # the iteration trained on its own answers
    # the answers decode into the task's text through the model's tokenizer: most are right
    assert last["sample_accuracy"] >= 0.5, last
    if "judge=orm" in extra:  # the reward model (the Llama with a scalar head) read the same ids
        assert last["orm_samples"] == 4 * 300 and last["orm_loss"] < 0.7, last
    else:
        assert last["precision"] == 1.0, last
    assert json.loads((word_llama / "config.json").read_text())["vocab_size"] == 24
