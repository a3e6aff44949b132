"""Hugging Face Llama weights run in our Transformer and sampler with the same greedy tokens as
`transformers` generate: a tiny random Llama saved locally, and the real SmolLM2-135M."""

import json

import pytest
import torch
from helpers import run_cli, save_tiny_llama, sets

from selfevolve.errors import CheckpointError, ConfigError
from selfevolve.models.hf import load_model, load_tokenizer, resolve
from selfevolve.models.sampler import generate

transformers = pytest.importorskip("transformers")



def hf_greedy(hf, prompts, new_tokens, pad_id):
    """`generate` on left-padded prompts with an attention mask: how HF users batch ragged prompts.

    No end-of-sequence handling on either side: `min_new_tokens` would mask the eos logit instead."""
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        hf.generation_config.eos_token_id = None
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad_id)
    return out[:, width:]


@pytest.mark.parametrize("tie, kv_heads", [(True, 2), (False, 4), (True, 1)])
def test_tiny_llama_gives_the_same_logits_and_greedy_tokens(tmp_path, tie, kv_heads):
    hf = save_tiny_llama(tmp_path / "llama", tie, kv_heads)
    ours = load_model(str(tmp_path / "llama"))
    assert ours.cfg.n_kv_head == kv_heads and ours.cfg.tie_embeddings == tie
    x = torch.randint(4, 97, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-4)
    # ragged prompts, and the pad token (3) inside a prompt: padding must come from lengths, not ids
    prompts = [[5, 6, 7, 3, 9, 10, 11], [12, 13], [40, 3, 41, 42, 43]]
    got = generate(ours, prompts, 12, stop_id=-1, pad_id=3).tokens
    assert torch.equal(got, hf_greedy(hf, prompts, 12, pad_id=3))


def test_unsupported_or_broken_model_directories_get_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve(str(tmp_path))
    save_tiny_llama(tmp_path / "llama", tie=True)
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ConfigError, match="model_type is 'gpt2'"):
        load_model(str(tmp_path / "gpt"))
    (tmp_path / "biased").mkdir()
    (tmp_path / "biased" / "config.json").write_text(json.dumps({**config, "attention_bias": True}))
    with pytest.raises(ConfigError, match="biases"):
        load_model(str(tmp_path / "biased"))
    weights = tmp_path / "llama" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(str(tmp_path / "llama"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    weights.unlink()
    save_tiny_llama(tmp_path / "llama", tie=True)
    (tmp_path / "other" / "model.safetensors").write_bytes(weights.read_bytes())
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(str(tmp_path / "other"))


def test_smollm2_from_the_wheel_samples_like_generate(smollm2):
    tok = load_tokenizer(str(smollm2))
    ours = load_model(str(smollm2))
    assert ours.num_params() == 134_515_008
    questions = ["What is 2+3?", "Name a colour.", "Write a haiku about the sea."]
    prompts = [list(tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                           tokenize=True, return_dict=True)["input_ids"]) for q in questions]
    assert len({len(p) for p in prompts}) > 1 and tok.pad_token_id in prompts[0]  # ragged, pad inside
    hf = transformers.AutoModelForCausalLM.from_pretrained(smollm2).eval()
    got = generate(ours, prompts, 16, stop_id=-1, pad_id=tok.pad_token_id).tokens
    assert torch.equal(got, hf_greedy(hf, prompts, 16, tok.pad_token_id))
    assert "5" in tok.decode(got[0])


def test_star_runs_on_smollm2_with_lora_and_checkpoints_only_the_adapter(tmp_path, smollm2):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    short = ["model=smollm2", "lora_r=8", "difficulty=3", "num_labelled=16", "round0_steps=3", "iterations=1",
             "problems_per_iteration=4", "samples_per_problem=2", "iteration_steps=2", "eval_problems=4",
             "batch_size=8", "warmup_steps=1"]
    proc = run_cli("run", "star", "--out", str(out), *sets(short))
    assert proc.returncode == 0, proc.stderr
    s = json.loads((out / "summary.json").read_text())
    assert [r["round"] for r in s["rounds"]] == [0, 1] and s["samples_drawn"] == 8 and s["tokens_trained"] > 0
    saved = load_file(out / "checkpoints" / "round-001" / "model.safetensors")
    assert saved and all("lora_" in k for k in saved)  # the 135M base is not copied into every round
    assert sum(v.numel() for v in saved.values()) < 5_000_000
    problems = tmp_path / "mine.jsonl"
    problems.write_text('{"numbers": [3, 7, 2], "target": 10}\n')
    proc = run_cli("eval", str(out), "--file", str(problems))
    assert proc.returncode == 0, proc.stderr
    assert "pass@1" in proc.stdout
