"""wordmath: generated stories solve themselves, steps run only in the sandbox, user files validate."""

import json

import numpy as np
from helpers import THREADS, run_cli, sets
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.tasks import get_task, read_problems
from selfevolve.tasks.wordmath import execute, parse_solution

TASK = get_task("wordmath")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), difficulty=st.integers(1, TASK.max_steps),
       name=st.sampled_from(["wordmath", "wordmath-hard"]))
def test_every_story_is_solved_by_its_own_steps(seed, difficulty, name):
    tok = CharTokenizer()
    TASK = get_task(name)
    for p in TASK.sample(5, difficulty, np.random.default_rng(seed)):
        steps = parse_solution(p.answer)
        assert len(steps) - 1 == difficulty == p.difficulty  # one step per sentence, then the count
        assert all(not code.startswith("answer") for _, code in steps[:-1]) and steps[-1][1].startswith("answer = ")
        assert TASK.verify(p, p.answer) and TASK.well_formed(p, p.answer)
        assert isinstance(p.fields["value"], int) and p.fields["value"] >= 1
        tok.encode(p.prompt + p.answer)  # the model can read and write every character
        assert all(len(line) < 32 for line in p.answer.split("\n"))
        assert len(p.prompt) + len(p.answer) < TASK.max_seq_len and len(p.answer) < TASK.max_answer_tokens


def test_the_hard_variant_has_distractors_and_compound_purchases_with_wrong_readings():
    hard = get_task("wordmath-hard")
    problems = hard.sample(200, 5, np.random.default_rng(0))
    others = [p for p in problems if "other: theirs = " in p.answer]
    compound = [p for p in problems if any(" * " in line for line in p.answer.split("\n")[1:])]
    assert 0.5 < len(others) / 200 < 0.95 and 0.2 < len(compound) / 200 < 0.9
    lucky = 0  # a wrong reading may land on the right count by chance (a later // rounds it away)
    for p in others[:20]:  # counting someone else's things is the wrong reading
        n = next(line for line in p.answer.split("\n") if line.startswith("other:")).split("= ")[1]
        item = p.answer.split("\n")[0].split(" = ")[0].split(": ")[1]
        assert hard.verify(p, p.answer)
        lucky += hard.verify(p, p.answer.replace(f"other: theirs = {n}", f"buys: {item} = {item} + {n}", 1))
    for p in compound[:20]:  # so is adding one factor of "k more boxes of m"
        line = next(x for x in p.answer.split("\n")[1:] if " * " in x)
        lucky += hard.verify(p, p.answer.replace(line, line.split(" * ")[0]))
    assert lucky <= 4


def test_a_wrong_value_a_failing_step_or_an_unknown_name_is_wrong():
    p = TASK.make("Ann has 4 bags of 6 pens. She buys 3. How many pens now?", 27)
    assert TASK.verify(p, "bags: pens = 4 * 6\nbuys: answer = pens + 3")
    assert TASK.verify(p, "answer = 27")  # only the final answer is checked, as in rStar
    assert not TASK.verify(p, "bags: pens = 4 * 6\nbuys: answer = pens + 4")
    assert not TASK.verify(p, "bags: pens = 4 * 6\nbuys: answer = apples + 3")
    assert not TASK.verify(p, "bags: pens = 4 * 6\nbuys: answer = __import__('os').system('true')")
    assert not TASK.verify(p, "bags: pens = 4 * 6")  # never assigns answer
    assert not TASK.well_formed(p, "bags: pens = 4 * 6")
    assert execute("a: x = 1\nb: y = x.real").error == "Attribute is not allowed in a step"


def test_user_problems_are_read_and_bad_lines_named(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"question": "Bob has 2 jars of 5 beads. How many beads now?", "answer": 10}) + "\n")
    (p,) = read_problems(f, TASK)
    assert TASK.verify(p, "jars: answer = 2 * 5") and p.prompt.endswith("\n")
    for record, fragment in [({"question": "Bob has 2 jars.", "answer": "ten"}, "'answer' must be a number"),
                             ({"question": "", "answer": 1}, "'question' must be non-empty"),
                             ({"question": "Bob has 2 jars \u00e9.", "answer": 1}, "cannot read: '\u00e9'")]:
        f.write_text(json.dumps(record) + "\n")
        try:
            read_problems(f, TASK)
        except ValueError as err:
            assert "line 1" in str(err) and fragment in str(err)
        else:
            raise AssertionError(f"{record} was accepted")


def test_the_star_recipes_run_unchanged_on_wordmath(tmp_path):
    quick = ["task=wordmath", "difficulty=2", "num_labelled=100", "n_embd=32", "n_layer=1", "round0_steps=10",
             "iterations=1", "problems_per_iteration=30", "samples_per_problem=2", "iteration_steps=5",
             "eval_problems=10", THREADS]
    for recipe in ("star", "dpo"):
        proc = run_cli("run", recipe, "--out", str(tmp_path / recipe), *sets(quick))
        assert proc.returncode == 0, proc.stderr
        s = json.loads((tmp_path / recipe / "summary.json").read_text())
        assert s["task"] == "wordmath" and len(s["rounds"]) == 2 and s["samples_drawn"] == 60
