"""PASTA's action-state transformer: a trajectory as tokens, over the Llama blocks of models/transformer.py.

Component tokens (PASTA's choice): every state and action dimension is its own token, its value cut
into `bins` bins over a fixed range, with a vocabulary slice per dimension, so a step of a 4-d state and
a 2-d action is six tokens; pretraining predicts every next token. Modality tokens (the baseline):
a state vector is one token and an action vector another, each embedded by a linear map; pretraining
regresses the next action from a state token and the next state from an action token. Both read a
window of the last `context` steps; an action is read from the model given the states and actions
before it (component tokens: the most likely bin of each action dimension in turn).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfevolve.models.transformer import Block, RMSNorm, TransformerConfig, rope_cos_sin

TOKENS = ("component", "modality")


class Bins:
    """Values per dimension <-> token ids: dimension d, bin b is id d * bins + b; decoding gives the
    bin's centre, so a round trip is off by at most half a bin (values outside the range are clipped)."""

    def __init__(self, low: list[float], high: list[float], bins: int) -> None:
        self.low, self.high, self.bins = torch.tensor(low), torch.tensor(high), bins
        self.width = (self.high - self.low) / bins

    def encode(self, x: torch.Tensor, first_dim: int = 0) -> torch.Tensor:
        dims = slice(first_dim, first_dim + x.shape[-1])
        b = ((x - self.low[dims]) / self.width[dims]).floor().long().clamp(0, self.bins - 1)
        return b + torch.arange(first_dim, first_dim + x.shape[-1]) * self.bins

    def decode(self, ids: torch.Tensor, first_dim: int = 0) -> torch.Tensor:
        dims = slice(first_dim, first_dim + ids.shape[-1])
        b = ids - torch.arange(first_dim, first_dim + ids.shape[-1]) * self.bins
        return self.low[dims] + (b.float() + 0.5) * self.width[dims]


class ActionStateTransformer(nn.Module):
    def __init__(self, cfg: TransformerConfig, tokens: str, bins: Bins, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.tokens, self.bins, self.state_dim, self.action_dim = tokens, bins, state_dim, action_dim
        self.cfg = cfg
        self.layers = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        if tokens == "component":
            vocab = (state_dim + action_dim) * bins.bins
            self.embed = nn.Embedding(vocab, cfg.n_embd)
            self.head = nn.Linear(cfg.n_embd, vocab)
        else:
            self.embed_state, self.embed_action = nn.Linear(state_dim, cfg.n_embd), nn.Linear(action_dim, cfg.n_embd)
            self.head_state, self.head_action = nn.Linear(cfg.n_embd, state_dim), nn.Linear(cfg.n_embd, action_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Causal features of embedded tokens (B, L, C)."""
        positions = torch.arange(x.shape[1]).expand(x.shape[0], -1)
        rope = rope_cos_sin(positions, self.cfg.n_embd // self.cfg.n_head, self.cfg.rope_theta, x.dtype)
        for block in self.layers:
            x = block(x, rope, None, None)
        return self.norm(x)

    def ids(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Component tokens of (B, T, S) states and (B, T', A) actions (T' = T or T - 1), step by step."""
        s, a = self.bins.encode(states), self.bins.encode(actions, self.state_dim)
        steps = [torch.cat([s[:, t], a[:, t]], 1) if t < a.shape[1] else s[:, t] for t in range(states.shape[1])]
        return torch.cat(steps, 1)

    def _modality(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        s, a = self.embed_state(states), self.embed_action(actions)
        steps = [torch.stack([s[:, t], a[:, t]], 1) if t < a.shape[1] else s[:, t:t + 1]
                 for t in range(states.shape[1])]
        return torch.cat(steps, 1)

    def loss(self, states: torch.Tensor, actions: torch.Tensor, actions_only: bool) -> torch.Tensor:
        """Pretraining (every next token) or behaviour cloning (`actions_only`: the action tokens alone)
        on windows of (B, T, S) states and their (B, T, A) actions."""
        step = self.state_dim + self.action_dim
        if self.tokens == "component":
            ids = self.ids(states, actions)
            logits = self.head(self.features(self.embed(ids)))[:, :-1]
            target = ids[:, 1:]
            if actions_only:  # positions whose next token is an action component
                is_action = (torch.arange(1, ids.shape[1]) % step) >= self.state_dim
                logits, target = logits[:, is_action], target[:, is_action]
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        h = self.features(self._modality(states, actions))
        action_loss = F.mse_loss(self.head_action(h[:, 0::2]), actions)
        if actions_only:
            return action_loss
        return action_loss + F.mse_loss(self.head_state(h[:, 1:-1:2]), states[:, 1:])

    @torch.no_grad()
    def act(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The action (B, A) after (B, T, S) states and the (B, T - 1, A) actions taken between them."""
        if self.tokens == "modality":
            return self.head_action(self.features(self._modality(states, actions))[:, -1]).clamp(-1, 1)
        ids = self.ids(states, actions)
        chosen = []
        for d in range(self.action_dim):
            logits = self.head(self.features(self.embed(ids)))[:, -1]
            lo = (self.state_dim + d) * self.bins.bins
            token = logits[:, lo:lo + self.bins.bins].argmax(-1) + lo
            chosen.append(token)
            ids = torch.cat([ids, token[:, None]], 1)
        return self.bins.decode(torch.stack(chosen, 1), self.state_dim)
