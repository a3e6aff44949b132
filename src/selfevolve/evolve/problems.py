"""Symbolic-regression data: the Nguyen and Koza benchmarks, and a user's CSV file.

Benchmarks follow Uy et al. (2011) "Semantically-based crossover in genetic programming"
(Nguyen-1..12) and Koza (1992) (Koza-1..3): training points drawn uniformly from the usual
range, and a held-out test set of other points from the same range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfevolve.errors import ConfigError


@dataclass(frozen=True)
class Benchmark:
    formula: str
    n_vars: int
    low: float
    high: float
    n_train: int
    fn: object  # (n_points, n_vars) -> (n_points,)


def _x(X, i=0):
    return X[:, i]


BENCHMARKS: dict[str, Benchmark] = {
    "nguyen-1": Benchmark("x^3 + x^2 + x", 1, -1, 1, 20, lambda X: _x(X) ** 3 + _x(X) ** 2 + _x(X)),
    "nguyen-2": Benchmark("x^4 + x^3 + x^2 + x", 1, -1, 1, 20, lambda X: sum(_x(X) ** k for k in range(1, 5))),
    "nguyen-3": Benchmark("x^5 + ... + x", 1, -1, 1, 20, lambda X: sum(_x(X) ** k for k in range(1, 6))),
    "nguyen-4": Benchmark("x^6 + ... + x", 1, -1, 1, 20, lambda X: sum(_x(X) ** k for k in range(1, 7))),
    "nguyen-5": Benchmark("sin(x^2) cos(x) - 1", 1, -1, 1, 20, lambda X: np.sin(_x(X) ** 2) * np.cos(_x(X)) - 1),
    "nguyen-6": Benchmark("sin(x) + sin(x + x^2)", 1, -1, 1, 20,
                          lambda X: np.sin(_x(X)) + np.sin(_x(X) + _x(X) ** 2)),
    "nguyen-7": Benchmark("log(x + 1) + log(x^2 + 1)", 1, 0, 2, 20,
                          lambda X: np.log(_x(X) + 1) + np.log(_x(X) ** 2 + 1)),
    "nguyen-8": Benchmark("sqrt(x)", 1, 0, 4, 20, lambda X: np.sqrt(_x(X))),
    "nguyen-9": Benchmark("sin(x) + sin(y^2)", 2, -1, 1, 100, lambda X: np.sin(_x(X)) + np.sin(_x(X, 1) ** 2)),
    "nguyen-10": Benchmark("2 sin(x) cos(y)", 2, -1, 1, 100, lambda X: 2 * np.sin(_x(X)) * np.cos(_x(X, 1))),
    "nguyen-11": Benchmark("x^y", 2, 0, 1, 100, lambda X: _x(X) ** _x(X, 1)),
    "nguyen-12": Benchmark("x^4 - x^3 + y^2/2 - y", 2, -1, 1, 100,
                           lambda X: _x(X) ** 4 - _x(X) ** 3 + _x(X, 1) ** 2 / 2 - _x(X, 1)),
    "koza-1": Benchmark("x^4 + x^3 + x^2 + x", 1, -1, 1, 20, lambda X: sum(_x(X) ** k for k in range(1, 5))),
    "koza-2": Benchmark("x^5 - 2x^3 + x", 1, -1, 1, 20, lambda X: _x(X) ** 5 - 2 * _x(X) ** 3 + _x(X)),
    "koza-3": Benchmark("x^6 - 2x^4 + x^2", 1, -1, 1, 20, lambda X: _x(X) ** 6 - 2 * _x(X) ** 4 + _x(X) ** 2),
}
VARIABLE_NAMES = ("x", "y")


@dataclass
class Dataset:
    variables: tuple[str, ...]
    X: np.ndarray  # (n, n_vars) training inputs
    y: np.ndarray  # (n,)
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    description: str = ""


def benchmark(name: str, seed: int, n_test: int = 200) -> Dataset:
    """Training points from `seed`; the test points from a stream that training never sees."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown problem {name!r}; valid problems: {', '.join(BENCHMARKS)}")
    b = BENCHMARKS[name]
    train, test = (np.random.default_rng([seed, k]) for k in (0, 1))
    X = train.uniform(b.low, b.high, (b.n_train, b.n_vars))
    X_test = test.uniform(b.low, b.high, (n_test, b.n_vars))
    return Dataset(VARIABLE_NAMES[: b.n_vars], X, b.fn(X), X_test, b.fn(X_test), f"{name}: {b.formula}")


def load_csv(path: Path) -> Dataset:
    """Inputs are every column but `y` (and `split`); rows with split=test form the test set.

    One clear ConfigError for: a missing file, an empty file, no `y` column, no input column,
    a cell that is not a number (named by line and column), NaN or infinite values.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ConfigError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    if "y" not in header:
        raise ConfigError(f"{path}: no 'y' column (columns: {', '.join(header)})")
    inputs = [h for h in header if h not in ("y", "split")]
    if not inputs:
        raise ConfigError(f"{path}: no input column besides 'y'")
    if len(rows) < 2:
        raise ConfigError(f"{path}: the header has no data rows under it")
    values, is_test = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(f"{path}, line {line}: {len(row)} cells, the header has {len(header)}")
        record = dict(zip(header, (c.strip() for c in row), strict=False))
        split = record.pop("split", "train").lower()
        if split not in ("train", "test"):
            raise ConfigError(f"{path}, line {line}: split must be train or test, got {split!r}")
        numbers = []
        for name in [*inputs, "y"]:
            try:
                v = float(record[name])
            except ValueError:
                raise ConfigError(f"{path}, line {line}, column {name!r}: {record[name]!r} is not a number") from None
            if not math.isfinite(v):
                raise ConfigError(f"{path}, line {line}, column {name!r}: {record[name]!r} is not a finite number")
            numbers.append(v)
        values.append(numbers)
        is_test.append(split == "test")
    data, test = np.array(values), np.array(is_test)
    if test.all():
        raise ConfigError(f"{path}: every row is split=test; training needs rows")
    X, y = data[:, :-1], data[:, -1]
    has_test = bool(test.any())
    return Dataset(tuple(inputs), X[~test], y[~test], X[test] if has_test else None, y[test] if has_test else None,
                   f"{path.name}: {len(y)} rows, inputs {', '.join(inputs)}")
