"""Character tokenizer: one token per printable ASCII character, plus pad and end-of-sequence.

Characters keep digit-level tasks honest (no BPE merges hiding carries) and make the
vocabulary fixed, so a checkpoint needs nothing but its weights to be read back.
"""

from __future__ import annotations

import string

import torch

PAD = "<pad>"
EOS = "<eos>"
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"


class CharTokenizer:
    """Maps text to ids and back; id 0 is padding, id 1 ends a sequence."""

    def __init__(self, alphabet: str = ALPHABET) -> None:
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("tokenizer alphabet has repeated characters")
        self.alphabet = alphabet
        self.tokens = [PAD, EOS, *alphabet]
        self._ids = {c: i for i, c in enumerate(self.tokens)}
        self.pad_id = 0
        self.eos_id = 1

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def digit_ids(self) -> list[int]:
        return [self._ids[d] for d in string.digits]

    def encode(self, text: str) -> list[int]:
        try:
            return [self._ids[c] for c in text]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the tokenizer alphabet") from None

    def decode(self, ids: list[int] | torch.Tensor, stop_at_eos: bool = True) -> str:
        out = []
        for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            if i == self.eos_id and stop_at_eos:
                break
            if i > self.eos_id:
                out.append(self.tokens[i])
        return "".join(out)
