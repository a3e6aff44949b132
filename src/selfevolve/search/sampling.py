"""Sampling answers to problems, and choosing among several: majority vote with its agreement share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from selfevolve.models.sampler import generate
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer
from selfevolve.progress import Progress
from selfevolve.tasks.base import Problem, Task

NO_STOP = "<no stop>"  # an answer that did not end within its token budget


def majority_vote(groups: list[list[str]]) -> list[tuple[str, float]]:
    """For each group of answers to one problem: the most common answer and the share that gave it.

    Ties go to the answer seen first, so a greedy answer placed first wins a tie.
    """
    out = []
    for answers in groups:
        if not answers:
            raise ValueError("majority_vote got an empty group of answers")
        counts = Counter(answers)
        best = max(counts, key=lambda a: (counts[a], -answers.index(a)))
        out.append((best, counts[best] / len(answers)))
    return out


def answer_room(problems: list[Problem]) -> int:
    """New tokens enough for the longest gold answer and its stop, with 2 to spare (a character is at
    least one token, so this holds for a subword tokenizer too)."""
    return max(len(p.answer) for p in problems) + 3


def answer(model: Transformer, tok: CharTokenizer, problems: list[Problem], *, digit_offset: int = 0,
           num_samples: int = 1, temperature: float = 0.0, generator: torch.Generator | None = None,
           max_new: int | None = None, advance: Callable[[int], None] | None = None) -> tuple[list[str], torch.Tensor]:
    """Answers (prompt-major when num_samples > 1) and each answer's lowest token probability;
    `advance(n)` is told as each batch of n problems is answered (a progress bar).

    An answer that does not stop within max_new tokens (default: `answer_room`) is "<no stop>".
    """
    max_new = max_new or answer_room(problems)
    out = generate(model, [tok.encode(p.prompt) for p in problems], max_new, stop_id=tok.eos_id,
                   pad_id=tok.pad_id, num_samples=num_samples, temperature=temperature,
                   digit_offset=digit_offset, generator=generator, on_batch=advance)
    stopped = out.tokens.eq(tok.eos_id).any(1)
    texts = [tok.decode(row) if ok else NO_STOP for row, ok in zip(out.tokens, stopped.tolist(), strict=True)]
    return texts, out.logprobs.min(dim=1).values.exp()


def exact_match_by_group(model: Transformer, tok: CharTokenizer, task: Task, groups: dict[str, list[Problem]],
                         progress: Progress | None = None, title: str = "evaluate") -> dict[str, float | None]:
    """Greedy exact match of each group of held-out problems (None for an empty group: length-gen's
    short lengths can run out of unseen problems)."""
    acc: dict[str, float | None] = {}
    with (progress or Progress(enabled=False)).task(title, sum(map(len, groups.values()))) as advance:
        for name, problems in groups.items():
            texts = answer(model, tok, problems, advance=advance)[0] if problems else []
            acc[name] = sum(map(task.verify, problems, texts)) / len(problems) if problems else None
    return acc


def ask(policy, problems: list[Problem], prompts: list[str], max_new: int) -> list[str]:
    """Greedy answers to other prompts about the same problems (a second attempt, a critique, a short
    context), one per problem."""
    if not prompts:
        return []
    asked = [Problem(q, p.answer, p.difficulty, p.fields) for p, q in zip(problems, prompts, strict=True)]
    return answer(policy.model, policy.tok, asked, max_new=max_new)[0]
