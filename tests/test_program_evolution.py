"""Program evolution's parts: search/replace edits and their failure modes, and the island / MAP-Elites
database (insertion, elites per cell, sampling, migration, resume)."""

import json

import numpy as np
import pytest

from selfevolve.evolve.cascade import Stage, cascade
from selfevolve.evolve.diffs import DiffError, apply, regions
from selfevolve.evolve.program_db import Program, ProgramDB

PROGRAM = """import math

# EVOLVE-BLOCK-START
def heuristic(x):
    y = x * 2
    return y
# EVOLVE-BLOCK-END

def evaluate():
    return heuristic(3)
"""


def edit(*blocks: tuple[str, str]) -> str:
    return "\n".join(f"<<<<<<< SEARCH\n{s}\n=======\n{r}\n>>>>>>> REPLACE" for s, r in blocks)


def test_edits_apply_inside_the_evolvable_region_in_order():
    out = apply(PROGRAM, "Here is my change:\n" + edit(("    y = x * 2", "    y = x * 3 + 1"),
                                                        ("    return y", "    return y - 1")))
    assert "y = x * 3 + 1" in out and "return y - 1" in out and out.count("def evaluate") == 1
    assert out.replace("    y = x * 3 + 1\n    return y - 1", "    y = x * 2\n    return y") == PROGRAM
    assert len(regions(out)) == 1


@pytest.mark.parametrize("bad, fragment", [
    ("just rewrite it please", "no <<<<<<< SEARCH"),
    (edit(("    y = x * 5", "    y = 0")), "occurs 0 times"),
    (edit(("y", "z")), "occurs 2 times"),
    (edit(("def evaluate():", "def evaluate(n):")), "outside the evolvable regions"),
    (edit(("import math", "import os")), "outside the evolvable regions"),
    (edit(("    return y", "    return y\n# EVOLVE-BLOCK-END")), "markers"),
    (edit(("   ", "x")), "SEARCH text is empty"),
])
def test_every_failure_is_one_message_for_the_model(bad, fragment):
    with pytest.raises(DiffError, match=fragment.replace("(", r"\(")):
        apply(PROGRAM, bad)


def test_a_program_without_sound_regions_is_refused():
    for program, fragment in [("x = 1\n", "no evolvable region"), ("# EVOLVE-BLOCK-START\nx = 1\n", "has no"),
                              ("x = 1\n# EVOLVE-BLOCK-END\n", "has no")]:
        with pytest.raises(DiffError, match=fragment):
            regions(program)


def db(**more) -> ProgramDB:
    return ProgramDB(**{"islands": 2, "features": ("length",), "ranges": {"length": (0.0, 100.0)}, "bins": 4,
                        "migration_interval": 5, **more})


def test_each_cell_keeps_its_best_program_and_failures_never_become_elites():
    d = db()
    assert d.add(Program("a", {"score": 1.0, "length": 10}))  # cell 0
    assert not d.add(Program("b", {"score": 0.5, "length": 20}))  # cell 0, worse
    assert d.add(Program("c", {"score": 2.0, "length": 24}))  # cell 0, better: replaces a
    assert d.add(Program("d", {"score": 0.1, "length": 99}))  # cell 3: new cell, kept though worse
    assert d.add(Program("e", {"score": 9.0, "length": 500}))  # clipped into cell 3, better than d
    assert not d.add(Program("f", {"score": 99.0, "length": 30}, error="SyntaxError"))
    assert d.elites[0] == {"0": 2, "3": 4} and d.best().code == "e" and d.cell({"length": -5}) == "0"
    with pytest.raises(ValueError, match="without a range"):
        ProgramDB(features=("time",))


def test_sampling_draws_parents_and_inspirations_from_the_island_elites():
    d = db()
    for i, length in enumerate([5, 30, 55, 80]):
        d.add(Program(f"p{i}", {"score": float(i), "length": length}))
    d.add(Program("other island", {"score": 50.0, "length": 5}, island=1))
    rng = np.random.default_rng(0)
    parents = []
    for _ in range(200):
        parent, inspirations = d.sample(0, rng)
        assert parent.island == 0 and parent.id not in [p.id for p in inspirations] and len(inspirations) == 2
        assert all(p.island == 0 for p in inspirations)
        parents.append(parent.code)
    counts = {c: parents.count(c) for c in set(parents)}
    assert counts["p3"] > counts["p0"]  # a tournament of two favours the better elite
    with pytest.raises(ValueError, match="no valid program"):
        db().sample(1, rng)


def test_migration_copies_each_islands_best_to_the_next_on_schedule_and_resume_restores_all():
    d = db(islands=3)
    d.add(Program("a", {"score": 1.0, "length": 10}, island=0))
    d.add(Program("b", {"score": 5.0, "length": 10}, island=1))
    assert d.migrate(generation=3) == []  # not a migration generation
    moved = d.migrate(generation=5)
    # a's copy went to island 1, where b's cell elite stays; b's copy became island 2's elite
    assert [(c.code, c.island, c.parent) for c in d.programs[2:]] == [("a", 1, 0), ("b", 2, 1)]
    assert [d.programs[i].island for i in moved] == [2] and d.best(2).code == "b" and d.best(1).code == "b"
    state = json.loads(json.dumps(d.state()))
    again = ProgramDB.restore(state, islands=3, features=("length",), ranges={"length": (0.0, 100.0)}, bins=4,
                              migration_interval=5)
    assert again.state() == d.state() and again.best().code == "b"
    with pytest.raises(ValueError, match="3 islands"):
        ProgramDB.restore(state, islands=2, features=("length",), ranges={"length": (0.0, 100.0)})


EVALUATOR = """
def quick(program):
    return {"score": float(program.heuristic(3) > 0)}

def evaluate(program):
    return {"score": float(sum(program.heuristic(x) for x in range(10))), "length": 3.0}
"""
STAGES = [Stage("quick", threshold=1.0), Stage("evaluate", timeout=5.0)]


def test_the_cascade_runs_the_full_evaluation_only_for_candidates_that_pass_the_cheap_one():
    good = cascade(PROGRAM, EVALUATOR, STAGES)
    assert good.complete(2) and good.metrics == {"score": 90.0, "length": 3.0}
    negative = PROGRAM.replace("y = x * 2", "y = -x")
    stopped = cascade(negative, EVALUATOR, STAGES)  # heuristic(3) < 0: never fully evaluated
    assert stopped.stages == 1 and not stopped.complete(2) and stopped.metrics == {"score": 0.0}


@pytest.mark.parametrize("body, fragment", [
    ("    return (", "SyntaxError"),
    ("    raise RuntimeError('boom')", "boom"),
    ("    while True:\n        pass", "timed out"),
    ("    return len(open('/etc/hostname').read())", "PermissionError"),
])
def test_broken_or_prying_candidates_are_an_error_text_and_the_loop_goes_on(body, fragment):
    program = PROGRAM.replace("    y = x * 2\n    return y", body)
    result = cascade(program, EVALUATOR, [Stage("quick", timeout=2.0), Stage("evaluate", timeout=2.0)])
    assert fragment in result.error and not result.complete(2), result


def test_a_candidate_that_shells_out_changes_nothing(tmp_path):
    target = tmp_path / "evolved"
    program = PROGRAM.replace("    y = x * 2\n    return y",
                              f"    import os\n    os.system('touch {target}')\n    return 1")
    cascade(program, EVALUATOR, STAGES)  # fork and exec are refused inside the sandbox
    assert not target.exists()
