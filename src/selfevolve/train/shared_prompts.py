"""A group's prompt read once in training: the policy-gradient step's forward passes (the policy's, the
reference's) over `group_size` completions of one prompt, with the prompt's tokens computed once.

Each group becomes one row: the prompt, then every completion (after its own copy of the prompt's
last token), each completion attending to the prompt and to its own earlier tokens only, at the
positions (RoPE, abacus indices) it has on its own. The log-probabilities are those of the
unshared batch, in its layout, up to float rounding (tests/test_rl.py checks values, gradients and
that repeated passes agree bit for bit), for fewer tokens: G completions of length C after a
prompt of length L cost L + G (C + 1) tokens instead of G (L + C), and the output head runs only
where a completion token is predicted. The sampler shares the prompt's prefill the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selfevolve.models.native import NativeForward
from selfevolve.models.transformer import Transformer
from selfevolve.train.sft import IGNORE, Examples


@dataclass
class SharedPrompts:
    ids: torch.Tensor  # (groups, L) prompt then completions, right-padded
    positions: torch.Tensor | None  # (groups, L) RoPE positions, as each token has them unshared
    digit_pos: torch.Tensor | None  # (groups, L) abacus indices, likewise
    mask: torch.Tensor  # (groups, 1, L, L) who may attend to whom
    source: tuple[torch.Tensor, torch.Tensor]  # (group, position) whose output predicts each completion token
    target: torch.Tensor  # each completion token's id
    unshared: tuple[torch.Tensor, torch.Tensor]  # (row, column) of each completion token's label unshared
    labels: torch.Tensor  # the unshared batch's labels (N, T - 1)


def share_prompts(model: torch.nn.Module, examples: Examples, group: int) -> SharedPrompts | None:
    """The batch packed one row per group of `group` consecutive rows, or None when nothing is shared
    (groups of one, rows of a group with different prompts, or a model other than ours)."""
    if group < 2 or len(examples) % group or not isinstance(model, Transformer):
        return None
    n, T = len(examples), int(examples.lens.max())  # T: the unshared sequences' width
    firsts = torch.arange(0, n, group)
    col = torch.arange(T)
    prompt_lens = examples.prompt_lens.view(-1, group)
    in_prompt = col < examples.prompt_lens[firsts, None]
    as_first = examples.ids.reshape(len(firsts), group, -1)[:, :, :T] == examples.ids[firsts, None, :T]
    if not ((prompt_lens == prompt_lens[:, :1]).all() and (as_first | ~in_prompt[:, None]).all()):
        return None
    # each completion carries its own copy of the prompt's last token, so that no output is read twice
    # (the backward of a repeated read accumulates in a thread-dependent order: results would vary)
    heads, ends = examples.prompt_lens - 1, examples.lens  # a row's segment: columns heads..ends-1
    sizes = (ends - heads).view(-1, group)
    at = heads + (sizes.cumsum(1) - sizes).flatten()  # where each row's segment starts in its group's row
    group_of = torch.arange(n) // group
    width = int((heads[firsts] + sizes.sum(1)).max())
    ids = torch.zeros((len(firsts), width), dtype=torch.long)
    segment = torch.full((len(firsts), width), -2)  # -1 prompt, i completion i of the group, -2 padding
    take = torch.zeros((len(firsts), width), dtype=torch.long)  # each token's (row * T + column) unshared
    g, c = (col < heads[firsts, None]).nonzero(as_tuple=True)  # the prompt but its last token, once a group
    ids[g, c], segment[g, c], take[g, c] = examples.ids[firsts[g], c], -1, firsts[g] * T + c
    r, c = ((col >= heads[:, None]) & (col < ends[:, None])).nonzero(as_tuple=True)
    g, at_packed = group_of[r], at[r] + c - heads[r]
    ids[g, at_packed], segment[g, at_packed], take[g, at_packed] = examples.ids[r, c], r % group, r * T + c
    r, c = ((col >= heads[:, None]) & (col < ends[:, None] - 1)).nonzero(as_tuple=True)
    source = (group_of[r], at[r] + c - heads[r])  # completion token c + 1 is predicted by the token before it
    target, unshared = examples.ids[r, c + 1], (r, c)
    key = torch.arange(width)
    same = (segment[:, None, :] == -1) | (segment[:, None, :] == segment[:, :, None])  # (groups, query, key)
    mask = (key[None, :] <= key[:, None])[None] & same
    mask |= torch.eye(width, dtype=torch.bool)[None]  # a padding token attends to itself: no empty row

    def gather(unshared_positions: torch.Tensor | None) -> torch.Tensor | None:
        """Positions as the unshared forward computes them (over its inputs), in the packed layout."""
        if unshared_positions is None:
            return None
        return torch.nn.functional.pad(unshared_positions, (0, 1)).flatten()[take]

    inputs, labels = examples.batch(torch.arange(n))
    rope, index = model.positions(inputs)
    return SharedPrompts(ids, gather(rope), gather(index), mask[:, None], source, target, unshared, labels)


def shared_logprobs(model: Transformer, packed: SharedPrompts, temperature: float, native: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What `logprobs_and_entropy` gives for the unshared batch: per-token log-probabilities of the
    completions at `temperature`, their mask and each position's entropy (no gradient), (N, T - 1) each.
    native: the forward (and backward) in C (models/native.py)."""
    if native:
        x = NativeForward(model).features(packed.ids, packed.positions, packed.mask)
    else:
        x = model.features(packed.ids, positions=packed.positions, digit_pos=packed.digit_pos, mask=packed.mask,
                           blocks=model.plain_blocks())
    logits = model.lm_head(x[packed.source]).float()
    logp_all = (logits if temperature == 1.0 else logits / temperature).log_softmax(-1)
    picked = logp_all.gather(-1, packed.target[:, None]).squeeze(-1)
    zeros = torch.zeros(packed.labels.shape, dtype=picked.dtype)
    logp = zeros.index_put(packed.unshared, picked)
    with torch.no_grad():
        entropy = zeros.index_put(packed.unshared, -(logp_all.exp() * logp_all).sum(-1))
    return logp, packed.labels != IGNORE, entropy
