"""`selfevolve run evolve-program`: the loop with a model as the mutation operator (a scripted model that
knows a better program, a hostile one, a user's server), its baselines, its log and its resume."""

import itertools
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import assert_clean_error, kill_9_after, run_cli, sets, summary, without_times

from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.evolve.cascade import Stage, cascade
from selfevolve.evolve.diffs import DiffError
from selfevolve.evolve.operators import child_program, evolvable, prompt, random_edit
from selfevolve.evolve.problems import BENCHMARKS
from selfevolve.evolve.program_db import Program
from selfevolve.evolve.program_problems import get_problem
from selfevolve.models.lm import ReplayLM, ScriptedLM, logged_calls
from selfevolve.progress import Progress
from selfevolve.recipes.evolve_program import Config, evolve
from selfevolve.store import RunStore

STAGES = [Stage("quick"), Stage("evaluate")]
# a model behind a server nobody asks (the scripted model is passed to the loop itself)
SCRIPTED = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "children": 4, "generations": 4, "islands": 2,
            "migration_interval": 2, "stage_timeout": 2.0}


def score(problem, code_from, code_to):
    p = get_problem(problem, 0)
    result = cascade(p.program.replace(code_from, code_to), p.evaluator, STAGES)
    assert result.complete(2), result
    return result.metrics["score"]


def test_each_built_in_evaluator_ranks_a_known_better_program_higher():
    p = get_problem("regression", 0)
    start = cascade(p.program, p.evaluator, STAGES).metrics["score"]
    assert score("regression", "return x", "return x + x**2 + x**3 + x**4") > -1e-4 > start  # nguyen-2 exactly
    first_fit = get_problem("packing", 0)
    first_fit = cascade(first_fit.program, first_fit.evaluator, STAGES).metrics["score"]
    assert score("packing", "return [0.0 for c in capacities]", "return [-(c - item) for c in capacities]") > first_fit
    p = get_problem("minimize", 0)
    random_search = cascade(p.program, p.evaluator, STAGES).metrics["score"]
    local = '''    best = None
    for _ in range(budget // 2):
        x, y = rng.uniform(-5, 5), rng.uniform(-5, 5)
        v = f(x, y)
        if best is None or v < best[0]:
            best = (v, x, y)
    for _ in range(budget - budget // 2):
        x, y = best[1] + rng.gauss(0, 0.3), best[2] + rng.gauss(0, 0.3)
        v = f(x, y)
        if v < best[0]:
            best = (v, x, y)
    return best[1], best[2]'''
    body = p.program[p.program.index("    best = None"):p.program.index("# EVOLVE-BLOCK-END")].rstrip("\n")
    assert score("minimize", body, local) > random_search


def test_the_model_is_never_told_a_regression_benchmark_s_name_or_formula():
    """Else it copies the answer (SmolLM2 did, from "nguyen-2: x^4 + x^3 + x^2 + x") and the search is moot."""
    for name, bench in BENCHMARKS.items():
        if bench.n_vars == 1:
            p = get_problem("regression", 0, name)
            start = Program(p.program, {"score": -1.0})
            asked = json.dumps(prompt(p.description, start, [start], ["a failure"], "rewrite"))
            assert name not in asked and bench.formula not in asked and "20 data points" in asked, asked


def test_a_reply_becomes_a_child_program_or_one_message_for_the_model():
    parent = get_problem("regression", 0).program
    child = child_program(parent, "Sure:\n```python\n# EVOLVE-BLOCK-START\ndef f(x):\n    return x * x\n```\nDone.",
                          "rewrite")
    assert evolvable(child) == "def f(x):\n    return x * x" and child.startswith("import math")
    assert child.count("# EVOLVE-BLOCK-START") == 1 and child.count("# EVOLVE-BLOCK-END") == 1
    for reply in ("I would square it.", "```python\n\n```"):
        with pytest.raises(DiffError, match="no ```python code block"):
            child_program(parent, reply, "rewrite")
    with pytest.raises(DiffError, match="occurs 0 times"):
        child_program(parent, "<<<<<<< SEARCH\n    return y\n=======\n    return 1\n>>>>>>> REPLACE", "diff")
    rng = np.random.default_rng(0)
    for name in ("regression", "packing", "minimize"):  # random edits keep a program that parses, signature and all
        program = get_problem(name, 0).program
        edits = [random_edit(program, rng) for _ in range(30)]
        assert sum(e != program for e in edits) >= 25
        for e in edits:
            compile(e, "child.py", "exec")
            assert re.findall(r"def \w+\(.*\)", e) == re.findall(r"def \w+\(.*\)", program)


def next_power(target):
    """A model that knows the answer is a polynomial: it adds the next power of x to the current code,
    except in every fourth reply, where it writes something hostile or broken."""
    calls = itertools.count()
    hostile = [f"    import os\n    os.system('touch {target}')\n    return x", "    while True:\n        pass",
               "    return open('/etc/hostname').read()", "    return x +"]
    return lambda prompt: reply(prompt, next(calls), hostile)


def reply(prompt: str, call: int, hostile: list[str]) -> str:
    current = re.search(r"Current code \(.*?\):\n```python\n(.*?)\n```", prompt, re.DOTALL).group(1)
    if call % 4 == 3:
        return f"```python\ndef f(x):\n{hostile[call // 4 % len(hostile)]}\n```"
    expression = current.splitlines()[-1].strip().removeprefix("return ")
    powers = [int(k) for k in re.findall(r"x\*\*(\d+)", expression)] or [1]
    return f"Here it is:\n```python\ndef f(x):\n    return {expression} + x**{max(powers) + 1}\n```"


