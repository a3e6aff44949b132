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
    n, starts = len(examples), range(0, len(examples), group)
    for s in starts:
        length = int(examples.prompt_lens[s])
        if not (examples.prompt_lens[s:s + group] == length).all() or not (
                examples.ids[s:s + group, :length] == examples.ids[s, :length]).all():
            return None
    inputs, labels = examples.batch(torch.arange(n))
    T = inputs.shape[1] + 1  # the unshared sequences' width; the last token is never an input
    # each completion carries its own copy of the prompt's last token, so that no output is read twice
    # (the backward of a repeated read accumulates in a thread-dependent order: results would vary)
    width = max(int(examples.lens[s:s + group].sum() - (group - 1) * (examples.prompt_lens[s] - 1)) for s in starts)
    ids = torch.zeros((len(starts), width), dtype=torch.long)
    segment = torch.full((len(starts), width), -2)  # -1 prompt, i completion i of the group, -2 padding
    take = torch.zeros((len(starts), width), dtype=torch.long)  # each token's (row * T + column) unshared
    source, target, unshared = [], [], []
    for g, s in enumerate(starts):
        head = int(examples.prompt_lens[s]) - 1  # the prompt but its last token
        ids[g, :head], segment[g, :head] = examples.ids[s, :head], -1
        take[g, :head] = s * T + torch.arange(head)
        at = head
        for i in range(group):
            row, end = s + i, int(examples.lens[s + i])
            size = end - head  # the prompt's last token, then the completion
            ids[g, at:at + size], segment[g, at:at + size] = examples.ids[row, head:end], i
            take[g, at:at + size] = row * T + torch.arange(head, end)
            for j in range(size - 1):  # completion token j is predicted by the token before it
                source.append((g, at + j))
                target.append(int(examples.ids[row, head + 1 + j]))
                unshared.append((row, head + j))
            at += size
    key = torch.arange(width)
    same = (segment[:, None, :] == -1) | (segment[:, None, :] == segment[:, :, None])  # (groups, query, key)
    mask = (key[None, :] <= key[:, None])[None] & same
    mask |= torch.eye(width, dtype=torch.bool)[None]  # a padding token attends to itself: no empty row

    def gather(unshared_positions: torch.Tensor | None) -> torch.Tensor | None:
        """Positions as the unshared forward computes them (over its inputs), in the packed layout."""
        if unshared_positions is None:
            return None
        return torch.nn.functional.pad(unshared_positions, (0, 1)).flatten()[take]

    rope, index = model.positions(inputs)
    src, rows = torch.tensor(source), torch.tensor(unshared)
    return SharedPrompts(ids, gather(rope), gather(index), mask[:, None], (src[:, 0], src[:, 1]),
                         torch.tensor(target), (rows[:, 0], rows[:, 1]), labels)


def shared_logprobs(model: Transformer, packed: SharedPrompts, temperature: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What `logprobs_and_entropy` gives for the unshared batch: per-token log-probabilities of the
    completions at `temperature`, their mask and each position's entropy (no gradient), (N, T - 1) each."""
    x = model.features(packed.ids, positions=packed.positions, digit_pos=packed.digit_pos, mask=packed.mask)
    logits = model.lm_head(x[packed.source]).float()
    logp_all = (logits if temperature == 1.0 else logits / temperature).log_softmax(-1)
    picked = logp_all.gather(-1, packed.target[:, None]).squeeze(-1)
    zeros = torch.zeros(packed.labels.shape, dtype=picked.dtype)
    logp = zeros.index_put(packed.unshared, picked)
    with torch.no_grad():
        entropy = zeros.index_put(packed.unshared, -(logp_all.exp() * logp_all).sum(-1))
    return logp, packed.labels != IGNORE, entropy
