"""Supervised fine-tuning: next-token loss on answer tokens only, AdamW, warmup + cosine, clipping.

Examples live in one padded tensor so a batch is an index draw and a slice, not a Python
loop over strings; the random generator is explicit, so a resumed run draws the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from selfevolve.config import check_min
from selfevolve.models.transformer import Transformer
from selfevolve.progress import Progress

IGNORE = -100


@dataclass
class SFTConfig:
    learning_rate: float = 1e-3
    """Peak learning rate of AdamW."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at learning_rate * min_lr_ratio."""
    warmup_steps: int = 50
    """Linear warmup from 0 at the start of each training phase."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices (not on norms or embeddings)."""
    batch_size: int = 128
    """Sequences per optimizer step."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    fused: bool = False
    """AdamW's element-wise work in one fused kernel, as transformers' Trainer (TRL's too) steps it: faster
    than the default's foreach steps, whose values it matches up to rounding, not bit for bit."""

    def __post_init__(self) -> None:
        for name in ("learning_rate", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must be >= 0")


@dataclass
class TrainingConfig:
    """The model shape and optimiser settings every recipe that trains a tiny transformer shares."""

    n_layer: int = 4
    """Transformer layers."""
    n_head: int = 4
    """Attention heads."""
    n_embd: int = 128
    """Model width."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (warmup then cosine, per training phase)."""
    batch_size: int = 64
    """Sequences per optimizer step."""
    warmup_steps: int = 50
    """Linear warmup steps at the start of each phase."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices."""
    threads: int = 0
    """torch CPU threads (0: leave torch's default)."""

    def __post_init__(self) -> None:
        check_min(self, 1, "n_layer", "n_head", "n_embd", "batch_size")
        check_min(self, 0, "warmup_steps", "threads")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"n_embd ({self.n_embd}) must be n_head ({self.n_head}) times an even head width "
                             "(rotary positions rotate pairs of dimensions)")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be > 0 and weight_decay >= 0")

    def sft(self) -> SFTConfig:
        return SFTConfig(learning_rate=self.learning_rate, batch_size=self.batch_size,
                         warmup_steps=self.warmup_steps, weight_decay=self.weight_decay)

    def use_threads(self) -> None:
        if self.threads:
            torch.set_num_threads(self.threads)


class Examples:
    """Prompt + answer + stop token, encoded and right-padded: ids (N, T), prompt_lens (N,)."""

    def __init__(self, ids: torch.Tensor, prompt_lens: torch.Tensor, lens: torch.Tensor) -> None:
        self.ids, self.prompt_lens, self.lens = ids, prompt_lens, lens

    @classmethod
    def encode(cls, tok, prompts: list[str], answers: list[str]) -> Examples:
        # prompt and answer encoded apart: a subword tokenizer must not merge across the boundary
        return cls.of_tokens([tok.encode(p) for p in prompts], [tok.encode(a) + [tok.eos_id] for a in answers],
                             tok.pad_id)

    @classmethod
    def of_problems(cls, tok, problems) -> Examples:
        """Each problem's prompt and gold answer."""
        return cls.encode(tok, [p.prompt for p in problems], [p.answer for p in problems])

    @classmethod
    def of_tokens(cls, prompts: list[list[int]], answers: list[list[int]], pad_id: int) -> Examples:
        """Prompt and answer ids as given (no stop token added: e.g. a model's own unfinished writing)."""
        seqs = [p + a for p, a in zip(prompts, answers, strict=True)]
        lens = torch.tensor([len(s) for s in seqs])
        ids = torch.full((len(seqs), int(lens.max()) if seqs else 1), pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        return cls(ids, torch.tensor([len(p) for p in prompts]), lens)

    def __len__(self) -> int:
        return len(self.lens)

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        parts = [p for p in parts if len(p)]
        width = max(p.ids.shape[1] for p in parts)
        ids = torch.cat([F.pad(p.ids, (0, width - p.ids.shape[1])) for p in parts])
        return Examples(ids, torch.cat([p.prompt_lens for p in parts]), torch.cat([p.lens for p in parts]))

    def select(self, rows: torch.Tensor) -> Examples:
        """The rows an index or a boolean mask picks."""
        return Examples(self.ids[rows], self.prompt_lens[rows], self.lens[rows])

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels), each (B, T-1), cut to the longest sequence drawn."""
        T = int(self.lens[index].max())
        ids = self.ids[index, :T]
        t = torch.arange(1, T)
        answer = (t[None, :] >= self.prompt_lens[index, None]) & (t[None, :] < self.lens[index, None])
        return ids[:, :-1], torch.where(answer, ids[:, 1:], IGNORE)


def token_logprobs(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token log-probability of each label under model / temperature (0 where the label is IGNORE),
    the label mask, and the full log-distribution at every position. (B, T) -> (B, T), (B, T), (B, T, V)."""
    logits = model(inputs).float()
    logp_all = (logits if temperature == 1.0 else logits / temperature).log_softmax(-1)
    mask = labels != IGNORE
    logp = logp_all.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return logp * mask, mask, logp_all


def lr_at(step: int, total: int, cfg: SFTConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def make_optimizer(model: Transformer, cfg: SFTConfig) -> torch.optim.AdamW:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # adapters only under LoRA
    decay = [p for n, p in trainable if p.dim() >= 2 and "emb" not in n]
    other = [p for n, p in trainable if not (p.dim() >= 2 and "emb" not in n)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": other, "weight_decay": 0.0}]
    # foreach: each op over all tensors in one call (no Python loop per tensor), the same values bit for bit
    steps = {"fused": True} if cfg.fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.98), **steps)


def sft_step(
    model: Transformer,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    lr: float,
    cfg: SFTConfig,
    digit_offset: torch.Tensor | None = None,
) -> float:
    """One AdamW step on a batch; returns the mean loss over answer tokens."""
    model.train()
    logits = model(inputs, digit_offset=digit_offset)
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    return apply_loss(model, optimizer, loss, lr, cfg)


def apply_loss(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, lr: float,
               cfg: SFTConfig) -> float:
    """Backward, clip, and one optimizer step at learning rate `lr`; returns the loss value."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
    optimizer.step()
    return loss.item()


def train_on_pools(model: Transformer, optimizer: torch.optim.Optimizer, sft: SFTConfig, pools: list[Examples],
                   shares: list[float], steps: int, gen: torch.Generator, progress: Progress, title: str,
                   max_digit_offset: int = 0) -> tuple[float, int]:
    """`steps` AdamW steps; each batch draws `shares` of its rows from the matching pool.
    Returns the last loss and the tokens trained on (prompt and answer, no padding).

    max_digit_offset > 0 shifts the abacus indices (digits, or sentences and lines) of each sequence by a
    random offset below it.
    """
    data = Examples.concat(pools)
    starts = np.cumsum([0] + [len(p) for p in pools])[:-1].tolist()
    counts = [round(sft.batch_size * s) for s in shares[:-1]]
    counts.append(sft.batch_size - sum(counts))
    loss, tokens = float("nan"), 0
    with progress.task(title, total=steps) as advance:
        for step in range(steps):
            index = torch.cat([lo + torch.randint(len(p), (n,), generator=gen)
                               for lo, p, n in zip(starts, pools, counts, strict=True) if n])
            inputs, labels = data.batch(index)
            offset = torch.randint(0, max(1, max_digit_offset), (len(index),), generator=gen)
            loss = sft_step(model, optimizer, inputs, labels, lr_at(step, steps, sft), sft, offset)
            tokens += int(data.lens[index].sum())
            advance(loss=loss)
    return loss, tokens
