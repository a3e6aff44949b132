"""Batched sampling with a KV cache: greedy, temperature, top-k / top-p, n samples per prompt.

Prompts of different lengths are left-padded into one batch; padding is masked out of
attention and RoPE positions start at each prompt's first real token, so a prompt gives
the same tokens alone or in a batch. Each prompt is read once (one prefill) and its
`num_samples` rows start from copies of its cache: MCTS proposes several steps per node and
best-of-N draws many solutions per problem, so that is most of the prompt work saved. Every
step is one forward over the whole batch.

`sample_steps` is the same work as a Python generator that yields after each prefill chunk and each
new token: the server interleaves several batches with it, so a long prompt's prefill (read
`prefill_chunk` tokens at a time) never holds up the short requests beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch

from selfevolve.models.native import NativeForward
from selfevolve.models.transformer import DecodePositions, KVCache, Transformer


@dataclass
class Samples:
    tokens: torch.Tensor  # (N, T) generated ids, padded with pad_id after the stop token
    logprobs: torch.Tensor  # (N, T) log p(token) under the model at temperature 1, 0 after stop
    lengths: torch.Tensor  # (N,) generated tokens up to and including the stop token


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask logits outside the top-k and outside the top-p nucleus with -inf. (B, V) -> (B, V)."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    stop_id: int | tuple[int, ...],
    pad_id: int = 0,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    digit_offset: int = 0,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    native: bool = False,
) -> Samples:
    """Continue each prompt `num_samples` times; rows are prompt-major (p0s0, p0s1, ..., p1s0...).

    A row stops after the first token in `stop_id` (one id, or several: e.g. end of line or of text).
    `on_step(first_row, ids)`, when given, sees each step's new ids (pad_id for rows already
    stopped) as they are made: streaming. `on_batch(prompts)` is called after each batch with the
    number of prompts it finished: a progress bar's advance. native: run the model's forward in C
    (models/native.py): faster on a small model, close to but not bit for bit the torch path's values.
    """
    if not prompts:
        raise ValueError("generate() needs at least one prompt")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    per = max(1, batch_size // num_samples)  # prompts per batch
    parts = []
    for i in range(0, len(prompts), per):
        steps = sample_steps(model, prompts[i : i + per], max_new_tokens, stop_id=stop_id, pad_id=pad_id,
                             num_samples=num_samples, temperature=temperature, top_k=top_k, top_p=top_p,
                             digit_offset=digit_offset, generator=generator, native=native,
                             on_step=on_step and (lambda ids, first=i * num_samples: on_step(first, ids)))
        parts.append(run_to_end(steps))
        if on_batch is not None:
            on_batch(len(prompts[i : i + per]))
    width = max(p.tokens.shape[1] for p in parts)

    def cat(name: str, fill: float) -> torch.Tensor:
        return torch.cat([torch.nn.functional.pad(getattr(p, name), (0, width - p.tokens.shape[1]), value=fill)
                          for p in parts])

    return Samples(cat("tokens", pad_id), cat("logprobs", 0.0), torch.cat([p.lengths for p in parts]))


def run_to_end(steps: Generator[None, None, Samples]) -> Samples:
    """Drive a `sample_steps` generator to its end and return its samples."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


