"""A tiny decoder-only transformer, Llama-shaped, in one file.

The blocks are exactly Llama's (RMSNorm, rotate-half RoPE, SwiGLU, no biases), so a
RoPE model exports as a plain `LlamaForCausalLM`. Two more position encodings matter
for length generalisation:

- ``nope``: no position signal at all; the causal mask alone orders tokens.
- ``abacus``: each digit gets a learned embedding of its index within its number
  (McLeish et al. 2024, "Transformers Can Do Arithmetic with the Right Embeddings",
  arXiv:2405.17399). With reversed operands, digit i of a and of b share index i. The
  answer's run starts at the "=" token, so the token that *predicts* answer digit i
  carries index i and finds its operands by equal index. Training adds a random offset
  per sequence so that indices beyond the labelled length are trained too.
- ``abacus-alibi``: ``abacus`` plus an attention bias -slope_h * |index_q - index_k| over
  digit indices (ALiBi, Press et al. 2022, arXiv:2108.12409, on digit indices). A longer
  number only adds keys that are farther away, and those score lower than anything seen
  in training. Generalises smoothly, but learns slowly and plateaus near 95% per number.
- ``abacus-rope`` / ``abacus-both``: RoPE over digit indices (without / with the learned
  table). Learns fastest, but each extra digit brings relative distances never seen in
  training, and its errors at a new length are systematic (filters cannot see them).
- ``abacus-all`` (default for arithmetic): the learned table, RoPE and ALiBi over digit
  indices together. Learns 1-5 digits exactly in ~1500 steps, is right at 6-7 digits
  most of the time and at 0% by 10: something to bootstrap from, and errors that the
  self-consistency filters catch.

The same index can couple larger units (``coupling="lines"``, position coupling as in Cho
et al. 2024, arXiv:2405.20671): sentence k of a question and line k of its solution share
index k, so the line that answers a sentence finds it by equal index however many came
before. RoPE then turns by a token's place within its sentence or line, which is as short in
a long solution as in a short one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

COUPLINGS = ("digits", "lines")
POS_ENCODINGS = ("abacus-alibi", "abacus-all", "abacus", "abacus-rope", "abacus-both", "rope", "nope")
LEARNED_TABLE = ("abacus", "abacus-both", "abacus-alibi", "abacus-all")
DIGIT_ROPE = ("abacus-rope", "abacus-both", "abacus-all")
DIGIT_ALIBI = ("abacus-alibi", "abacus-all")
MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
ID_LISTS = ("digit_token_ids", "run_start_token_ids", "sentence_end_ids", "line_end_ids")


@dataclass
class TransformerConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 64
    n_kv_head: int = 0  # 0 -> n_head; fewer is grouped-query attention (SmolLM2: 9 query, 3 kv heads)
    intermediate_size: int = 0  # 0 -> Llama's rule of thumb, 8/3 * n_embd rounded up to 16
    max_seq_len: int = 512
    pos_encoding: str = "abacus"
    rope_theta: float = 10000.0
    digit_pos_size: int = 128  # rows of the abacus table: max digits + max training offset + 1
    digit_token_ids: tuple[int, ...] = ()
    run_start_token_ids: tuple[int, ...] = ()  # tokens that open a number with index 1 (e.g. "=")
    coupling: str = "digits"  # what the abacus index counts: digits within a number, or sentences and lines
    sentence_end_ids: tuple[int, ...] = ()  # lines coupling: tokens that end a sentence of the question
    line_end_ids: tuple[int, ...] = ()  # lines coupling: end of line; the first one ends the question
    norm_eps: float = 1e-5
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"pos_encoding must be one of {POS_ENCODINGS}, got {self.pos_encoding!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {self.coupling!r}")
        if self.pos_encoding.startswith("abacus") and self.coupling == "digits" and not self.digit_token_ids:
            raise ValueError("pos_encoding='abacus' needs digit_token_ids")
        if self.pos_encoding.startswith("abacus") and self.coupling == "lines" and not self.line_end_ids:
            raise ValueError("coupling='lines' needs line_end_ids")
        if self.n_kv_head == 0:
            self.n_kv_head = self.n_head
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if self.intermediate_size == 0:
            self.intermediate_size = 16 * math.ceil(8 * self.n_embd / 3 / 16)
        for name in ID_LISTS:
            setattr(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update({name: list(getattr(self, name)) for name in ID_LISTS})
        return d


def token_kinds(cfg: TransformerConfig) -> torch.Tensor:
    """Per vocabulary id: 0 other; digits coupling: 1 digit, 2 run start; lines: 1 sentence end, 2 line end."""
    kinds = torch.zeros(cfg.vocab_size, dtype=torch.long)
    ones, twos = ((cfg.digit_token_ids, cfg.run_start_token_ids) if cfg.coupling == "digits"
                  else (cfg.sentence_end_ids, cfg.line_end_ids))
    kinds[list(ones)] = 1
    kinds[list(twos)] = 2
    return kinds


def digit_positions(idx: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
    """Abacus index of each token: 1-based within its run, 0 outside runs. (B, T) -> (B, T).

    A run is a start token followed by digits, or digits after any other token.
    """
    kind = kinds[idx]
    t = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
    # where the current run was broken: at a non-run token, or just before a start token
    broken = torch.where(kind == 0, t, torch.where(kind == 2, t - 1, -1)).cummax(dim=1).values
    return torch.where(kind > 0, t - broken, 0)


def next_digit_position(run: torch.Tensor, token: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
    """The abacus index of `token` given the index of the token before it (decoding). (B,) -> (B,)."""
    kind = kinds[token]
    return torch.where(kind == 2, 1, torch.where(kind == 1, run + 1, 0))


def line_positions(idx: torch.Tensor, kinds: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines coupling: (index, place) of each token, each (B, T).

    index: in the question, 1 + the sentences ended before the token; after the question's line
    end, the 1-based line the token is on. place: 0-based within its sentence or line. Tokens
    where `valid` is False (left padding) count for nothing.
    """
    kind = kinds[idx]
    line_end = (kind == 2) & valid
    lines_before = line_end.long().cumsum(1) - line_end.long()
    in_question = lines_before == 0
    sentence_end = (kind == 1) & valid & in_question
    index = torch.where(in_question, 1 + sentence_end.long().cumsum(1) - sentence_end.long(), lines_before)
    t = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
    last_end = torch.where(line_end | sentence_end | ~valid, t, -1).cummax(dim=1).values
    place = t - torch.nn.functional.pad(last_end[:, :-1], (1, 0), value=-1) - 1
    return index, place


