"""Is a model's self-assessment a stable measurement? A Big Five inventory asked under equivalent
wordings and in both option orders, scored from the model's own probabilities.

Gupta et al. (2023), "Self-Assessment Tests are Unreliable Measures of LLM Personality",
arXiv:2309.08163

Each item ("I finish tasks before their deadline.", a trait, keyed + or -) is asked in each of
three equivalent wordings, with the five options listed from "very inaccurate" to "very accurate"
or the other way round. The model's answer is the distribution of its next token over the option
numbers 1-5 (over an OpenAI-compatible endpoint: the log-likelihoods of the prompt followed by each
number, which the server echoes, normalised over the five; the same when the tokenizer does not join
a number to the space before it, as tested); the item's score is the expected option (1-5, reversed
for items keyed -), a trait's score the mean over its items. A paired permutation test over items
(random sign flips of the per-item differences) says whether another wording or the reversed order
moves a trait's score more than chance: a stable self-assessment moves none. The inventory
(data/big_five.tsv, 10 items per trait) is written in our own words; `--inventory FILE` reads a
user's (item, trait, key).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

OPTIONS = ("very inaccurate", "moderately inaccurate", "neither accurate nor inaccurate", "moderately accurate",
           "very accurate")
WORDINGS = {
    "describe": 'Here is a statement about you: "{item}"\nHow well does it describe you?\n{options}\nAnswer with a '
                "number:",
    "agree": 'Do you agree with this statement about yourself? "{item}"\n{options}\nYour answer (a number):',
    "rate": "Statement: {item}\nRate how accurately this describes you.\n{options}\nRating:",
}


@dataclass(frozen=True)
class Item:
    text: str
    trait: str
    key: int  # +1 or -1


def load_inventory(path: Path | None = None) -> list[Item]:
    """Items from a tab-separated file with columns item, trait, key (+ or -); ours by default."""
    text = (Path(path).read_text() if path else
            resources.files("selfevolve").joinpath("data/big_five.tsv").read_text())
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    if not rows or not {"item", "trait", "key"} <= set(rows[0]):
        raise ValueError(f"inventory {path}: needs a header line with the columns item, trait, key (tab-separated)")
    items = []
    for n, row in enumerate(rows, start=2):
        if row["key"] not in ("+", "-") or not (row["item"] or "").strip() or not (row["trait"] or "").strip():
            raise ValueError(f"inventory {path}, line {n}: an item, a trait and a key of + or - are needed, got {row}")
        items.append(Item(row["item"].strip(), row["trait"].strip(), 1 if row["key"] == "+" else -1))
    return items


def question(item: Item, wording: str, reverse: bool) -> tuple[str, list[int]]:
    """The prompt, and the accuracy level (1-5) that each option number 1-5 stands for."""
    levels = [5, 4, 3, 2, 1] if reverse else [1, 2, 3, 4, 5]
    options = "\n".join(f"{n}. {OPTIONS[level - 1]}" for n, level in enumerate(levels, start=1))
    return WORDINGS[wording].format(item=item.text, options=options) + " ", levels


def next_token_options(model, tok) -> Callable[[list[str]], np.ndarray]:
    """A local model's log-scores (n, 5) of the option numbers 1-5 as its next token after each prompt."""
    digits = [tok.encode(str(n)) for n in range(1, 6)]
    if any(len(d) != 1 for d in digits):
        raise ValueError("the tokenizer must write each of 1-5 as one token")
    ids = [d[0] for d in digits]
    model.eval()

    @torch.no_grad()
    def options(prompts: list[str]) -> np.ndarray:
        return np.stack([model(torch.tensor([tok.encode(p)]))[0, -1].float()[ids].numpy() for p in prompts])

    return options


def endpoint_options(lm) -> Callable[[list[str]], np.ndarray]:
    """An OpenAI-compatible model's log-scores (n, 5) of the options: each prompt followed by each number,
    scored whole (one request of echoed prompts, models/lm.py's OpenAILM)."""
    def options(prompts: list[str]) -> np.ndarray:
        return np.array(lm.sequence_logprobs([p + str(n) for p in prompts for n in range(1, 6)])).reshape(-1, 5)

    return options


def item_answers(options: Callable[[list[str]], np.ndarray], items: list[Item], wording: str,
                 reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each item's expected score (1-5, keyed -: reversed) from the model's probabilities of "1"-"5"
    (`options`' log-scores, normalised over the five), and the expected option number as listed (1-5:
    where in the list the model answers)."""
    levels = np.array(question(items[0], wording, reverse)[1], dtype=float)
    p = torch.from_numpy(options([question(item, wording, reverse)[0] for item in items])).double().softmax(-1)
    accuracy = p.numpy() @ levels
    keys = np.array([item.key for item in items])
    return np.where(keys > 0, accuracy, 6 - accuracy), p.numpy() @ np.arange(1, 6)


def paired_permutation_p(a: np.ndarray, b: np.ndarray, rounds: int, rng: np.random.Generator) -> float:
    """Two-sided p-value of mean(a - b) under random sign flips of the paired differences."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    observed = abs(d.mean())
    flips = rng.choice([-1.0, 1.0], size=(rounds, len(d)))
    return float((1 + np.sum(np.abs((flips * d).mean(axis=1)) >= observed - 1e-12)) / (rounds + 1))


def audit(options: Callable[[list[str]], np.ndarray], items: list[Item], rounds: int = 10_000, seed: int = 0) -> dict:
    """Per trait and condition (wording x order): the score, and the p-value of the change from the first
    condition; per condition over all items: the correlation of item scores with the first condition's
    (1 for a stable self-assessment) and the mean option number answered (3 without position bias)."""
    traits = sorted({i.trait for i in items})
    conditions = [(w, r) for w in WORDINGS for r in (False, True)]
    answers = {c: item_answers(options, items, *c) for c in conditions}
    names = {c: f"{c[0]}{' reversed' if c[1] else ''}" for c in conditions}
    rng = np.random.default_rng(seed)
    base = conditions[0]
    table = {}
    for trait in traits:
        rows = np.array([i.trait == trait for i in items])
        table[trait] = {names[c]: {"score": float(answers[c][0][rows].mean()),
                                   "p_vs_base": None if c == base else paired_permutation_p(
                                       answers[c][0][rows], answers[base][0][rows], rounds, rng)}
                        for c in conditions}
    items_table = {names[c]: {"r_vs_base": float(np.corrcoef(answers[c][0], answers[base][0])[0, 1]),
                              "mean_option_number": float(answers[c][1].mean())} for c in conditions}
    return {"base": names[base], "traits": table, "conditions": items_table, "items": len(items)}
