"""Hugging Face modeling file for selfevolve transformers whose positions are not Llama's.

Exported next to config.json and loaded with `trust_remote_code=True`. The blocks are
Llama's; only the position signal differs:
  nope         no RoPE (rotary positions all 0, which is the identity rotation)
  abacus       a learned embedding of each digit's index within its number, added to the input
  abacus-rope  RoPE whose position is the digit index instead of the token index
  abacus-both  both of the above
  abacus-alibi the learned digit-index embedding, plus an attention bias -slope_h * |index_q - index_k|
  abacus-all   the learned embedding, RoPE over digit indices and the bias together
A digit's index depends on the tokens before it, so generation passes the full sequence's
indices down (`prepare_inputs_for_generation`) and the model keeps only the new ones.
"""

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

LEARNED_TABLE = ("abacus", "abacus-both", "abacus-alibi", "abacus-all")
DIGIT_ROPE = ("abacus-rope", "abacus-both", "abacus-all")
DIGIT_ALIBI = ("abacus-alibi", "abacus-all")


class SelfEvolveConfig(LlamaConfig):
    model_type = "selfevolve"

    def __init__(self, pos_encoding="abacus-rope", digit_pos_size=128, digit_token_ids=(),
                 run_start_token_ids=(), **kwargs):
        self.pos_encoding = pos_encoding
        self.digit_pos_size = digit_pos_size
        self.digit_token_ids = list(digit_token_ids)
        self.run_start_token_ids = list(run_start_token_ids)
        super().__init__(**kwargs)


def digit_positions(input_ids, kinds):
    """1-based index within a run (a start token then digits, or digits), 0 elsewhere.

    The same rule as selfevolve.models.transformer.digit_positions, repeated because this
    file must load without selfevolve installed.
    """
    kind = kinds[input_ids]
    t = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    broken = torch.where(kind == 0, t, torch.where(kind == 2, t - 1, -1)).cummax(dim=1).values
    return torch.where(kind > 0, t - broken, 0)


class SelfEvolveForCausalLM(LlamaForCausalLM):
    config_class = SelfEvolveConfig

    def __init__(self, config):
        super().__init__(config)
        if config.pos_encoding in LEARNED_TABLE:
            self.model.digit_pos_emb = nn.Embedding(config.digit_pos_size, config.hidden_size)
        self.post_init()

    def token_kinds(self, device):
        """Per vocabulary id: 0 other, 1 digit, 2 run start. Built on demand: loading may skip
        non-persistent buffers."""
        kinds = torch.zeros(self.config.vocab_size, dtype=torch.long, device=device)
        kinds[self.config.digit_token_ids] = 1
        kinds[self.config.run_start_token_ids] = 2
        return kinds

    def prepare_inputs_for_generation(self, input_ids, **kwargs):
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        if inputs.get("attention_mask") is None:  # cover the cached tokens too, not just the new ones
            inputs["attention_mask"] = torch.ones_like(input_ids)
        inputs["digit_pos_all"] = digit_positions(input_ids, self.token_kinds(input_ids.device))
        return inputs

    def alibi_mask(self, digit_pos_all, attention_mask, new, dtype):
        """(B, heads, new, T) additive mask: causal, padding, and the digit-index distance bias, in the
        model's dtype (attention wants the queries' dtype; the CPU kernel misreads a float32 mask beside
        float64 queries)."""
        T = digit_pos_all.shape[1]
        causal = torch.ones(new, T, dtype=torch.bool, device=digit_pos_all.device).tril(T - new)
        allowed = causal[None, None] & attention_mask[:, None, None, :].bool()
        slopes = 2.0 ** (1 - 2.0 * torch.arange(self.config.num_attention_heads, device=digit_pos_all.device))
        dist = (digit_pos_all[:, None, -new:, None] - digit_pos_all[:, None, None, :]).abs()
        return torch.where(allowed, (-slopes[None, :, None, None] * dist).to(dtype), float("-inf"))

    def forward(self, input_ids=None, attention_mask=None, digit_pos_all=None, position_ids=None, **kwargs):
        if digit_pos_all is None:  # a full sequence, no cache
            digit_pos_all = digit_positions(input_ids, self.token_kinds(input_ids.device))
        digit_pos = digit_pos_all[:, -input_ids.shape[1]:]
        embeds = self.model.embed_tokens(input_ids)
        if self.config.pos_encoding in LEARNED_TABLE:
            embeds = embeds + self.model.digit_pos_emb(digit_pos.clamp(max=self.config.digit_pos_size - 1))
        position_ids = digit_pos if self.config.pos_encoding in DIGIT_ROPE else torch.zeros_like(digit_pos)
        kwargs.pop("inputs_embeds", None)
        if attention_mask is None:  # keeps the mask builder from reading position_ids as packed sequences
            attention_mask = torch.ones_like(digit_pos_all)
        if self.config.pos_encoding in DIGIT_ALIBI:  # a ready 4D mask is used as it is
            attention_mask = self.alibi_mask(digit_pos_all, attention_mask, input_ids.shape[1], embeds.dtype)
        return super().forward(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                               **kwargs)
