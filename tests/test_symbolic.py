"""Agent symbolic learning with a scripted model whose answers depend on the pipeline's instructions: the
pass order of language gradients, the update, dev selection, resuming after a crash and replaying."""

import json
import re

import pyarrow.parquet as pq
import pytest
from helpers import assert_refused_before_a_run

from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.models.lm import ReplayLM, ScriptedLM, logged_calls
from selfevolve.progress import Progress
from selfevolve.recipes.symbolic import Config, evolve, gold, question, splits
from selfevolve.search.symbolic import parse_instruction
from selfevolve.store import RunStore

LM = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted"}


def scripted(golds: dict[str, float], crash_after: int | None = None):
    """Right only when the solution's instruction says to check; every other reply fixed by its prompt."""
    calls = []

    def reply(prompt: str) -> str:
        calls.append(prompt)
        if crash_after is not None and len(calls) > crash_after:
            raise ConnectionError("the model server went away")
        if "say what went wrong" in prompt:
            return "The total is one too many."
        if "how this step's instruction should change" in prompt:
            return "Check the result before answering." if "Work out" in prompt \
                else f"The analysis missed something; the next step said: {prompt.split('followed:')[1].strip()[:40]}"
        if "Write an improved instruction" in prompt:
            return "Sure.\nInstruction: Work out the answer, then check it." if "Work out" in prompt \
                else "Instruction: List every number with its unit."
        q = re.search(r"Problem: (.*?)(\n\n|$)", prompt, re.S).group(1)
        if "Answer: N" not in prompt:
            return "Numbers listed."
        return f"Done.\nAnswer: {golds[q] + (0 if 'check' in prompt.split('End with')[0] else 1):g}"

    return reply


def run(path, lm=None, **settings):
    cfg = Config(**LM, **{"steps": 2, "batch": 3, "dev_problems": 5, "problems": 6, **settings})
    train, dev, test = splits(cfg)
    store = RunStore.create(path, "symbolic", "") if not path.exists() else RunStore.open(path)
    lm = lm or ScriptedLM(scripted({question(p): gold(p) for p in train + dev + test}))
    with Progress(enabled=False) as progress:
        return evolve(cfg, store, progress, lm), cfg


@pytest.mark.parametrize("task", ["wordmath", "lookup"])
def test_wrong_answers_send_gradients_back_and_the_rewritten_pipeline_is_chosen_on_dev(tmp_path, task):
    s, cfg = run(tmp_path / "run", task=task)
    assert s["dev_by_step"] == [0.0, 1.0, 1.0]  # the first step's rewrite says to check; then nothing is wrong
    assert s["test_accuracy"] == {"initial": 0.0, "optimised": 1.0}
    assert s["best_pipeline"] == [["analysis", "List every number with its unit."],
                                  ["solution", "Work out the answer, then check it."]]
    first, second = s["rounds"][1:3]
    assert first["train_accuracy"] == 0.0 and first["wrong"] == 3 and second["wrong"] == 0
    rows = pq.read_table(tmp_path / "run" / "samples" / "round-001.parquet").to_pydict()
    # forward node by node, the loss, gradients from the last node back, one update per node, then dev
    assert rows["stage"] == (["forward/analysis"] * 3 + ["forward/solution"] * 3 + ["loss"] * 3
                             + ["gradient/solution"] * 3 + ["gradient/analysis"] * 3 + ["update"] * 2
                             + ["dev/analysis"] * 5 + ["dev/solution"] * 5)
    analysis_gradient = json.loads(rows["prompt"][12])[0]["content"]
    assert "Check the result before answering." in analysis_gradient  # it reads the gradient after it
    assert rows["response"][12].startswith("The analysis missed something")
    assert "The total is one too many." in json.loads(rows["prompt"][9])[0]["content"]  # the last reads the loss
    assert s["lm_calls"] == sum(r["lm_calls"] for r in s["rounds"]) == len(logged_calls(RunStore.open(tmp_path /
                                                                                                       "run")))
    train, dev, test = splits(cfg)
    prompts = [{p.prompt for p in part} for part in (train, dev, test)]
    assert not (prompts[0] & prompts[1] or prompts[0] & prompts[2] or prompts[1] & prompts[2])


def test_instructions_are_read_from_the_reply_and_a_useless_one_keeps_the_old():
    assert parse_instruction("Here:\nInstruction: Add the numbers.\nThanks", "old") == "Add the numbers."
    assert parse_instruction("Multiply first.", "old") == "Multiply first."
    assert parse_instruction("Instruction: 4 + 5", "old") == "old" and parse_instruction("", "old") == "old"
    assert parse_instruction("Instruction: " + "word " * 80, "old") == "old"


def test_a_crashed_run_resumes_to_the_same_result_and_a_replay_reproduces_it(tmp_path):
    straight, cfg = run(tmp_path / "straight")
    train, dev, test = splits(cfg)
    golds = {question(p): gold(p) for p in train + dev + test}
    with pytest.raises(ConnectionError):
        run(tmp_path / "crashed", ScriptedLM(scripted(golds, crash_after=30)))  # inside step 1's dev pass
    assert [r["round"] for r in RunStore.open(tmp_path / "crashed").rounds()] == [0]
    again, _ = run(tmp_path / "crashed")
    drop = ("wall_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in again["rounds"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight["rounds"]]
    replayed, _ = run(tmp_path / "replay", ReplayLM(logged_calls(RunStore.open(tmp_path / "straight"))))
    assert replayed["test_accuracy"] == straight["test_accuracy"] and replayed["best_pipeline"] == \
           straight["best_pipeline"]


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "symbolic", "task must be one of wordmath, wordmath-hard, lookup",
                                "base_url=http://127.0.0.1:9/v1", "task=countdown")
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        build_config(Config, {"batch": 0, "base_url": "http://127.0.0.1:9/v1"})