@torch.inference_mode()  # cheaper per op than no_grad; `generate` hands out ordinary tensors (its cat)
def sample_steps(model: Transformer, prompts: list[list[int]], max_new_tokens: int, *, stop_id: int | tuple[int, ...],
                 pad_id: int = 0, num_samples: int = 1, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                 digit_offset: int = 0, generator: torch.Generator | None = None,
                 on_step: Callable[[torch.Tensor], None] | None = None,
                 prefill_chunk: int = 0, native: bool = False) -> Generator[None, None, Samples]:
    """One batch of `generate`, yielding after every prefill chunk and every token; returns its Samples.

    prefill_chunk: read the prompts this many positions per forward (0: all at once); the chunks'
    keys go to the same cache, so the tokens are the same either way.
    """
    model.eval()
    device = next(model.parameters()).device
    cfg = model.cfg
    forward = NativeForward(model) if native else None
    blocks = None if native else model.plain_blocks()

    def last_logits(ids, positions, digit_pos, mask, cache) -> torch.Tensor:
        """Logits (B, vocab) after the last of ids (B, T), which continue the cache."""
        if forward is not None:
            return model.lm_head(forward.features(ids, positions, mask, cache)[:, -1])
        return model(ids, positions=positions, digit_pos=digit_pos, mask=mask, cache=cache, last_only=True,
                     blocks=blocks)[:, -1]

    stops = torch.tensor(stop_id if isinstance(stop_id, tuple) else (stop_id,), device=device)
    U, P = len(prompts), max(len(p) for p in prompts)
    if P + max_new_tokens > cfg.max_seq_len and cfg.pos_encoding == "rope":
        raise ValueError(f"prompt + max_new_tokens = {P + max_new_tokens} exceeds max_seq_len {cfg.max_seq_len}")
    idx = torch.full((U, P), pad_id, dtype=torch.long)
    for i, p in enumerate(prompts):
        idx[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
    idx = idx.to(device)
    # from the lengths, not from pad_id: a prompt may contain the pad token (SmolLM2 pads with <|im_end|>)
    prompt_lens = torch.tensor([len(p) for p in prompts], device=device)
    prompt_valid = torch.arange(P, device=device) >= P - prompt_lens[:, None]

    # prefill each prompt once: causal and key-valid, plus the diagonal so padded queries never see an empty row
    causal = torch.ones(P, P, dtype=torch.bool, device=device).tril()
    mask = (causal & prompt_valid[:, None, None, :]) | torch.eye(P, dtype=torch.bool, device=device)
    dtype = next(model.parameters()).dtype
    prefill = KVCache(cfg, U, P, dtype, device)
    tracker = DecodePositions(model, idx, prompt_valid, torch.full((U,), digit_offset, device=device))
    positions, digit_pos = tracker.prompt
    chunk = prefill_chunk or P
    for a in range(0, P, chunk):
        b = min(P, a + chunk)
        logits = last_logits(idx[:, a:b], None if positions is None else positions[:, a:b],
                             None if digit_pos is None else digit_pos[:, a:b], mask[:, :, a:b, :b], prefill)
        if b < P:
            yield

    # then its num_samples rows share what the prefill made
    B = U * num_samples
    logits = logits.repeat_interleave(num_samples, 0)
    tracker.take(torch.arange(U, device=device).repeat_interleave(num_samples))
    cache = KVCache(cfg, B, P + max_new_tokens, dtype, device)
    cache.k[:, :, :, :P] = prefill.k.repeat_interleave(num_samples, 1)
    cache.v[:, :, :, :P] = prefill.v.repeat_interleave(num_samples, 1)
    cache.digit_pos[:, :P] = prefill.digit_pos.repeat_interleave(num_samples, 0)
    cache.length = P
    valid = torch.ones(B, P + max_new_tokens, dtype=torch.bool, device=device)
    valid[:, :P] = prompt_valid.repeat_interleave(num_samples, 0)

    tokens = torch.full((B, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(B, max_new_tokens, device=device)
    lengths = torch.full((B,), max_new_tokens, dtype=torch.long, device=device)
    live = torch.arange(B, device=device)  # the rows still in the batch
    done = torch.zeros(B, dtype=torch.bool, device=device)  # of the live rows
    for t in range(max_new_tokens):
        yield
        logits = logits.float()
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            probs = filter_logits(logits / temperature, top_k, top_p).softmax(-1)
            if forward is not None:  # by inverse CDF: one uniform a row, where multinomial draws one a token
                cdf = probs.cumsum(-1)
                u = torch.rand(len(probs), 1, generator=generator).to(device) * cdf[:, -1:]
                nxt = (cdf <= u).sum(-1).clamp(max=probs.shape[-1] - 1)
            else:
                nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)
        lp = logits.log_softmax(-1).gather(1, nxt[:, None]).squeeze(1)
        tokens[live, t] = torch.where(done, pad_id, nxt)
        if on_step is not None:
            on_step(tokens[:, t].cpu())
        logprobs[live, t] = torch.where(done, 0.0, lp)
        stopped = ~done & torch.isin(nxt, stops)
        lengths[live[stopped]] = t + 1
        done |= stopped
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        if 2 * int(done.sum()) >= len(done) >= 16:  # half the rows finished: drop them from the batch
            keep = (~done).nonzero().squeeze(1)
            live, done, nxt = live[keep], done[keep], nxt[keep]
            cache.take(keep)
            tracker.take(keep)
            valid = valid[keep]
        positions, digit_pos = tracker.push(nxt)
        logits = last_logits(nxt[:, None], positions, digit_pos, valid[:, None, None, : cache.length + 1], cache)
    return Samples(tokens[:, : t + 1].cpu(), logprobs[:, : t + 1].cpu(), lengths.cpu())
