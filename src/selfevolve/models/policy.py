"""A policy is a model with its own tokenizer: every hook of the self-training loop gets both.

`model=tiny` is a transformer trained from scratch over our character tokenizer; any other
name is `smollm2` or a local Hugging Face directory, loaded with its pretrained weights and its
own tokenizer. `lora_r > 0` trains LoRA adapters instead of every weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.rng import seeded

TINY = "tiny"


class Tokenizer(Protocol):
    """What our sampler and trainer need of a tokenizer (CharTokenizer, or an HF one wrapped)."""

    eos_id: int
    pad_id: int

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids, stop_at_eos: bool = True) -> str: ...


@dataclass
class Policy:
    model: Transformer
    tok: Tokenizer


def load_policy(model: str, seed: int, max_seq_len: int, n_layer: int, n_head: int, n_embd: int,
                lora_r: int = 0, lora_alpha: int = 16, **tiny) -> Policy:
    """A fresh tiny transformer (seeded, of the given shape; `tiny` overrides more of its
    TransformerConfig, RoPE positions by default) or a pretrained HF model, with LoRA adapters (the
    only trained weights) when lora_r > 0."""
    if model == TINY:
        tok = CharTokenizer()
        cfg = TransformerConfig(vocab_size=tok.vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd,
                                max_seq_len=max_seq_len, **{"pos_encoding": "rope", **tiny})
        net = seeded(lambda: Transformer(cfg), seed, "init")
    else:
        from selfevolve.models.hf import load

        net, tok = load(model)
    if lora_r:
        from selfevolve.models.lora import LoraSpec, add_lora

        net = add_lora(net, LoraSpec(r=lora_r, alpha=lora_alpha), seed=seed)
    return Policy(net, tok)


@dataclass
class ModelChoice:
    """The config fields of every recipe that trains a language model: which one, and how."""

    model: str = TINY
    """tiny (a transformer trained from scratch with the recipe's shape and our character tokenizer),
    smollm2, or a local HF Llama directory (fine-tuned from its pretrained weights, with its own
    tokenizer and chat template; see lora_r)."""
    lora_r: int = 0
    """Train LoRA adapters of this rank instead of every weight (0 = full fine-tuning)."""
    lora_alpha: int = 16
    """LoRA scale numerator (updates are scaled by alpha / r)."""

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]  (a mixin before the recipe's config base)
        if self.lora_r < 0 or self.lora_alpha < 1:
            raise ValueError(f"lora_r must be >= 0 and lora_alpha >= 1, got {self.lora_r}, {self.lora_alpha}")
        if self.model != TINY:
            from selfevolve.models.hf import resolve

            resolve(self.model)  # a missing or foreign model directory fails before the run starts

    def load_policy(self, max_seq_len: int, **tiny) -> Policy:
        """The configured model (a tiny one of the config's n_layer / n_head / n_embd, and `tiny`'s
        TransformerConfig fields) and its tokenizer."""
        return load_policy(self.model, self.seed, max_seq_len, self.n_layer, self.n_head,  # type: ignore[attr-defined]
                           self.n_embd, self.lora_r, self.lora_alpha, **tiny)  # type: ignore[attr-defined]
