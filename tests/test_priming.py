"""Cognitive-behaviour priming: the trace generator writes true arithmetic and honest behaviours, the
behaviour counter counts them, and a primed model carries its style into RL."""

import re
from fractions import Fraction

import numpy as np
import pytest
from helpers import THREADS, assert_clean_error, run_cli, sets, summary

from selfevolve.tasks.countdown import CountdownTask
from selfevolve.tasks.countdown_traces import STYLES, TracedCountdown, count_behaviours, final_answer

STEP = re.compile(r"(\d+)([-+*/])(\d+)=(\d+)")
PROBLEMS = {style: TracedCountdown(style).sample(400, 3, np.random.default_rng(5), mixed=True) for style in STYLES}


def replay(problem, text: str) -> dict:
    """Walk a trace token by token: each step's arithmetic, each subgoal and each check against the target."""
    target, value, false_steps = problem.fields["target"], None, 0
    counts = {"verification": 0, "backtracking": 0, "subgoal": 0}
    tokens = text.rpartition("#")[0].split()
    for i, token in enumerate(tokens):
        if token == "back":
            counts["backtracking"] += 1
        elif token == "need":
            assert int(tokens[i + 1]) == abs(target - value), text  # the subgoal is what is still missing
            counts["subgoal"] += 1
        elif m := STEP.match(token):
            a, op, b, c = m.groups()
            exact = {"+": Fraction(int(a) + int(b)), "-": Fraction(int(a) - int(b)), "*": Fraction(int(a) * int(b)),
                     "/": Fraction(int(a), int(b))}[op]
            false_steps += exact != int(c)
            value = int(c)
            rest = token[m.end():]
            if rest:  # a check against the target, which tells the truth about the value written
                assert rest == (f"=={target}" if value == target else f"!={target}"), text
                counts["verification"] += 1
    return {**counts, "false_steps": false_steps}


def test_every_style_draws_the_same_problems_and_every_answer_is_judged_by_its_final_expression():
    prompts = [p.prompt for p in CountdownTask().sample(400, 3, np.random.default_rng(5), mixed=True)]
    for style, problems in PROBLEMS.items():
        task = TracedCountdown(style)
        assert [p.prompt for p in problems] == prompts
        assert all(task.well_formed(p, p.answer) for p in problems)
        right = [task.verify(p, p.answer) for p in problems]
        assert all(right) if style != "search-wrong" else not any(right), style
        assert all(p.answer.count("#") == 1 and final_answer(p.answer) for p in problems)
        assert max(len(p.prompt) + len(p.answer) for p in problems) < task.max_seq_len
        assert max(len(p.answer) for p in problems) <= task.max_answer_tokens


def test_search_traces_compute_truly_verify_honestly_and_the_counter_counts_what_was_written():
    searched, totals = PROBLEMS["search"], {"verification": 0, "backtracking": 0, "subgoal": 0}
    for problem in searched:
        walked = replay(problem, problem.answer)
        assert walked.pop("false_steps") == 0, problem.answer
        assert count_behaviours(problem.answer) == walked
        assert walked["verification"] >= 1  # every search ends by checking its result
        totals = {k: totals[k] + walked[k] for k in totals}
    # the searcher misses and backtracks on a good share of problems, and sets subgoals
    assert totals["backtracking"] > 0.3 * len(searched) and totals["subgoal"] > 0.3 * len(searched), totals
    for problem, wrong in zip(searched, PROBLEMS["search-wrong"], strict=True):
        # the same search, whose one slip is its last step: same behaviours, wrong answer
        walked = replay(wrong, wrong.answer)
        assert walked.pop("false_steps") == 1 and walked == count_behaviours(problem.answer), wrong.answer
        assert wrong.answer.split()[:-2] == problem.answer.split()[:-2]


def test_controls_carry_no_behaviour_and_filler_matches_the_search_length():
    for style in ("answer", "optimal", "filler"):
        assert all(count_behaviours(p.answer) == {"verification": 0, "backtracking": 0, "subgoal": 0}
                   for p in PROBLEMS[style])
    assert [len(p.answer) for p in PROBLEMS["filler"]] == [len(p.answer) for p in PROBLEMS["search"]]
    assert all(replay(p, p.answer)["false_steps"] == 0 for p in PROBLEMS["optimal"])


def test_the_counter_on_hand_written_text():
    assert count_behaviours("25*3=75 need 3 75+7=82!=78 back 25*3=75 75+3=78==78 #25*3+3") == {
        "verification": 2, "backtracking": 1, "subgoal": 1}
    # a step's own "=" is no check, and words that merely contain the markers are not behaviours
    assert count_behaviours("25*3=75 75+3=78 background needy #25*3+3") == {
        "verification": 0, "backtracking": 0, "subgoal": 0}
    assert final_answer("no answer here") == "" and final_answer("a #1 #2+3 ") == "2+3"


def test_bad_priming_values_are_one_clear_error(tmp_path):
    for bad, fragment in (("priming=loud", "priming must be one of answer, optimal"),
                          ("task=wordmath", "priming traces are written for countdown")):
        assert_clean_error(run_cli("run", "priming", "--out", str(tmp_path / "x"), "--set", bad), fragment)
        assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="priming style"):
        TracedCountdown("nope")


TINY = ["n_layer=1", "n_embd=48", "num_labelled=300", "round0_steps=250", "iterations=1", "iteration_steps=3",
        "prompts_per_step=8", "group_size=4", "eval_problems=30", THREADS]


@pytest.mark.parametrize("style", ["search", "answer"])
def test_a_primed_model_carries_its_behaviours_into_rl(tmp_path, style):
    run = tmp_path / style
    proc = run_cli("run", "priming", "--out", str(run), *sets([*TINY, f"priming={style}"]))
    assert proc.returncode == 0, proc.stderr
    steps = summary(run)["rounds"][1]["rl_steps"]
    assert len(steps) == 3
    verifying = np.mean([s["verification"] for s in steps])
    if style == "search":  # the search-primed policy checks its results in RL's samples
        assert verifying > 0.5, steps
    else:
        assert verifying == 0 and all(s["backtracking"] == 0 and s["subgoal"] == 0 for s in steps), steps
    assert (run / "plots" / "behaviours.png").exists()
