"""rstar and agentevol on a user's own Hugging Face model: a random Llama with a byte-level BPE
tokenizer of its own, trained end to end for a few seconds, then exported and read back by
transformers alone."""

import numpy as np
import pytest
from helpers import THREADS, hf_greedy_texts, run_cli, save_bpe_llama, sets, summary

from selfevolve.agents.rollout import expert_episodes, prompt_of
from selfevolve.tasks.wordmath import WordMathTask

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bpe_llama(tmp_path_factory):
    """A 2 x 64 Llama whose 600-token BPE vocabulary was learned from wordmath and agent transcripts."""
    problems = WordMathTask().sample(300, 4, np.random.default_rng(1), mixed=True)
    episodes = expert_episodes([(env, i) for env in ("maze", "guess", "craft", "calc") for i in range(30)])
    texts = [p.prompt + p.answer for p in problems]
    texts += [prompt_of(o) + a for ep in episodes for o, a in zip(ep.observations, ep.actions, strict=True)]
    path = tmp_path_factory.mktemp("bpe-llama")
    save_bpe_llama(path, texts, vocab_size=600)
    return path


def assert_export_round_trip(run, out, prompts, ours, max_new: int, tok):
    proc = run_cli("export", str(run), "--hf", str(out))
    assert proc.returncode == 0, proc.stderr
    ids, theirs = hf_greedy_texts(out, prompts, max_new)
    assert ids == [tok.encode(p) for p in prompts] and theirs == ours


def test_rstar_searches_and_learns_on_a_bpe_llama_and_exports_it(tmp_path, bpe_llama):
    from selfevolve.config import build_config
    from selfevolve.recipes import get_recipe
    from selfevolve.recipes.rstar import build_policy
    from selfevolve.search.sampling import answer
    from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint

    run = tmp_path / "rstar"
    values = [f"model={bpe_llama}", "rounds=1", "seed_problems=200", "round0_steps=300", "train_problems=6",
              "rollouts=3", "eval_problems=10", "eval_n=1,2", "policy_steps=5", "reward_steps=5", "widen=2",
              THREADS]
    proc = run_cli("run", "rstar", "--out", str(run), *sets(values))
    assert proc.returncode == 0, proc.stderr
    round0, round1 = summary(run)["rounds"]
    assert round0["accuracy"]["greedy"]["1"] >= 0.5  # from a random model: it learned to write runnable steps
    assert round1["search_tokens"] > 0 and round1["solved_by_search"] > 0  # steps cut at BPE newlines ran
    cfg = build_config(get_recipe("rstar").Config, RunStore.open(run).config_values())
    policy = build_policy(cfg)
    model_from_checkpoint(load_checkpoint(RunStore.open(run).last_checkpoint()), into=policy.model)
    problems = WordMathTask().sample(4, 2, np.random.default_rng(7))
    ours, _ = answer(policy.model, policy.tok, problems, max_new=60)
    assert_export_round_trip(run, tmp_path / "hf", [p.prompt for p in problems], ours, 60, policy.tok)

    # the reward models beside it: transformers' sequence classifiers give our scores
    import torch
    import transformers

    from selfevolve.judge.reward import load_process_models
    from selfevolve.train.sft import Examples

    rms = load_process_models(RunStore.open(run).last_checkpoint(), policy.model)
    assert set(rms) == {"ppm", "prm", "orm"}
    examples = Examples.encode(policy.tok, [p.prompt for p in problems], ours)
    for name, rm in rms.items():
        hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf" / name).eval()
        with torch.no_grad():
            theirs = [float(hf(examples.ids[i : i + 1, : examples.lens[i]]).logits[0, 0]) for i in range(len(ours))]
            mine = rm.eval()(examples.ids, examples.lens).tolist()
        assert np.allclose(theirs, mine, atol=1e-4) and np.std(mine) > 0, (name, theirs, mine)


def test_agentevol_clones_and_explores_on_a_bpe_llama_and_exports_it(tmp_path, bpe_llama):
    from selfevolve.agents.env import HELD_OUT, make_env
    from selfevolve.models.lm import TransformerLM
    from selfevolve.recipes.agentevol import Config, base_model, evaluate
    from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint

    run = tmp_path / "agentevol"
    values = [f"model={bpe_llama}", "envs=maze,calc", "demo_tasks=40", "bc_steps=400", "iterations=1",
              "explore_tasks=10", "iteration_steps=20", "eval_tasks=20", "specialists=false", THREADS]
    proc = run_cli("run", "agentevol", "--out", str(run), *sets(values))
    assert proc.returncode == 0, proc.stderr
    untrained = evaluate(base_model(Config(model=str(bpe_llama))), Config(eval_tasks=20), ("maze",), None, "")
    s = summary(run)
    assert untrained["maze"]["success"] == 0.0 and s["success_by_iteration"]["maze"][0] >= 0.3
    assert s["rounds"][1]["explored"] == 20
    policy = base_model(Config(model=str(bpe_llama)))
    model_from_checkpoint(load_checkpoint(RunStore.open(run).last_checkpoint()), into=policy.model)
    prompts = [prompt_of(make_env("maze").reset(HELD_OUT + i)[0]) for i in range(3)]
    ours = [c[0].text for c in TransformerLM(policy.model, policy.tok).generate(prompts, max_tokens=48)]
    assert_export_round_trip(run, tmp_path / "hf", prompts, ours, 48, policy.tok)


def test_genome_evolves_lora_experts_of_a_bpe_llama_and_exports_the_best_merge(tmp_path, bpe_llama):
    """GENOME on a user's model: LoRA experts on the Llama's own ids, evolution, one test read, and the best
    merge folded into the base, read back by transformers alone with the same tokens and answers."""
    from helpers import GENOME_SHORT

    from selfevolve.config import build_config
    from selfevolve.models.lora import load_adapter
    from selfevolve.models.sampler import generate
    from selfevolve.progress import Progress
    from selfevolve.recipes.genome import Config, base_model
    from selfevolve.store import RunStore
    from selfevolve.tasks.skills import skill_problems

    run = tmp_path / "genome"
    proc = run_cli("run", "genome", "--out", str(run), *sets([*GENOME_SHORT, f"model={bpe_llama}", "generations=2",
                                                             "expert_steps=10", "pop_size=4", "dev_size=20",
                                                             "test_size=20", THREADS]))
    assert proc.returncode == 0, proc.stderr
    s = summary(run)
    assert s["test_reads"] == 1 and s["dev_accuracy"]["genome_best"] >= s["dev_accuracy"]["best_expert"]
    assert all((run / "experts" / n / "adapter_model.safetensors").is_file() for n in ("reverse", "upper", "shift"))
    store = RunStore.open(run)
    model, tok = base_model(build_config(Config, store.config_values()), store, Progress(enabled=False))
    problems = skill_problems(("reverse", "upper"), 4, np.random.default_rng(3))
    out = generate(load_adapter(model, run / "genome_best").eval(), [tok.encode(p.prompt) for p in problems], 8,
                   stop_id=tok.eos_id, pad_id=tok.pad_id)
    ours = [tok.decode(out.tokens[i, : out.lengths[i]].tolist()) for i in range(len(problems))]
    assert_export_round_trip(run, tmp_path / "hf", [p.prompt for p in problems], ours, 8, tok)
