"""Synthetic users who tell an assistant about themselves over many sessions and later ask it things
that depend on what they said: the setting of long-term memory (OMNE; Jiang et al. 2024, "Long Term
Memory: The Foundation of AI Self-Evolution", arXiv:2410.15665).

    user 7, session 3   tells   kul=903;mib=377     (facts: a three-letter slot, a three-digit value)
                        asks    dor?>               (the current value of a slot told in an EARLIER session)
                        answer  615

Each session the user tells `facts` facts: a slot not told before, or with probability `update` a
new value for one told before (the old value is then wrong). From the second session on, the user
asks about one slot told before this session, drawn uniformly, so no session answers its own
question; the question's `age` is how many sessions ago the slot's current value was told.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfevolve.agents.memory import LayeredMemory
from selfevolve.tasks.long_lookup import CONSONANTS, VOWELS

SLOTS = tuple(c + v + d for c in CONSONANTS for v in VOWELS for d in CONSONANTS)  # 720


@dataclass(frozen=True)
class Session:
    user: int
    index: int
    told: tuple[tuple[str, str], ...]  # (slot, value), in the order said
    asked: str  # "" in a user's first session
    answer: str
    age: int  # sessions since the asked slot's current value was told (0: nothing asked)

    def said(self) -> str:
        return ";".join(f"{slot}={value}" for slot, value in self.told)


def user_sessions(user: int, sessions: int, facts: int, update: float, rng: np.random.Generator) -> list[Session]:
    """One user's sessions; each user has slots and values of its own."""
    if sessions * facts > len(SLOTS):
        raise ValueError(f"{sessions} sessions of {facts} facts need more than the {len(SLOTS)} slots")
    order = rng.permutation(len(SLOTS))
    fresh = iter(SLOTS[i] for i in order)
    current: dict[str, tuple[str, int]] = {}  # slot -> (value, session told)
    out = []
    for s in range(sessions):
        asked, answer, age = "", "", 0
        if current:
            asked = sorted(current)[int(rng.integers(len(current)))]
            answer, age = current[asked][0], s - current[asked][1]
        told: list[tuple[str, str]] = []
        for _ in range(facts):
            known = [slot for slot in sorted(current) if slot not in dict(told)]
            slot = known[int(rng.integers(len(known)))] if known and rng.random() < update else next(fresh)
            told.append((slot, str(int(rng.integers(100, 1000)))))
        for slot, value in told:
            current[slot] = (value, s)
        out.append(Session(user, s, tuple(told), asked, answer, age))
    return out


def population(first_user: int, users: int, sessions: int, facts: int, update: float,
               rng: np.random.Generator) -> list[list[Session]]:
    return [user_sessions(u, sessions, facts, update, rng) for u in range(first_user, first_user + users)]


class UserMemory:
    """What each user told, in a namespace of its own (one FinMem store per user, its long layer, never
    decayed): add, search, update (the old value is forgotten first), forget. A search never sees
    another user's facts."""

    IMPORTANCE = 80.0  # one importance for every fact: search ranks by similarity alone

    def __init__(self) -> None:
        self.spaces: dict[int, LayeredMemory] = {}

    def add(self, user: int, slot: str, value: str) -> None:
        space = self.spaces.setdefault(user, LayeredMemory())
        space.add([f"{slot}={value}"], layer="long", importance=[self.IMPORTANCE])

    def update(self, user: int, slot: str, value: str) -> None:
        self.forget(user, slot)
        self.add(user, slot, value)

    def forget(self, user: int, slot: str) -> int:
        """Remove what the user told about `slot`; returns how many facts went."""
        space = self.spaces.get(user)
        if space is None:
            return 0
        return space.forget([i for i, text in zip(space.ids, space.texts, strict=True)
                             if text.startswith(f"{slot}=")])

    def search(self, user: int, text: str, k: int) -> list[str]:
        """The user's k facts most similar to `text`, best first."""
        space = self.spaces.get(user)
        if space is None:
            return []
        return [hit.text for hit in space.query(text, k, layers=("long",))["long"]]

    def tell(self, session: Session) -> None:
        """Store what a session told: a slot already stored is updated, a new one added."""
        for slot, value in session.told:
            self.update(session.user, slot, value)
