"""Toy-language translation (R1-T1's study): every prompt holds what its translation needs, unseen
languages stay out of training, templates and chrF score what they should."""

import json

import numpy as np
import pytest
from helpers import THREADS, assert_clean_error, run_cli, sets

from selfevolve.judge.rewards import resolve
from selfevolve.tasks import get_task
from selfevolve.tasks.toy_translation import UNSEEN, ToyTranslationTask, final_answer

PAST = {"saw": "see", "found": "find", "ate": "eat", "liked": "like", "followed": "follow", "carried": "carry"}
PRESENT = {"sees": "see", "finds": "find", "eats": "eat", "likes": "like", "follows": "follow", "carries": "carry",
           **{v: v for v in ("see", "find", "eat", "like", "follow", "carry")}}


def translate_from_prompt(prompt: str) -> str:
    """An independent translator that knows only what the prompt says (lexicon, rules) and English."""
    lexicon_text, rules, sentence = prompt.rstrip(">").split("|")
    lexicon = dict(entry.split("=") for entry in _entries(lexicon_text))
    order, adjective_position, plural, past = rules.split()
    plural, past = plural.removeprefix("pl="), past.removeprefix("past=")
    (*subject, verb), obj = (part.split() for part in f" {sentence}".split(" the ")[1:])

    def phrase(words: list[str]) -> str:
        *adjective, noun = words
        is_plural = noun.endswith("s") and noun[:-1] in {k.split()[-1] for k in lexicon}
        noun = noun[:-1] if is_plural else noun
        suffix = plural if is_plural else ""
        if adjective and f"{adjective[0]} {noun}" in lexicon:
            return lexicon[f"{adjective[0]} {noun}"] + suffix
        head = lexicon[noun] + suffix
        if not adjective:
            return head
        return f"{lexicon[adjective[0]]} {head}" if adjective_position == "AN" else f"{head} {lexicon[adjective[0]]}"

    verb_word = lexicon[PAST[verb]] + past if verb in PAST else lexicon[PRESENT[verb]]
    parts = {"S": phrase(subject), "V": verb_word, "O": phrase(obj)}
    return " ".join(parts[k] for k in order)


def _entries(text: str) -> list[str]:
    """'dog=bopa quick horse=gane' -> ['dog=bopa', 'quick horse=gane'] (an idiom's key has a space)."""
    out, pending = [], ""
    for word in text.split():
        pending = f"{pending} {word}".strip()
        if "=" in word:
            out.append(pending)
            pending = ""
    return out


def test_every_prompt_holds_what_its_translation_needs_so_unseen_languages_are_solvable():
    task = ToyTranslationTask()
    for mixed in (True, False):
        for problem in task.sample(600, 3, np.random.default_rng(3), mixed=mixed):
            assert translate_from_prompt(problem.prompt) == problem.fields["translation"] == problem.answer, problem
    idioms = [p for p in task.sample(600, 3, np.random.default_rng(4)) if any(
        " " in e.split("=")[0] for e in _entries(p.prompt.split("|")[0]))]
    assert len(idioms) > 50  # difficulty 3 uses the languages' idioms


def test_training_draws_only_seen_languages_and_evaluation_alternates_seen_and_unseen():
    task = ToyTranslationTask(seen_languages=30)
    train = task.sample(500, 3, np.random.default_rng(0), mixed=True)
    assert {p.fields["group"] for p in train} == {"seen"} and max(p.fields["language"] for p in train) < 30
    test = task.sample(500, 3, np.random.default_rng(1))
    assert [p.fields["group"] for p in test[:4]] == ["seen", "unseen", "seen", "unseen"]
    assert all((p.fields["language"] >= UNSEEN) == (p.fields["group"] == "unseen") for p in test)
    assert {p.difficulty for p in train} == {1, 2, 3} and {p.difficulty for p in test} == {3}
    with pytest.raises(ValueError, match="difficulty must be 1"):
        task.sample(1, 4, np.random.default_rng(0))


def test_templates_are_judged_by_their_final_answer_and_chrf_grades_partial_translations():
    direct, templated = ToyTranslationTask(), ToyTranslationTask(templates=True)
    rng = np.random.default_rng(2)
    for plain, reasoned in zip(direct.sample(200, 3, rng), templated.sample(200, 3, np.random.default_rng(2)),
                               strict=True):
        assert plain.prompt == reasoned.prompt and final_answer(reasoned.answer) == plain.answer
        assert reasoned.answer.startswith(("gloss: ", "S: ")) and reasoned.answer != plain.answer
        assert templated.verify(reasoned, reasoned.answer) and templated.well_formed(reasoned, reasoned.answer)
        assert direct.well_formed(plain, plain.answer) and not templated.well_formed(reasoned, plain.answer)
        assert templated.score(reasoned, reasoned.answer) == 1.0
    words = plain.answer.split()
    partial = templated.score(reasoned, "=> " + " ".join(words[:-1]))
    assert 0.2 < partial < 1.0 and templated.score(reasoned, "=> zzzz") < 0.1 < partial
    score = resolve("score", templated)
    assert score([reasoned.prompt], [reasoned.answer], problem=[reasoned]) == [1.0]
    with pytest.raises(ValueError, match="no graded score"):
        resolve("score", get_task("countdown"))


def test_a_tiny_r1t1_run_reports_chrf_on_seen_and_unseen_languages(tmp_path):
    assert_clean_error(run_cli("run", "r1t1", "--out", str(tmp_path / "x"), "--set", "task=countdown"),
                       "r1t1 translates toy languages")
    run = tmp_path / "run"
    tiny = ["n_layer=1", "n_embd=32", "num_labelled=100", "round0_steps=10", "iterations=1", "iteration_steps=2",
            "prompts_per_step=4", "group_size=2", "eval_problems=10", THREADS]
    proc = run_cli("run", "r1t1", "--out", str(run), *sets(tiny))
    assert proc.returncode == 0, proc.stderr
    rounds = json.loads((run / "summary.json").read_text())["rounds"]
    assert all(set(r["score_by_group"]) == {"seen", "unseen"} for r in rounds)
    assert all(0 <= r["score"] <= 1 for r in rounds) and len(rounds[1]["rl_steps"]) == 2
    assert (run / "plots" / "chrf.png").exists()
