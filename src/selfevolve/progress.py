"""Live progress for long work: Rich bars on a terminal, silence in tests and library use."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    """What a recipe reports while it runs; `enabled=False` reports nothing."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self._bars = RichProgress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, disable=not enabled, transient=True,
        )

    def __enter__(self) -> Progress:
        self._bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.__exit__(*exc)

    @contextmanager
    def task(self, description: str, total: int | None, done: int = 0) -> Iterator[Callable[..., None]]:
        """A bar for one stage, with the time left, `done` units already done (a resumed run); yields
        `advance(units=1, **info)` to call as work is done."""
        task_id = self._bars.add_task(description, total=total, completed=done, info="")

        def advance(units: int = 1, **info: float) -> None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in info.items())
            self._bars.update(task_id, advance=units, info=text)

        try:
            yield advance
        finally:
            self._bars.remove_task(task_id)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)


@contextmanager
def timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Adds the block's wall time to seconds[phase]: a round records where its time went."""
    t0 = time.time()
    try:
        yield
    finally:
        seconds[phase] = round(seconds.get(phase, 0.0) + time.time() - t0, 2)
