"""The self-training recipes on a user's own Hugging Face model with its own tokenizer."""

import json

import pytest
from helpers import THREADS, hf_greedy_texts, run_cli, save_word_level_llama, summary

pytest.importorskip("transformers")

# two-number Countdown: a random 2 x 64 Llama learns it from 1000 labels in 400 steps (held-out pass@1
# 0.78 on 100 unseen problems, about 4 s)
CD2 = ["task=countdown", "difficulty=2", "num_labelled=1000", "round0_steps=400", "learning_rate=3e-3",
       "iterations=1", "problems_per_iteration=100", "samples_per_problem=4", "iteration_steps=20", "eval_problems=50",
       THREADS]


def lora_settings(word_llama):
    return CD2[:5] + ["iterations=0", "eval_problems=10", f"model={word_llama}", "lora_r=4", "learning_rate=1e-2"]


@pytest.fixture(scope="module")
def word_llama(tmp_path_factory):
    path = tmp_path_factory.mktemp("word-llama")
    save_word_level_llama(path)
    return path


@pytest.fixture(scope="module")
def round0(finished_run, word_llama):
    """CD2's round 0 on the word-level Llama, trained once: every run below starts from it (`init_from`)."""
    return f"init_from={finished_run('star', [*CD2, f'model={word_llama}', 'iterations=0'])}"


# the ORM's run samples hotter, so that the policy errs often enough (about 1 in 5) for the ORM to learn both kinds
@pytest.mark.parametrize("recipe, extra", [("star", []), ("bstar", ["probe_problems=20", "temperature_grid=0.8,1.2"]),
                                           ("dpo", []), ("upo", []),
                                           ("star", ["judge=orm", "orm_steps=100", "temperature=1.5"])])
def test_self_training_runs_and_learns_on_a_word_level_llama(finished_run, word_llama, round0, recipe, extra):
    s = summary(finished_run(recipe, CD2 + extra + [f"model={word_llama}", round0]))
    # round 0 learned from nothing, through the model's own ids (a random model answers none)
    assert s["round0_pass1"] >= 0.5, s["rounds"][0]
    last = s["rounds"][1]
    assert last["kept"] > 0 and last["tokens_trained"] > 0, last  # the iteration trained on its own answers
    # the answers decode into the task's text through the model's tokenizer: many are right
    assert last["sample_accuracy"] >= 0.3, last
    if "judge=orm" in extra:  # the reward model (the Llama with a scalar head) read the same ids
        # it learned to tell them apart: it ranks its own training answers above chance, and the answers it
        # keeps are right more often than the samples are (an untrained head keeps at the base rate)
        assert last["orm_samples"] == 4 * 1000 and last["orm_fit_auc"] >= 0.6, last
        assert last["precision"] > last["sample_accuracy"], last
    else:
        assert last["precision"] == 1.0, last
    assert json.loads((word_llama / "config.json").read_text())["vocab_size"] == 24


def test_grpo_runs_on_a_word_level_llama_through_its_own_tokenizer(finished_run, word_llama, round0):
    rl = ["iteration_steps=10", "prompts_per_step=8", "group_size=4"]
    s = summary(finished_run("grpo", [*CD2, *rl, f"model={word_llama}", round0]))
    assert s["round0_pass1"] >= 0.5, s["rounds"][0]
    steps = s["rounds"][1]["rl_steps"]
    assert len(steps) == 10 and s["rounds"][1]["samples"] == 10 * 8 * 4
    # the sampled ids decode into Countdown answers that the verifier scores: many are right
    assert sum(x["reward_mean"] for x in steps) / 10 >= 0.3 and all(x["kl"] >= 0 for x in steps), steps


@pytest.mark.parametrize("model", ["tiny", "word-llama", "word-llama+lora"])
def test_export_round_trip_gives_the_same_tokens_and_greedy_answers(tmp_path, finished_run, word_llama, round0,
                                                                    model):
    from selfevolve.config import build_config
    from selfevolve.recipes import get_recipe
    from selfevolve.search.sampling import answer
    from selfevolve.selftrain import load_latest
    from selfevolve.store import RunStore
    from selfevolve.tasks import get_task

    # the word-level Llama's run is the learning test's star run (one run per session)
    settings = {"tiny": CD2[:5] + ["iterations=0", "eval_problems=10", "n_layer=2", "n_embd=64"],
                "word-llama": CD2 + [f"model={word_llama}", round0],
                "word-llama+lora": lora_settings(word_llama)}[model]
    run = finished_run("star", settings)
    proc = run_cli("export", str(run), "--hf", str(tmp_path / "hf"))
    assert proc.returncode == 0, proc.stderr
    store = RunStore.open(run)
    cfg = build_config(get_recipe("star").Config, store.config_values())
    task = get_task(cfg.task)
    policy = load_latest(store, cfg, task)
    problems = task.sample(12, 2, __import__("numpy").random.default_rng(5))
    ours, _ = answer(policy.model, policy.tok, problems, max_new=task.max_answer_tokens)
    ids, theirs = hf_greedy_texts(tmp_path / "hf", [p.prompt for p in problems], task.max_answer_tokens)
    assert ids == [policy.tok.encode(p.prompt) for p in problems]
    assert theirs == ours
    # a trained model, not noise (a random one is right almost never); LoRA on a random base learns slowly
    right = sum(task.verify(p, t) for p, t in zip(problems, ours, strict=True))
    assert right >= (2 if model.endswith("lora") else 6), ours


def test_serve_answers_with_the_run_s_own_tokenizer_and_lora_weights(finished_run, word_llama):
    """`selfevolve serve RUN` of a LoRA run on a pretrained model: its completions are the run's greedy
    answers, read and written through the model's own tokenizer (not our character ids)."""
    import numpy as np
    import openai
    from test_serve import start_server

    from selfevolve.config import build_config
    from selfevolve.recipes import get_recipe
    from selfevolve.search.sampling import answer
    from selfevolve.selftrain import load_latest
    from selfevolve.store import RunStore
    from selfevolve.tasks import get_task

    run = finished_run("star", lora_settings(word_llama))
    store = RunStore.open(run)
    cfg = build_config(get_recipe("star").Config, store.config_values())
    task = get_task(cfg.task)
    policy = load_latest(store, cfg, task)
    problems = task.sample(6, 2, np.random.default_rng(7))
    ours, _ = answer(policy.model, policy.tok, problems, max_new=task.max_answer_tokens)
    proc, base = start_server(run)
    try:
        client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
        for p, expected in zip(problems, ours, strict=True):
            out = client.completions.create(model="run", prompt=p.prompt, max_tokens=task.max_answer_tokens,
                                            temperature=0)
            assert out.choices[0].text.strip() == expected.strip(), (p.prompt, expected)
            assert out.usage.prompt_tokens == len(policy.tok.encode(p.prompt))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
