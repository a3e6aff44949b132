"""kill -9 in the middle of an evolution run, then `selfevolve resume`: the same result as a run
that was never interrupted, with nothing lost or duplicated."""

import pytest
from helpers import GENOME_SHORT, THREADS, assert_resume_finishes_as, kill_9_after, sets, summary

from selfevolve.store import RunStore

RUNS = {
    # success_error=0 / solve_return=1e9: never solved, so every generation runs
    "gp": ["problem=nguyen-7", "generations=8", "pop_size=300", "mate_choice=ideal", "success_error=0"],
    "deep-ga": ["pop_size=60", "hidden=8", "max_generations=8", "solve_return=1e9", "episodes=2", THREADS],
    "genome": GENOME_SHORT,
    "finmem": ["days=1000"],  # one variant per round, one samples file each
}
# killed right after the third generation's state (FinMem: the third variant's trades) is written
KILL_AFTER = {"gp": "state.json@3", "deep-ga": "state.json@3", "genome": "state.json@3",
              "finmem": "samples/round-002.parquet"}


@pytest.mark.parametrize("recipe", list(RUNS))
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path, recipe, finished_run):
    straight, killed = finished_run(recipe, RUNS[recipe]), tmp_path / "killed"
    kill_9_after(["run", recipe, "--out", str(killed), *sets(RUNS[recipe])], KILL_AFTER[recipe])
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, straight)
    rounds = [r.get("generation", r.get("round")) for r in RunStore.open(killed).rounds()]
    assert rounds == list(range(len(rounds)))
    assert len(rounds) == len(summary(killed).get("generations_log") or summary(killed)["test"])
