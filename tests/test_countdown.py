"""Countdown: solvable generation and a verifier that parses, never executes, model text."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.tasks import get_task
from selfevolve.tasks.countdown import parse

TASK = get_task("countdown")


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), difficulty=st.integers(2, 6))
def test_every_generated_problem_is_solved_by_its_own_solution(seed, difficulty):
    for p in TASK.sample(5, difficulty, np.random.default_rng(seed)):
        assert len(p.fields["numbers"]) == difficulty and 1 <= p.fields["target"] <= 100
        assert TASK.verify(p, p.answer), (p.prompt, p.answer)


def problem(numbers, target):
    return TASK.make(numbers, target)


@pytest.mark.parametrize("answer,ok", [
    ("3*25+7", True), ("(25+7)*3-18", False), ("25*3+7", True), ("7+3*25", True),
    ("3*25+7+0", False),  # 0 is not given
    ("3*25+7*1", False),  # 1 is not given
    ("25*3+3+4", False),  # 3 used twice, 4 not given
    ("3*26", False),      # 26 not given (and the value is wrong)
])
def test_verify_checks_value_and_that_each_number_is_used_at_most_once(answer, ok):
    assert TASK.verify(problem([3, 7, 25, 50], 82), answer) is ok


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "3**4", "-3+5", "3.5*2", "x+1", "[3][0]", "3 if 1 else 2", "(3", "",
    "1" * 80,
])
def test_anything_but_integer_arithmetic_is_rejected_without_running_it(text):
    assert parse(text) is None
    assert not TASK.well_formed(problem([3, 5], 8), text)


def test_division_is_exact_and_division_by_zero_is_wrong():
    assert TASK.verify(problem([7, 2, 4], 14), "7/2*4")  # exact rational arithmetic: 3.5 * 4
    assert not TASK.verify(problem([7, 0], 7), "7/0")