@functools.cache
def inverse_frequencies(head_dim: int, theta: float, device: torch.device) -> torch.Tensor:
    """RoPE's inverse frequencies, made once: the sampler asks for them every token. An ordinary tensor
    even when first asked inside inference mode, so that training can use it too."""
    with torch.inference_mode(False):
        return (1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))).to(device)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables for rotate-half RoPE at the given positions. (B, T) -> 2 x (B, 1, T, hs).

    Computed in fp32 and given in `dtype`, the queries' (as HF applies them). The sin table's first half
    is negated, so that `apply_rope` rotates by a roll instead of slicing, negating and concatenating:
    fewer ops a layer, the same values bit for bit."""
    freqs = positions[..., None].float() * inverse_frequencies(head_dim, theta, positions.device)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    sin = emb.sin()
    sin[..., : head_dim // 2].neg_()
    return emb.cos().to(dtype), sin.to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Llama's x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1) = roll(x) with the sign in the table."""
    rolled = x.roll(x.shape[-1] // 2, -1)
    return x * cos + rolled * signed_sin


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


class KVCache:
    """Preallocated keys and values for every layer: (n_layer, B, n_kv_head, T_max, hs) each."""

    def __init__(self, cfg: TransformerConfig, batch: int, max_len: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        hs = cfg.n_embd // cfg.n_head
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, hs)
        self.k = torch.empty(shape, dtype=dtype, device=device)
        self.v = torch.empty(shape, dtype=dtype, device=device)
        self.digit_pos = torch.zeros(batch, max_len, dtype=torch.long, device=device)  # abacus-alibi keys
        self.length = 0

    def take(self, rows: torch.Tensor) -> None:
        """Keep these rows only: finished rows leave the batch, so later steps skip them."""
        self.k, self.v, self.digit_pos = self.k[:, rows], self.v[:, rows], self.digit_pos[rows]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_head: int, n_kv_head: int, layer: int, rope,
           mask, cache: KVCache | None) -> torch.Tensor:
    """Attention over projected queries, keys and values (B, T, heads * hs each), before the output
    projection: RoPE, the cache, then the product. (B, T, n_head * hs)."""
    B, T, _ = q.shape
    q = q.view(B, T, n_head, -1).transpose(1, 2)
    k, v = k.view(B, T, n_kv_head, -1).transpose(1, 2), v.view(B, T, n_kv_head, -1).transpose(1, 2)
    if rope is not None:  # (B, heads, T, hs)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    if cache is not None:
        start, end = cache.length, cache.length + T
        cache.k[layer, :, :, start:end] = k
        cache.v[layer, :, :, start:end] = v
        k, v = cache.k[layer, :, :, :end], cache.v[layer, :, :, :end]
    if T == 1 and cache is not None and mask is not None:
        # one new token per row: plain batched matmuls beat the fused CPU kernel here (~4x); the
        # query heads sharing a kv head are the rows of one matmul
        g = n_head // n_kv_head
        qg = q.view(B, n_kv_head, g, -1)
        scores = (qg @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, n_kv, g, T_total)
        # an additive mask (see Transformer.features), shared by the heads or one per query head
        scores = scores + (mask if mask.shape[1] == 1 else mask.reshape(mask.shape[0], n_kv_head, g, -1))
        y = (scores.softmax(-1) @ v).view(B, n_head, 1, -1)
    else:  # training (mask None: plain causal, no padding on the left) or prefill
        gqa = n_kv_head != n_head
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=gqa)
    return y.transpose(1, 2).reshape(B, T, -1)


