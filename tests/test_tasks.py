import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.tasks import get_task
from selfevolve.tasks.arithmetic import random_numbers


def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: addition, countdown, lookup, multiplication, translation, "
                                         "wordmath, wordmath-hard"):
        get_task("subtraction")


@given(st.lists(st.integers(1, 25), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_random_numbers_have_exactly_the_asked_digits(lengths, seed):
    nums = random_numbers(len(lengths), np.array(lengths), np.random.default_rng(seed))
    assert [len(str(n)) for n in nums] == lengths


@pytest.mark.parametrize("name,op", [("addition", lambda a, b: a + b), ("multiplication", lambda a, b: a * b)])
def test_problems_are_reversed_and_correct(name, op):
    task = get_task(name)
    for p in task.sample(200, 7, np.random.default_rng(0), mixed=True):
        a, b = p.fields["a"], p.fields["b"]
        assert p.prompt == f"{str(a)[::-1]}{task.op}{str(b)[::-1]}="
        assert int(p.answer[::-1]) == op(a, b)
        assert task.verify(p, p.answer) and task.well_formed(p, p.answer)
        assert max(len(str(a)), len(str(b))) == 7
        (swapped,) = task.variants(p)
        assert swapped.answer == p.answer and swapped.prompt != p.prompt or a == b


def test_well_formed_rejects_impossible_lengths():
    task = get_task("addition")
    p = task.make(123, 45, 3)  # 168 -> "861"
    assert task.well_formed(p, "861") and task.well_formed(p, "8611")
    assert not task.well_formed(p, "86")  # too short
    assert not task.well_formed(p, "86111")  # too long
    assert not task.well_formed(p, "8a1")  # not a number
    assert not task.well_formed(p, "8610")  # reversed leading zero


def test_same_seed_same_problems():
    task = get_task("addition")
    a = task.sample(50, 9, np.random.default_rng(3))
    b = task.sample(50, 9, np.random.default_rng(3))
    assert a == b and a != task.sample(50, 9, np.random.default_rng(4))


def test_split_consistency_accepts_truth_and_catches_wrong_digits():
    task = get_task("addition")
    rng = np.random.default_rng(0)
    caught = 0
    for p in task.sample(300, 8, rng, mixed=True):
        for k in (3, 6):
            low, high = task.split(p, k)
            assert task.agrees_with_split(p.answer, low.answer, high.answer, k)
            wrong = p.answer[:-1] + str((int(p.answer[-1]) % 9) + 1)  # change the top digit
            caught += not task.agrees_with_split(wrong, low.answer, high.answer, k)
            wrong_low = str((int(p.answer[0]) + 1) % 10) + p.answer[1:]
            assert not task.agrees_with_split(wrong_low, low.answer, high.answer, k)
    assert caught > 250  # the top digit is checked whenever no carry crosses the cut


def test_split_for_multiplication_checks_the_low_digits():
    task = get_task("multiplication")
    p = task.make(1234, 5678, 4)
    low, high = task.split(p, 2)
    assert (low.fields["a"], low.fields["b"], high.fields["a"], high.fields["b"]) == (34, 78, 12, 56)
    assert task.agrees_with_split(p.answer, low.answer, high.answer, 2)
    assert not task.agrees_with_split("9" + p.answer[1:], low.answer, high.answer, 2)
