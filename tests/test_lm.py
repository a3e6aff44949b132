"""The one LM interface: our transformer behind it gives the sampler's tokens and consistent
log-probs; rollouts drive any backend through the environments and store Parquet trajectories."""

import re

import pandas as pd
import pytest
import torch
from helpers import save_tiny_llama

from selfevolve.agents.rollout import expert_episodes, run_episodes, trajectory_table
from selfevolve.models.lm import ScriptedLM, TransformerLM, cut_at_stop, transcript
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import RunStore


def tiny_lm():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=CharTokenizer().vocab_size, n_layer=2, n_embd=32,
                                          max_seq_len=64, pos_encoding="rope"))
    return TransformerLM(model, CharTokenizer())


def test_generate_returns_n_completions_whose_logprob_is_what_logprob_says():
    lm = tiny_lm()
    out = lm.generate(["ab", "xyz"], n=3, temperature=1.0, max_tokens=6)
    assert [len(row) for row in out] == [3, 3]
    for prompt, row in zip(["ab", "xyz"], out, strict=True):
        for c in row:
            if c.tokens == 6:  # no end token: the text is all of what was generated
                assert c.logprob == pytest.approx(lm.logprob(prompt, c.text), abs=1e-4)
    greedy = lm.generate(["ab"], n=2, max_tokens=6)[0]
    assert greedy[0].text == greedy[1].text
    with pytest.raises(ValueError, match="context of 64 tokens"):
        lm.generate(["a" * 60], max_tokens=10)


def test_stop_strings_chat_transcripts_and_scripted_replies():
    assert cut_at_stop("Thought: x\nAction: y", ["\n"]) == "Thought: x"
    assert cut_at_stop("abc", ["z", "c", "b"]) == "a" and cut_at_stop("abc", None) == "abc"
    assert transcript([{"role": "user", "content": "hi"}]) == "user: hi\nassistant: "
    echo = ScriptedLM(lambda p: p.upper() + "|rest")
    assert echo.generate(["ab"], n=2, stop=["|"])[0][1].text == "AB"
    assert echo.chat([{"role": "user", "content": "x"}]).startswith("USER: X")
    assert echo.logprob("ab", "AB|rest") == 0.0 and echo.logprob("ab", "no") == float("-inf")


def test_a_run_and_a_local_hugging_face_model_load_behind_the_interface(tmp_path):
    lm = tiny_lm()
    store = RunStore.create(tmp_path / "run", "star", "")
    store.save_checkpoint(0, lm.model, lm.model.cfg.to_dict(), torch.optim.AdamW(lm.model.parameters()), {})
    again = TransformerLM.from_run(tmp_path / "run")
    assert again.generate(["hello"], max_tokens=8) == lm.generate(["hello"], max_tokens=8)
    save_tiny_llama(tmp_path / "hf")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({f"w{i}": i for i in range(97)}, unk_token="w0"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="w2", pad_token="w3").save_pretrained(tmp_path / "hf")
    hf = TransformerLM.from_pretrained(tmp_path / "hf")
    text = hf.generate(["w5 w6"], max_tokens=5)[0][0].text
    assert re.fullmatch(r"(w\d+ ?)+", text)


def calc_solver(obs: str) -> str:
    """Answers a calc task in one step, from the observation alone."""
    expr = obs.rsplit("calc: ", 1)[1]
    return f"Thought: all at once\nAction: answer {eval(expr, {'__builtins__': {}})}"  # digits and + * only


def test_rollouts_play_in_lockstep_and_trajectories_round_trip_through_parquet(tmp_path):
    tasks = [("calc", i) for i in range(5)] + [("maze", i) for i in range(3)]
    lm = ScriptedLM(lambda obs: calc_solver(obs) if obs.startswith("calc") else "Action: move n")
    episodes = run_episodes(lm, tasks)
    assert [ep.success for ep in episodes[:5]] == [True] * 5 and all(len(ep.actions) == 1 for ep in episodes[:5])
    assert all(not ep.success and len(ep.actions) >= 1 for ep in episodes[5:])
    experts = expert_episodes(tasks)
    assert all(ep.success for ep in experts)
    store = RunStore.create(tmp_path / "run", "agentevol", "")
    store.write_samples(0, trajectory_table(episodes + experts, iteration=0))
    table = pd.read_parquet(tmp_path / "run" / "samples" / "round-000.parquet")
    assert list(table.columns[:9]) == ["env", "task_id", "episode", "step", "observation", "action", "logprob",
                                       "reward", "success"]
    assert len(table) == sum(len(ep.actions) for ep in episodes + experts) and set(table["iteration"]) == {0}
    assert table.groupby("episode")["reward"].sum().tolist() == [float(ep.success) for ep in episodes + experts]
