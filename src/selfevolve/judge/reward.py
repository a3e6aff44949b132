"""Reward models: the policy's transformer with a scalar head, read at the last token.

One class, three uses: an outcome reward model (ORM) learns P(answer is correct) from verified
answers; a process reward model (PRM, MedS3) regresses a partial solution's search value; a
process preference model (PPM, rStar-Math) ranks sibling steps pairwise. Initialised from the
policy's weights, as reward models usually are, so each starts from what the policy knows.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfevolve.models.transformer import Transformer
from selfevolve.progress import Progress
from selfevolve.train.sft import Examples, SFTConfig, apply_loss, lr_at, make_optimizer


class RewardModel(nn.Module):
    """Scalar score (a logit) per sequence, read from the hidden state of its last token by a head
    without bias: exactly transformers' LlamaForSequenceClassification with one label, which is what
    export writes."""

    def __init__(self, body: Transformer) -> None:
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.cfg.n_embd, 1, bias=False)
        nn.init.zeros_(self.head.weight)

    @classmethod
    def from_policy(cls, policy: Transformer) -> RewardModel:
        return cls(copy.deepcopy(policy))

    def forward(self, ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """ids (B, T) right-padded, lens (B,) -> logits (B,)."""
        h = self.body.features(ids)  # (B, T, C)
        return self.head(h[torch.arange(len(ids)), lens - 1]).squeeze(-1)

    @torch.no_grad()
    def score(self, examples: Examples, batch_size: int = 32) -> np.ndarray:
        """P(correct) for every example, in order. Small batches: an attention bias per sequence
        (ALiBi) is batch x heads x T x T, and at 512 x 4 x 300 x 300 it made scoring 3x slower."""
        self.eval()
        out = []
        for lo in range(0, len(examples), batch_size):
            index = torch.arange(lo, min(lo + batch_size, len(examples)))
            T = int(examples.lens[index].max())
            out.append(torch.sigmoid(self(examples.ids[index, :T], examples.lens[index])))
        return torch.cat(out).numpy() if out else np.zeros(0)


def _fit(model: RewardModel, n: int, batch_loss, steps: int, sft: SFTConfig, gen: torch.Generator,
         progress: Progress, title: str) -> float:
    """`steps` AdamW steps, each on `batch_loss(index)` for a random batch of the n training items."""
    optimizer = make_optimizer(model.body, sft)
    optimizer.add_param_group({"params": list(model.head.parameters()), "weight_decay": 0.0})
    loss = float("nan")
    with progress.task(title, total=steps) as advance:
        for step in range(steps):
            model.train()
            index = torch.randint(n, (min(sft.batch_size, n),), generator=gen)
            loss = apply_loss(model, optimizer, batch_loss(index), lr_at(step, steps, sft), sft)
            advance(loss=loss)
    return loss


def _logits(model: RewardModel, examples: Examples, index: torch.Tensor) -> torch.Tensor:
    T = int(examples.lens[index].max())
    return model(examples.ids[index, :T], examples.lens[index])


def train_pointwise(model: RewardModel, examples: Examples, targets: np.ndarray, steps: int, sft: SFTConfig,
                    gen: torch.Generator, progress: Progress, title: str, balance: bool = True) -> float:
    """Binary cross-entropy towards targets in [0, 1]: verdicts (an ORM) or rescaled Q-values (a PRM).
    With `balance`, both classes of 0/1 targets weigh the same, so a policy that is mostly wrong does
    not teach the judge to say "wrong" to everything."""
    target = torch.as_tensor(targets, dtype=torch.float32)
    weight = torch.ones_like(target)
    if balance:
        pos = float((target > 0.5).float().mean())
        weight = torch.where(target > 0.5, 0.5 / max(pos, 1e-6), 0.5 / max(1 - pos, 1e-6))
    return _fit(model, len(examples), lambda i: F.binary_cross_entropy_with_logits(
        _logits(model, examples, i), target[i], weight=weight[i]), steps, sft, gen, progress, title)


def train_pairwise(model: RewardModel, better: Examples, worse: Examples, steps: int, sft: SFTConfig,
                   gen: torch.Generator, progress: Progress, title: str) -> float:
    """Bradley-Terry ranking loss -log sigmoid(r(better) - r(worse)) over pairs (better[i], worse[i]):
    the process preference model learns which of two steps is better, never an absolute label."""
    return _fit(model, len(better), lambda i: -F.logsigmoid(_logits(model, better, i) - _logits(model, worse, i))
                .mean(), steps, sft, gen, progress, title)


def value_fn(rm: RewardModel, tok):
    """A search's value function from a reward model: (problems, partial solutions) -> logits squashed
    to [-1, 1]."""
    def value(problems, solutions: list[str]) -> np.ndarray:
        return 2 * rm.score(Examples.encode(tok, [q.prompt for q in problems], solutions)) - 1
    return value


def pair_accuracy(rm: RewardModel, tok, prompts: list[str], better: list[str], worse: list[str]) -> float | None:
    """Share of (better, worse) pairs the model ranks the right way round (None without pairs)."""
    if not prompts:
        return None
    return float((rm.score(Examples.encode(tok, prompts, better)) > rm.score(Examples.encode(tok, prompts, worse)))
                 .mean())


PROCESS_MODELS = ("ppm", "prm", "orm")


def load_process_models(checkpoint, policy_model: Transformer) -> dict[str, RewardModel]:
    """The PPM, PRM and ORM a checkpoint holds (none before a search round trained them)."""
    from pathlib import Path

    from selfevolve.store import load_extra

    return {name: load_extra(checkpoint, name, RewardModel.from_policy(policy_model)) for name in PROCESS_MODELS
            if (Path(checkpoint) / f"{name}.safetensors").exists()}


def train_from_trees(policy, data: dict[str, list], steps: int, sft: SFTConfig, gen: torch.Generator,
                     progress: Progress, prefix: str, epochs: float = 0.0,
                     max_steps: int = 0) -> tuple[dict[str, RewardModel], dict]:
    """A PPM (pairwise, on sibling steps), a PRM (regressed on Q) and an ORM (on outcomes) from search
    trees' rows (search/tree_data.py), each initialised from the policy and trained `steps` steps, or
    enough to see its data `epochs` times if that is more (more search, more steps), but at most
    `max_steps` if that is > 0 (the PRM has a row per visited step and would take the run's time).
    Returns the models and the steps each took."""
    from selfevolve.search.tree_data import pick

    tok = policy.tok
    models = {name: RewardModel.from_policy(policy.model) for name in PROCESS_MODELS}
    pairs, prm, orm = pick(data, "pair", False), pick(data, "prm", False), pick(data, "orm", False)
    def steps_for(rows: dict[str, list]) -> int:
        if not rows["prompt"]:
            return 0
        wanted = max(steps, math.ceil(epochs * len(rows["prompt"]) / sft.batch_size))
        return min(wanted, max_steps) if max_steps else wanted

    taken = {name: steps_for(rows) for name, rows in (("ppm", pairs), ("prm", prm), ("orm", orm))}
    if pairs["prompt"]:
        train_pairwise(models["ppm"], Examples.encode(tok, pairs["prompt"], pairs["text"]),
                       Examples.encode(tok, pairs["prompt"], pairs["other"]), taken["ppm"], sft, gen, progress,
                       f"{prefix}PPM on {len(pairs['prompt'])} step pairs")
    for name, rows, balance in (("prm", prm, False), ("orm", orm, True)):
        if rows["prompt"]:
            train_pointwise(models[name], Examples.encode(tok, rows["prompt"], rows["text"]), np.array(rows["target"]),
                            taken[name], sft, gen, progress,
                            f"{prefix}{name.upper()} on {len(rows['prompt'])} examples", balance=balance)
    return models, taken
