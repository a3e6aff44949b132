"""Auto-Evolve with a scripted model: the modules it writes are parsed and used, plans are refined and
each refinement scored, every method answers the same held-out problems, every call is logged, and a
stopped run continues to the same result."""

import re

import pyarrow.parquet as pq
import pytest
from helpers import assert_refused_before_a_run

from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.models.lm import ReplayLM, ScriptedLM, logged_calls
from selfevolve.progress import Progress
from selfevolve.recipes.auto_evolve import Config, evolve, split
from selfevolve.search.reasoning_modules import SEED_MODULES, parse_modules, stated_answer
from selfevolve.store import RunStore


def test_answers_and_modules_are_read_from_free_text():
    assert stated_answer("5 + 3 = 8, so the answer is 8.") == 8
    assert stated_answer("Step 1: 4 * 6 = 24\nAnswer: 27\nI hope 30 is not it") == 27  # the marked answer wins
    assert stated_answer("Answer: -3.5") == -3.5 and stated_answer("no idea") is None
    assert stated_answer("it is 12, then 15") == 15  # no marker: the last number
    reply = "Sure!\n- Track each quantity.\n* track each quantity.\n1. Check the answer.\n2) ab\nplain line\n- Add."
    reply += "\n1. 2. 3. ...\n- 4 + 5 = 9"  # items without a word are not instructions
    assert parse_modules(reply, 5) == ["Track each quantity.", "Check the answer.", "Add."]
    assert parse_modules(reply, 1) == ["Track each quantity."]


def scripted(values: dict[str, int]):
    """A model whose answers depend on its plan: no plan, right on even values; a plan from the fixed
    modules, right on multiples of 3; a plan from its own modules, right on either; a refined plan (it
    adds a check), always right. Elsewhere it answers 1 more than the gold value."""

    def reply(prompt: str) -> str:
        if "Write 3 reasoning modules" in prompt:
            return "Here you go:\n- Track each quantity.\n- track each quantity.\n* Multiply boxes by items.\n" \
                   "1. Check the answer."
        if "Improve this plan" in prompt:
            return re.search(r"Plan:\n(.*?)\n\nImprove", prompt, re.S).group(1) + "\n3. Check."
        if "write a plan" in prompt:
            return "1. Read.\n2. Compute." if "Track each quantity." in prompt else "1. Read."
        value = values[re.search(r"Problem: (.*?)\n\n", prompt, re.S).group(1)]
        plan = re.search(r"Follow this plan:\n(.*?)\n\nEnd", prompt, re.S)
        plan = plan.group(1) if plan else ""
        right = ("3. Check." in plan or (value % 2 == 0 and (not plan or "2. Compute." in plan))
                 or (value % 3 == 0 and plan != ""))
        return f"Some steps.\nAnswer: {value if right else value + 1}"

    return reply


def run(path, **settings):
    cfg = Config(**{"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "problems": 30, "modules": 3,
                    **settings})
    _, problems = split(cfg)
    store = RunStore.create(path, "auto-evolve", "") if not path.exists() else RunStore.open(path)
    with Progress(enabled=False) as progress:
        return evolve(cfg, store, progress, ScriptedLM(scripted({p.fields["question"]: p.fields["value"]
                                                                for p in problems}))), problems


def test_every_method_answers_the_same_problems_and_refinement_is_scored(tmp_path):
    s, problems = run(tmp_path / "run")
    values = [p.fields["value"] for p in problems]
    share = lambda ok: sum(map(ok, values)) / len(values)  # noqa: E731
    assert 0 < share(lambda v: v % 2 == 0) < 1 and 0 < share(lambda v: v % 3 == 0) < 1  # the test can tell
    assert s["modules"] == ["Track each quantity.", "Multiply boxes by items.", "Check the answer."]
    assert s["accuracy"]["cot"] == share(lambda v: v % 2 == 0)
    assert s["accuracy"]["fixed_modules"] == share(lambda v: v % 3 == 0)
    assert s["auto_evolve_by_refinement"] == [share(lambda v: v % 2 == 0 or v % 3 == 0), 1.0, 1.0]
    assert all(a == 1.0 for a in s["answered"].values()) and s["problems"] == 30
    # every call is logged: round 2 planned with the fixed modules, then solved, problem by problem
    fixed = pq.read_table(tmp_path / "run" / "samples" / "round-002.parquet").to_pydict()
    assert fixed["stage"] == ["plan"] * 30 + ["solve"] * 30 and fixed["problem"] == list(range(30)) * 2
    assert all(m in fixed["prompt"][0] for m in SEED_MODULES) and fixed["correct"][:30] == [None] * 30
    refined = pq.read_table(tmp_path / "run" / "samples" / "round-005.parquet").to_pydict()
    assert refined["response"][0].endswith("3. Check.\n3. Check.")  # the second refinement of its own plan
    held_out = {p.prompt for p in problems}
    examples, _ = split(Config(base_url="http://127.0.0.1:9/v1", model="scripted", problems=30))
    assert not held_out & {p.prompt for p in examples}


def test_a_stopped_run_continues_to_the_same_result(tmp_path):
    straight, _ = run(tmp_path / "straight")
    run(tmp_path / "stopped", refinements=0)  # rounds 0-3
    again, _ = run(tmp_path / "stopped")  # the same store asked for 2 refinements: continues from round 4
    drop = ("wall_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in again["rounds"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight["rounds"]]


def test_replaying_the_logged_calls_reproduces_the_run(tmp_path):
    first, _ = run(tmp_path / "run")
    calls = logged_calls(RunStore.open(tmp_path / "run"))
    assert len(calls) == 1 + 30 + 2 * 30 * 4  # modules; chain of thought; plan or refine, then solve, 4 times
    store = RunStore.create(tmp_path / "replay", "auto-evolve", "")
    cfg = Config(base_url="http://127.0.0.1:9/v1", model="scripted", problems=30, modules=3)
    with Progress(enabled=False) as progress:
        again = evolve(cfg, store, progress, ReplayLM(calls))
    assert {k: again[k] for k in ("modules", "accuracy", "answered")} == \
           {k: first[k] for k in ("modules", "accuracy", "answered")}


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "auto-evolve", "task must be one of wordmath, wordmath-hard",
                                "base_url=http://127.0.0.1:9/v1", "task=countdown")
    with pytest.raises(ConfigError, match="problems must be >= 1"):
        build_config(Config, {"problems": 0, "base_url": "http://127.0.0.1:9/v1"})