class Attention(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.layer = cfg.n_head, cfg.n_kv_head, layer
        kv_dim = cfg.n_embd // cfg.n_head * cfg.n_kv_head
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.k_proj = nn.Linear(cfg.n_embd, kv_dim, bias=False)
        self.v_proj = nn.Linear(cfg.n_embd, kv_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)

    def forward(self, x, rope, mask, cache: KVCache | None):
        y = attend(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.n_head, self.n_kv_head, self.layer, rope,
                   mask, cache)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.n_embd, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.n_embd, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.n_embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, rope, mask, cache):
        x = x + self.self_attn(self.input_layernorm(x), rope, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


def plain_block(x: torch.Tensor, weights: tuple[torch.Tensor, ...], cfg: TransformerConfig, layer: int, rope, mask,
                cache: KVCache | None) -> torch.Tensor:
    """`Block.forward` as plain functions of its weights (`Transformer.plain_blocks`): the same operations
    in the same order, so the same values bit for bit, without the eleven module calls of a block."""
    ln1, wq, wk, wv, wo, ln2, gate, up, down = weights
    h = F.rms_norm(x, (x.shape[-1],), ln1, cfg.norm_eps)
    x = x + F.linear(attend(F.linear(h, wq), F.linear(h, wk), F.linear(h, wv), cfg.n_head, cfg.n_kv_head, layer,
                            rope, mask, cache), wo)
    h = F.rms_norm(x, (x.shape[-1],), ln2, cfg.norm_eps)
    return x + F.linear(F.silu(F.linear(h, gate)) * F.linear(h, up), down)


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.pos_encoding in LEARNED_TABLE:
            self.digit_pos_emb = nn.Embedding(cfg.digit_pos_size, cfg.n_embd)
        self.register_buffer("token_kinds", token_kinds(cfg), persistent=False)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def _alibi_mask(self, digit_pos: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None,
                    dtype: torch.dtype) -> torch.Tensor:
        """Additive attention bias -slope_h * |index_q - index_k| over digit indices, -inf where masked, in
        the queries' dtype (the CPU attention kernel misreads a float32 mask beside float64 queries).

        Far digits get a lower score than any distance seen in training, so longer numbers
        never put attention somewhere new (Press et al. 2022, ALiBi, over digit indices).
        """
        B, T = digit_pos.shape
        keys = digit_pos
        if cache is not None:
            cache.digit_pos[:, cache.length:cache.length + T] = digit_pos
            keys = cache.digit_pos[:, : cache.length + T]
        if mask is None:
            mask = torch.ones(T, keys.shape[1], dtype=torch.bool, device=digit_pos.device).tril(keys.shape[1] - T)
            mask = mask.expand(B, 1, T, keys.shape[1])
        slopes = 2.0 ** (1 - 2.0 * torch.arange(self.cfg.n_head, device=digit_pos.device))  # 2, 1/2, 1/8, ..
        dist = (digit_pos[:, None, :, None] - keys[:, None, None, :]).abs()
        return torch.where(mask, (-slopes[None, :, None, None] * dist).to(dtype), float("-inf"))

    def plain_blocks(self) -> list[tuple[torch.Tensor, ...]] | None:
        """Each block's weights, for `features(blocks=...)` to run the blocks as plain functions: while sampling
        a small model one token at a time, the modules' own call overhead costs about a tenth of a step at 64
        rows and a fifth at one (bench/rl_step.py). None where a module is adapted (LoRA) or hooked (MC dropout,
        or for backward): those need the modules. Gathered once by the caller, since checking costs about as
        much as it saves on one token."""
        kinds = (RMSNorm, nn.Linear, nn.Linear, nn.Linear, nn.Linear, RMSNorm, nn.Linear, nn.Linear, nn.Linear)
        out = []
        for b in self.layers:
            a, m = b.self_attn, b.mlp
            modules = (b.input_layernorm, a.q_proj, a.k_proj, a.v_proj, a.o_proj, b.post_attention_layernorm,
                       m.gate_proj, m.up_proj, m.down_proj)
            if any(type(module) is not kind for module, kind in zip(modules, kinds, strict=True)):
                return None
            if any(getattr(module, h) for module in (b, a, m, *modules) for h in MODULE_HOOKS):
                return None
            out.append(tuple(module.weight for module in modules))
        return out

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, last_only: bool = False, **kwargs) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); keyword arguments as for `features`.

        last_only: logits at the last position only, (B, 1, vocab): what a prefill needs, and with a
        large vocabulary the head over every prompt position costs as much as the rest."""
        x = self.features(idx, **kwargs)
        return self.lm_head(x[:, -1:] if last_only else x)

    def positions(self, idx: torch.Tensor, valid: torch.Tensor | None = None,
                  digit_offset: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(RoPE positions, abacus indices) of whole sequences idx (B, T), None where the encoding has none.

        valid (B, T): False at left padding, which neither counts nor moves a position.
        digit_offset (B,): added to every abacus index (training draws it at random).
        """
        if valid is None:
            valid = torch.ones_like(idx, dtype=torch.bool)
        enc = self.cfg.pos_encoding
        if enc == "rope":
            return (valid.long().cumsum(1) - 1).clamp(min=0), None
        if not enc.startswith("abacus"):
            return None, None
        if self.cfg.coupling == "lines":
            index, place = line_positions(idx, self.token_kinds, valid)
        else:
            index = digit_positions(idx, self.token_kinds)
        if digit_offset is not None:
            index = torch.where(index > 0, index + digit_offset[:, None], 0)
        if self.cfg.coupling == "digits":
            place = index  # RoPE turns a digit by its (shifted) index
        return (place if enc in DIGIT_ROPE else None), index

    def features(
        self,
        idx: torch.Tensor,
        positions: torch.Tensor | None = None,
        digit_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        digit_offset: torch.Tensor | None = None,
        blocks: list[tuple[torch.Tensor, ...]] | None = None,
    ) -> torch.Tensor:
        """Final normed hidden states (B, T, n_embd) for token ids (B, T): what lm_head and reward heads read.

        positions, digit_pos: RoPE positions and abacus indices (B, T), by default `positions(idx)`
        shifted by digit_offset (B,); pass them when idx continues cached tokens. mask: boolean
        attention mask (B, 1, T, T_total), None for plain causal. blocks: `plain_blocks()`, to run the
        blocks without their modules (the same values).
        """
        if positions is None and digit_pos is None:
            positions, digit_pos = self.positions(idx, digit_offset=digit_offset)
        x = self.embed_tokens(idx)
        if self.cfg.pos_encoding in LEARNED_TABLE:
            x = x + self.digit_pos_emb(digit_pos.clamp(max=self.cfg.digit_pos_size - 1))
        rope = None
        if positions is not None:
            rope = rope_cos_sin(positions, self.cfg.n_embd // self.cfg.n_head, self.cfg.rope_theta, x.dtype)
        if self.cfg.pos_encoding in DIGIT_ALIBI:
            mask = self._alibi_mask(digit_pos, mask, cache, x.dtype)
        elif mask is not None:  # additive, once for every layer: each would convert a boolean one itself
            mask = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill_(~mask, float("-inf"))
        for i, block in enumerate(self.layers):
            if blocks is None:
                x = block(x, rope, mask, cache)
            else:
                x = plain_block(x, blocks[i], self.cfg, i, rope, mask, cache)
        if cache is not None:
            cache.length += idx.shape[1]
        return self.norm(x)


class DecodePositions:
    """Positions while decoding, one token at a time: each fed token's positions follow from the
    previous token's, in O(1) a step (recounting the whole sequence every step costs as much as
    the model itself at search batch sizes). Gives what `Transformer.positions` gives on the whole
    sequence; tests/test_sampler.py checks the two agree token for token.
    """

    def __init__(self, model: Transformer, idx: torch.Tensor, valid: torch.Tensor, offset: torch.Tensor) -> None:
        self.enc, self.coupling, self.kinds, self.offset = (model.cfg.pos_encoding, model.cfg.coupling,
                                                            model.token_kinds, offset)
        self.prompt = model.positions(idx, valid, offset)  # the prefill's
        rope, _ = self.prompt
        self.pos = None if rope is None else rope[:, -1]
        if self.coupling == "digits":
            self.index = digit_positions(idx, self.kinds)[:, -1]
        else:
            index, place = line_positions(idx, self.kinds, valid)
            self.index, self.place, self.prev = index[:, -1], place[:, -1], idx[:, -1]
            line_end = (self.kinds[idx[:, :-1]] == 2) & valid[:, :-1]
            self.in_question = ~line_end.any(1)  # the previous token is still in the question

    def take(self, rows: torch.Tensor) -> None:
        """Keep these rows, in this order (repeated: the rows that continue one prompt)."""
        for name in ("offset", "pos", "index", "place", "prev", "in_question"):
            value = getattr(self, name, None)
            if value is not None:
                setattr(self, name, value[rows])

    def push(self, token: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(RoPE positions, abacus indices), each (B, 1) or None, of `token` (B,), the next one fed."""
        if self.enc == "rope":
            self.pos = self.pos + 1
            return self.pos[:, None], None
        if not self.enc.startswith("abacus"):
            return None, None
        if self.coupling == "digits":
            self.index = next_digit_position(self.index, token, self.kinds)
        else:
            kind = self.kinds[self.prev]
            line_end, sentence_end = kind == 2, (kind == 1) & self.in_question
            moved = line_end | sentence_end
            self.index = torch.where(line_end & self.in_question, 1, self.index + moved.long())
            self.place = torch.where(moved, 0, self.place + 1)
            self.in_question = self.in_question & ~line_end
            self.prev = token
        index = torch.where(self.index > 0, self.index + self.offset, 0)
        place = index if self.coupling == "digits" else self.place
        return (place[:, None] if self.enc in DIGIT_ROPE else None), index[:, None]
