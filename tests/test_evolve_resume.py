"""kill -9 in the middle of an evolution run, then `selfevolve resume`: the same result as a run
that was never interrupted, with nothing lost or duplicated."""

import json

import pytest
from helpers import GENOME_SHORT, kill_9_when, run_cli, sets, summary, without_times

from selfevolve.store import RunStore

RUNS = {
    # success_error=0 / solve_return=1e9: never solved, so every generation runs
    "gp": ["problem=nguyen-7", "generations=30", "pop_size=3000", "mate_choice=ideal", "success_error=0"],
    "deep-ga": ["pop_size=60", "hidden=8", "max_generations=12", "solve_return=1e9", "episodes=2"],
    "genome": GENOME_SHORT,
    "finmem": ["days=1000"],  # one variant per round
}


def generation(run_dir) -> int:
    """Generations finished so far, from the state file the run rewrites (atomically) after each
    (FinMem: the variants traded so far, one samples file each)."""
    if (run_dir / "samples").is_dir():
        return len(list((run_dir / "samples").glob("*.parquet")))
    try:
        state = json.loads((run_dir / "state.json").read_text())
    except FileNotFoundError:
        return 0
    return (state.get("ga") or state.get("gp") or state.get("genome"))["generation"]


@pytest.mark.parametrize("recipe", list(RUNS))
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, recipe, finished_run):
    straight, killed = finished_run(recipe, RUNS[recipe]), tmp_path / "killed"
    kill_9_when(["run", recipe, "--out", str(killed), *sets(RUNS[recipe])], lambda: generation(killed) >= 3)
    assert not (killed / "summary.json").exists()
    proc = run_cli("resume", str(killed))
    assert proc.returncode == 0, proc.stderr
    assert without_times(summary(killed)) == without_times(summary(straight))
    rounds = [r.get("generation", r.get("round")) for r in RunStore.open(killed).rounds()]
    assert rounds == list(range(len(rounds)))
    assert len(rounds) == len(summary(killed).get("generations_log") or summary(killed)["test"])
