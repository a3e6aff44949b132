"""Running the real `selfevolve` command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# A short length-gen run: labels up to 4 digits, one round of self-labelled 5-digit problems
# (about 45 s on 2 cores). With seed 0, round 0 is right on about half of the 5-digit problems.
FAST = ["labelled_max_digits=4", "target_digits=5", "num_labelled=20000", "round0_steps=800", "round_steps=150",
        "num_unlabelled=1000", "eval_problems=100", "eval_extra_digits=1", "max_rounds=1", "advance_at=0",
        "threads=2"]


def selfevolve_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "selfevolve", *args]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(selfevolve_cmd(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)


def sets(values: list[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_clean_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for fragment in fragments:
        assert fragment in proc.stderr + proc.stdout
