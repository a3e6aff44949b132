"""FinMem's layered memory: short, mid, long and reflection layers with decay, clean-up,
promotion and demotion, and feedback from outcomes.

Yu et al. (2023), "FinMem: A Performance-Enhanced LLM Trading Agent with Layered Memory and
Character Design", arXiv:2311.13743. Defaults follow the paper's code: an item's retrieval score
is cosine similarity + recency + min(importance, 100) / 100; every step (a day) recency becomes
exp(-age / Q) and importance is multiplied by the layer's decay; items whose recency falls below
0.05 or importance below 5 are removed; an item moves up a layer when its importance reaches the
layer's upper threshold (its age restarts) and down when it falls below the lower one; feedback
adds 5 to the importance of the items a decision cited when it paid off and takes 5 when it did not.

All items live in one set of arrays (one row per item, a layer column), so a step or a query is
a few array operations whatever the number of items.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.errors import CheckpointError

LAYERS = ("short", "mid", "long", "reflection")
FORMAT = "selfevolve-layered-memory/1"
INITIAL_IMPORTANCE = (40.0, 60.0, 80.0)  # drawn with the layer's init_probs


@dataclass(frozen=True)
class Layer:
    recency_days: float  # Q of recency = exp(-age / Q)
    importance_decay: float  # importance *= this every day
    promote_at: float = float("inf")  # importance at which an item moves up a layer
    demote_below: float = float("-inf")  # importance under which it moves down a layer
    init_probs: tuple[float, float, float] = (0.05, 0.15, 0.8)  # P(40), P(60), P(80) for new items


FINMEM_LAYERS = {
    "short": Layer(3.0, 0.92, promote_at=60, init_probs=(0.5, 0.45, 0.05)),
    "mid": Layer(90.0, 0.967, promote_at=80, demote_below=60, init_probs=(0.05, 0.8, 0.15)),
    "long": Layer(365.0, 0.988, demote_below=80),
    "reflection": Layer(365.0, 0.988),
}
RECENCY_FLOOR, IMPORTANCE_FLOOR, FEEDBACK_STEP = 0.05, 5.0, 5.0


def hashing_embedder(texts: list[str], dim: int = 256) -> np.ndarray:
    """Words and word pairs hashed into `dim` signed buckets, L2-normalised: no model, no download."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        words = re.findall(r"[a-z0-9]+", text.lower())
        for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
            out[row, h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


@dataclass
class Hit:
    id: int
    text: str
    layer: str
    score: float
    similarity: float
    recency: float
    importance: float


class LayeredMemory:
    """add / query / step / feedback / save / load over FinMem's four layers."""

    COLUMNS = ("ids", "layer", "age", "importance", "access")

    def __init__(self, embedder: Callable[[list[str]], np.ndarray] = hashing_embedder,
                 layers: dict[str, Layer] | None = None, seed: int = 0) -> None:
        self.embedder, self.layers = embedder, layers or FINMEM_LAYERS
        self.rng = np.random.default_rng(seed)
        self.texts: list[str] = []
        self.embeddings = np.zeros((0, 0), dtype=np.float32)
        self.ids = np.zeros(0, dtype=np.int64)
        self.layer = np.zeros(0, dtype=np.int64)  # index into LAYERS
        self.age = np.zeros(0, dtype=np.float64)  # days since added or last promoted
        self.importance = np.zeros(0, dtype=np.float64)
        self.access = np.zeros(0, dtype=np.int64)
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.ids)

    def sizes(self) -> dict[str, int]:
        counts = np.bincount(self.layer, minlength=len(LAYERS))
        return {name: int(c) for name, c in zip(LAYERS, counts, strict=True)}

    def recency(self) -> np.ndarray:
        q = np.array([self.layers[name].recency_days for name in LAYERS])[self.layer]
        return np.exp(-self.age / q)

    def add(self, texts: list[str], layer: str = "short", importance: list[float] | None = None,
            keys: list[str] | None = None) -> list[int]:
        """Store texts in a layer; importance defaults to FinMem's draw of 40 / 60 / 80. `keys`, when
        given, are embedded in place of the texts (a reflection is found by the news it is about)."""
        if layer not in LAYERS:
            raise ValueError(f"unknown memory layer {layer!r}; layers: {', '.join(LAYERS)}")
        if not texts:
            return []
        n = len(texts)
        if importance is None:
            importance = self.rng.choice(INITIAL_IMPORTANCE, n, p=self.layers[layer].init_probs)
        if keys is not None and len(keys) != n:
            raise ValueError(f"got {len(keys)} keys for {n} texts")
        vectors = np.asarray(self.embedder(list(keys if keys is not None else texts)), dtype=np.float32)
        self.embeddings = vectors if not len(self) else np.concatenate([self.embeddings, vectors])
        new_ids = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        self.texts += list(texts)
        self.ids = np.concatenate([self.ids, new_ids])
        self.layer = np.concatenate([self.layer, np.full(n, LAYERS.index(layer))])
        self.age = np.concatenate([self.age, np.zeros(n)])
        self.importance = np.concatenate([self.importance, np.asarray(importance, dtype=np.float64)])
        self.access = np.concatenate([self.access, np.zeros(n, dtype=np.int64)])
        return new_ids.tolist()

    def query(self, text: str, k: int = 5, layers: tuple[str, ...] = LAYERS,
              min_similarity: float = -1.0) -> dict[str, list[Hit]]:
        """The k best-scoring items of each layer for a query text, best first, among the items at
        least `min_similarity` similar to it."""
        out: dict[str, list[Hit]] = {name: [] for name in layers}
        if not len(self):
            return out
        sim = self.embeddings @ np.asarray(self.embedder([text]), dtype=np.float32)[0]
        recency = self.recency()
        score = sim + recency + np.minimum(self.importance, 100) / 100
        for name in layers:
            rows = np.flatnonzero((self.layer == LAYERS.index(name)) & (sim >= min_similarity))
            best = rows[np.argsort(-score[rows], kind="stable")[:k]]
            out[name] = [Hit(int(self.ids[i]), self.texts[i], name, float(score[i]), float(sim[i]),
                             float(recency[i]), float(self.importance[i])) for i in best]
        return out

    def step(self, days: float = 1.0) -> dict[str, int]:
        """Advance time: decay, clean up, then move items between layers. Returns what happened."""
        decay = np.array([self.layers[name].importance_decay for name in LAYERS])[self.layer]
        self.age = self.age + days
        self.importance = self.importance * decay**days
        keep = (self.recency() >= RECENCY_FLOOR) & (self.importance >= IMPORTANCE_FLOOR)
        removed = int((~keep).sum())
        self._keep(keep)
        up = np.array([self.layers[name].promote_at for name in LAYERS])[self.layer]
        down = np.array([self.layers[name].demote_below for name in LAYERS])[self.layer]
        promote = (self.importance >= up) & (self.layer < LAYERS.index("long"))
        demote = (self.importance < down) & (self.layer > 0) & (self.layer <= LAYERS.index("long"))
        self.layer = self.layer + promote - demote
        self.age = np.where(promote, 0.0, self.age)  # a promoted memory starts afresh in its new layer
        return {"removed": removed, "promoted": int(promote.sum()), "demoted": int(demote.sum())}

    def feedback(self, ids: list[int], reward: float) -> None:
        """The items a decision cited gain importance when it paid off (reward > 0), lose it if not."""
        direction = int(np.sign(reward))
        rows = np.flatnonzero(np.isin(self.ids, ids))
        self.access[rows] += direction
        self.importance[rows] += FEEDBACK_STEP * direction

    def forget(self, ids: list[int]) -> int:
        """Remove the items with these ids; returns how many there were."""
        gone = np.isin(self.ids, ids)
        self._keep(~gone)
        return int(gone.sum())

    def _keep(self, mask: np.ndarray) -> None:
        self.texts = [t for t, m in zip(self.texts, mask, strict=True) if m]
        self.embeddings = self.embeddings[mask]
        for name in self.COLUMNS:
            setattr(self, name, getattr(self, name)[mask])

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """One .npz file, written atomically: the arrays, the texts and a format marker."""
        from selfevolve.store import atomic_write

        meta = {"format": FORMAT, "texts": self.texts, "next_id": self.next_id,
                "rng": self.rng.bit_generator.state}
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), embeddings=self.embeddings,
                 **{name: getattr(self, name) for name in self.COLUMNS})
        atomic_write(Path(path), buffer.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: Path, embedder: Callable[[list[str]], np.ndarray] = hashing_embedder,
             layers: dict[str, Layer] | None = None) -> LayeredMemory:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
                if meta.get("format") != FORMAT:
                    raise CheckpointError(f"memory store {path} has format {meta.get('format')!r}; this version "
                                          f"reads {FORMAT!r}")
                arrays = {name: data[name] for name in (*cls.COLUMNS, "embeddings")}
        except FileNotFoundError:
            raise CheckpointError(f"memory store {path} does not exist") from None
        except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError) as err:
            raise CheckpointError(f"memory store {path} is truncated or not a memory store ({err})") from None
        memory = cls(embedder, layers)
        memory.texts, memory.next_id = meta["texts"], meta["next_id"]
        memory.rng.bit_generator.state = meta["rng"]
        memory.embeddings = arrays.pop("embeddings")
        for name, value in arrays.items():
            setattr(memory, name, value)
        return memory
