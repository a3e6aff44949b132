"""SELF: the task's feedback by hand, the meta-skill data, self-refinement on a real model, and the filters."""

import numpy as np
import pyarrow.parquet as pq
import torch
from helpers import THREADS, assert_clean_error, run_cli, sets, summary

from selfevolve.models.policy import Policy
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.search.refine import CHECK, FIX, critique_prompt, meta_skill_examples, refine_prompt, self_refine
from selfevolve.tasks import get_task


def test_feedback_points_at_the_mistake_without_giving_the_answer_away():
    countdown = get_task("countdown")
    p = countdown.make([3, 7, 25], 82)
    assert [countdown.feedback(p, a) for a in ["3*25+7", "25*3+3", "3*25-7", "8+74", "(("]] == [
        "correct", "uses 3 too often", "gives 68, not 82", "uses 8, not given", "not an expression"]
    addition = get_task("addition")
    q = addition.make(123, 45, 3)  # 168, written reversed: "861"
    assert [addition.feedback(q, a) for a in ["861", "871", "86", "8612", "x1"]] == [
        "correct", "digit 2 is wrong", "too short", "too long", "not a number"]


def test_meta_skill_examples_hold_answers_critiques_of_right_and_wrong_first_answers_and_fixes():
    tok, task = CharTokenizer(), get_task("countdown")
    problems = task.sample(40, 3, np.random.default_rng(0))
    examples = meta_skill_examples(tok, task, problems, np.random.default_rng(1))
    assert len(examples) == 3 * 40
    texts = [tok.decode(examples.ids[i, : examples.lens[i]].tolist()) for i in range(len(examples))]
    for i, p in enumerate(problems):
        assert texts[i] == p.prompt + p.answer
        critique, fix = texts[40 + i], texts[80 + i]
        first = critique[len(p.prompt): critique.index(CHECK)]
        assert (first == p.answer) == (i % 2 == 0)  # every other first answer is one digit off
        assert critique == critique_prompt(p.prompt, first) + task.feedback(p, first)
        assert fix == refine_prompt(p.prompt, first, task.feedback(p, first)) + p.answer and FIX in fix


def test_self_refine_keeps_what_the_model_calls_correct_and_refines_the_rest():
    tok, task = CharTokenizer(), get_task("countdown")
    torch.manual_seed(0)
    policy = Policy(Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=128,
                                                  pos_encoding="rope")), tok)
    problems = task.sample(12, 3, np.random.default_rng(0))
    texts = [p.answer if i % 3 else "1+1" for i, p in enumerate(problems)]
    feedback, finals, judged = self_refine(policy, task, problems, texts)
    assert len(feedback) == len(finals) == len(judged) == 12
    for f, t, final in zip(feedback, texts, finals, strict=True):
        assert (f == "correct") <= (final == t)  # an answer the model calls correct is kept as it is


def test_self_keeps_by_its_filter_and_reports_refinement_at_inference(tmp_path):
    assert_clean_error(run_cli("run", "self", "--out", str(tmp_path / "x"), "--set", "filter=all"),
                       "filter must be one of self, oracle, none")
    assert_clean_error(run_cli("run", "self", "--out", str(tmp_path / "x"), "--set", "task=wordmath"),
                       "self needs a task that writes feedback")
    tiny = ["n_layer=1", "n_embd=48", "num_labelled=300", "round0_steps=300", "iterations=1",
            "problems_per_iteration=100", "iteration_steps=5", "eval_problems=20", THREADS]
    run = tmp_path / "oracle"
    proc = run_cli("run", "self", "--out", str(run), *sets([*tiny, "filter=oracle"]))
    assert proc.returncode == 0, proc.stderr
    rounds = summary(run)["rounds"]
    assert all(0 <= r["pass1_refined"] <= 1 and 0 <= r["judge_accuracy"] <= 1 for r in rounds)
    table = pq.read_table(run / "samples" / "round-001.parquet").to_pandas()
    # the verifier keeps exactly the distinct right final answers of each problem
    k = 2  # samples_per_problem: the table holds each problem's k final answers in a row
    right = sum(len({a for a, c in zip(table.answer[i:i + k], table.correct[i:i + k], strict=True) if c})
                for i in range(0, len(table), k))
    assert right > 0 and table.kept.sum() == right and table[table.kept].correct.all()
    assert 0 <= rounds[1]["probe"]["refined_share"] <= 1
