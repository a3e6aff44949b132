"""Fact lookup in generated documents: the long-context task of LongPO.

    long prompt    rem=482;tiv=105;sol=771;bak=260/kul=903;mib=377;dor=615;vat=144/...|dor?>
    short prompt   kul=903;mib=377;dor=615;vat=144|dor?>
    answer         615

A document is `difficulty` chunks of four facts (a three-letter key, a three-digit value), chunks
separated by "/"; every key appears once in the document, so each answer sits in exactly one
chunk. The short prompt is that chunk alone: the same question with only the context it needs.
"""

from __future__ import annotations

import numpy as np

from selfevolve.tasks.base import Problem

CONSONANTS, VOWELS = "bdgklmnprstv", "aeiou"
FACTS_PER_CHUNK = 4
CHUNK_CHARS = FACTS_PER_CHUNK * 8 - 1  # "key=123;" x 4, the last without its ";"


def short_prompt(prompt: str) -> str:
    """The chunk that holds the asked key, with the question: a function of the long prompt alone."""
    document, _, question = prompt.partition("|")
    key = question.removesuffix("?>")
    chunk = next(c for c in document.split("/") if any(f.startswith(f"{key}=") for f in c.split(";")))
    return f"{chunk}|{question}"


class LongLookupTask:
    name = "lookup"
    max_answer_tokens = 6

    def __init__(self, max_chunks: int = 14) -> None:
        self.max_chunks = max_chunks
        self.max_seq_len = max_chunks * (CHUNK_CHARS + 1) + 16  # document, question, answer, stop

    def sample(self, n: int, difficulty: int, rng: np.random.Generator, mixed: bool = False) -> list[Problem]:
        """n documents of `difficulty` chunks (mixed: 1 to difficulty), each with one question."""
        if not 1 <= difficulty <= self.max_chunks:
            raise ValueError(f"lookup difficulty (chunks per document) must be 1 to {self.max_chunks}, "
                             f"got {difficulty}")
        out = []
        for _ in range(n):
            chunks = int(rng.integers(1, difficulty + 1)) if mixed else difficulty
            keys: list[str] = []
            while len(keys) < chunks * FACTS_PER_CHUNK:
                key = CONSONANTS[rng.integers(12)] + VOWELS[rng.integers(5)] + CONSONANTS[rng.integers(12)]
                if key not in keys:
                    keys.append(key)
            values = rng.integers(100, 1000, size=len(keys))
            facts = [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
            document = "/".join(";".join(facts[i:i + FACTS_PER_CHUNK]) for i in range(0, len(facts), FACTS_PER_CHUNK))
            asked = int(rng.integers(len(keys)))
            out.append(Problem(f"{document}|{keys[asked]}?>", str(values[asked]), chunks,
                               {"chunk": asked // FACTS_PER_CHUNK, "key": keys[asked]}))
        return out

    def verify(self, problem: Problem, answer: str) -> bool:
        return answer == problem.answer

    def well_formed(self, problem: Problem, answer: str) -> bool:
        return len(answer) == 3 and answer.isdigit()

    def variants(self, problem: Problem) -> list[Problem]:
        return []

    def from_record(self, record: dict) -> Problem:
        raise ValueError("lookup problems are generated; files of them are not read")
