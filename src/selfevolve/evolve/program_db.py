"""The population of a program-evolution run: islands, each a MAP-Elites archive over features.

A program's features (user-chosen metrics such as its length or run time) are binned into a cell;
each island keeps the best-scoring program of every cell it has seen (the elite). A parent is drawn
from its island's elites, and inspirations from the island's other cells; every
`migration_interval` generations each island receives a copy of the previous island's best (a ring),
so islands explore apart and share what works (Mouret & Clune 2015; AlphaEvolve and FunSearch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Program:
    code: str
    metrics: dict[str, float]
    id: int = -1
    parent: int | None = None
    island: int = 0
    generation: int = 0
    error: str = ""  # why it failed, for the next prompt (an invalid program scores -inf)


@dataclass
class ProgramDB:
    islands: int = 4
    features: tuple[str, ...] = ()
    """Metrics that place a program in a cell, each binned over its range."""
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    bins: int = 8
    score: str = "score"
    migration_interval: int = 10
    programs: list[Program] = field(default_factory=list)
    elites: list[dict[str, int]] = field(default_factory=list)  # per island: cell key -> program id

    def __post_init__(self) -> None:
        if self.islands < 1 or self.bins < 1 or self.migration_interval < 1:
            raise ValueError("islands, bins and migration_interval must be >= 1")
        missing = [f for f in self.features if f not in self.ranges]
        if missing:
            raise ValueError(f"features without a range: {', '.join(missing)}")
        self.elites = self.elites or [{} for _ in range(self.islands)]

    def cell(self, metrics: dict[str, float]) -> str:
        """The program's cell: each feature's bin, clipped into its range."""
        out = []
        for f in self.features:
            lo, hi = self.ranges[f]
            frac = (float(metrics.get(f, lo)) - lo) / (hi - lo) if hi > lo else 0.0
            out.append(str(int(np.clip(np.floor(frac * self.bins), 0, self.bins - 1))))
        return ",".join(out) or "all"

    def fitness(self, program: Program) -> float:
        return float(program.metrics.get(self.score, float("-inf"))) if not program.error else float("-inf")

    def add(self, program: Program) -> bool:
        """Store the program; it becomes its cell's elite on its island if it scores higher. Returns that."""
        program.id = len(self.programs)
        self.programs.append(program)
        archive, key = self.elites[program.island], self.cell(program.metrics)
        incumbent = archive.get(key)
        if program.error or (incumbent is not None and self.fitness(self.programs[incumbent]) >= self.fitness(program)):
            return False
        archive[key] = program.id
        return True

    def sample(self, island: int, rng: np.random.Generator, inspirations: int = 2) -> tuple[Program, list[Program]]:
        """A parent (an elite of the island, better ones likelier: a tournament of two) and up to
        `inspirations` elites of the island's other cells."""
        ids = list(self.elites[island].values())
        if not ids:
            raise ValueError(f"island {island} has no valid program yet")
        a, b = (self.programs[ids[int(i)]] for i in rng.integers(len(ids), size=2))
        parent = a if self.fitness(a) >= self.fitness(b) else b
        others = [i for i in ids if i != parent.id]
        chosen = [self.programs[others[int(i)]] for i in rng.permutation(len(others))[:inspirations]]
        return parent, chosen

    def best(self, island: int | None = None) -> Program:
        ids = [i for k in ([island] if island is not None else range(self.islands)) for i in self.elites[k].values()]
        if not ids:
            raise ValueError("no valid program yet")
        return max((self.programs[i] for i in ids), key=self.fitness)

    def migrate(self, generation: int) -> list[int]:
        """Every migration_interval generations, a copy of each island's best goes to the next island.
        Returns the ids of the copies that became elites."""
        if self.islands < 2 or generation % self.migration_interval:
            return []
        bests = [self.best(k) if self.elites[k] else None for k in range(self.islands)]
        moved = []
        for k, best in enumerate(bests):
            if best is None:
                continue
            copy = Program(best.code, dict(best.metrics), parent=best.id, island=(k + 1) % self.islands,
                           generation=generation)
            if self.add(copy):
                moved.append(copy.id)
        return moved

    def state(self) -> dict:
        """Everything to resume from, as JSON-ready data."""
        return {"programs": [asdict(p) for p in self.programs], "elites": self.elites}

    @classmethod
    def restore(cls, state: dict, **config) -> ProgramDB:
        db = cls(**config, programs=[Program(**p) for p in state["programs"]],
                 elites=[dict(e) for e in state["elites"]])
        if len(db.elites) != db.islands:
            raise ValueError(f"the saved database has {len(db.elites)} islands, the config {db.islands}")
        return db