def scripted_run(path, reply, **more):
    cfg = Config(**{**SCRIPTED, **more})
    store = RunStore.create(path, "evolve-program", "")
    with Progress(enabled=False) as progress:
        return evolve(cfg, store, progress, ScriptedLM(reply))


@pytest.fixture(scope="module")
def climbed(tmp_path_factory):
    root = tmp_path_factory.mktemp("evolve")
    target = root / "escaped"
    return root / "run", target, scripted_run(root / "run", next_power(target))


def test_a_model_that_knows_better_code_climbs_and_hostile_replies_change_nothing(climbed):
    run, target, s = climbed
    assert s["start_score"] < -0.5 and s["best_score"] > -1e-4, s["generations_log"]  # x -> x + x**2 + x**3 + x**4
    scores = [step["score"] for step in s["lineage"]]
    assert len(scores) >= 4 and scores == sorted(scores) and s["lineage"][0]["generation"] == 0
    assert (run / "best_program.py").read_text().count("x**4") == 1
    rows = [pq.read_table(run / "samples" / f"round-{g:03d}.parquet").to_pydict() for g in range(1, 5)]
    errors = [e for r in rows for e in r["error"] if e]
    # the hostile children did nothing in the sandbox (no file made, no hang, no read outside; the one
    # that shells out gets a refused fork and scores as plain x) and the loop went on
    assert len(errors) == 3 and not target.exists(), errors
    for fragment in ("timed out", "PermissionError", "SyntaxError"):
        assert any(fragment in e for e in errors), errors
    assert 0 < s["valid_share"] < 1 and s["evaluations"] == 1 + 4 * 4
    # every call is logged: the conversation, the reply; later prompts show recent failures
    assert all(json.loads(p)[1]["role"] == "user" and r for row in rows
               for p, r in zip(row["prompt"], row["response"], strict=True))
    assert any("Recent attempts that failed" in p for p in rows[-1]["prompt"])


def test_replaying_the_logged_calls_reproduces_the_run(climbed, tmp_path):
    run, _, first = climbed
    calls = logged_calls(RunStore.open(run))
    assert len(calls) == 16
    store = RunStore.create(tmp_path / "replay", "evolve-program", "")
    with Progress(enabled=False) as progress:
        again = evolve(Config(**SCRIPTED), store, progress, ReplayLM(calls))
    keys = ("best_score", "best_code", "lineage", "evaluations", "valid_share")
    assert {k: again[k] for k in keys} == {k: first[k] for k in keys}


def test_random_edits_resume_after_kill_9_as_if_never_stopped(tmp_path):
    args = ["run", "evolve-program", *sets(["operator=random", "problem=minimize", "generations=3", "children=4"])]
    straight = tmp_path / "straight"
    assert run_cli(*args, "--out", str(straight)).returncode == 0
    killed = tmp_path / "killed"
    kill_9_after([*args, "--out", str(killed)], "state.json@2")
    proc = run_cli("resume", str(killed))
    assert proc.returncode == 0, proc.stderr
    a, b = ({k: v for k, v in summary(run).items() if k != "evaluations_per_second"} for run in (straight, killed))
    assert without_times(a) == without_times(b) and a["operator"] == "random" and a["evaluations"] == 1 + 3 * 4
    assert [r["round"] for r in b["generations_log"]] == [0, 1, 2, 3]


def test_bad_programs_and_evaluators_are_one_line_before_anything_is_written(tmp_path):
    program, evaluator = tmp_path / "p.py", tmp_path / "e.py"
    program.write_text("def f(x):\n    return x\n")
    evaluator.write_text("def evaluate(program):\n    return {'score': program.f(1)}\n")
    out = tmp_path / "run"
    for values, fragment in [({"program": str(program)}, "program and evaluator go together"),
                             ({"program": str(program), "evaluator": str(evaluator)}, "no evolvable region"),
                             ({"problem": "sorting"}, "problem must be one of")]:
        with pytest.raises(ConfigError, match=fragment):
            build_config(Config, {**values, "operator": "random"})
    # through the command: one line, exit 2, nothing written
    assert_clean_error(run_cli("run", "evolve-program", "--out", str(out), *sets([f"program={program}"])),
                       "program and evaluator go together")
    assert not out.exists()
    program.write_text("# EVOLVE-BLOCK-START\ndef f(x):\n    return x / 0\n# EVOLVE-BLOCK-END\n")
    proc = run_cli("run", "evolve-program", "--out", str(out), *sets([f"program={program}", f"evaluator={evaluator}",
                                                                      "operator=random"]))
    assert_clean_error(proc, "the starting program fails its own evaluator", "ZeroDivisionError")
    assert not out.exists()


def test_a_users_openai_compatible_server_writes_the_children(tmp_path):
    """base_url + model: the loop asks `selfevolve serve` (a tiny random model on 127.0.0.1) for each child
    and logs what it got; its replies hold no code, so every child is an edit error, and the run finishes."""
    from test_serve import start_server, tiny_run

    proc, base = start_server(tiny_run(tmp_path / "tiny", pos_encoding="nope"), "--name", "tiny")
    try:
        out = tmp_path / "run"
        run = run_cli("run", "evolve-program", "--out", str(out), *sets([
            f"base_url={base}", "model=tiny", "generations=1", "children=3", "max_tokens=8", "problem=packing"]))
        assert run.returncode == 0, run.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    row = pq.read_table(out / "samples" / "round-001.parquet").to_pydict()
    assert len(row["response"]) == 3 and all(0 < t <= 8 for t in row["tokens"]) and min(row["latency_seconds"]) > 0
    assert all(e.startswith("edit: no ```python code block") for e in row["error"]), row["error"]
    assert summary(out)["valid_share"] == 0.0
