"""Held-out means unseen: no held-out problem is a labelled, self-training, search or probe problem
of the same run, for every recipe that learns from problems; the counts are in the summary."""

import numpy as np
import pyarrow.parquet as pq
from helpers import THREADS, run_cli, sets, summary

from selfevolve.config import build_config
from selfevolve.recipes import get_recipe
from selfevolve.store import RunStore
from selfevolve.tasks import get_task
from selfevolve.tasks.base import Problem, sample_unseen

# two-number Countdown: a small problem space, where a held-out draw meets training problems often
SMALL_SPACE = ["task=countdown", "difficulty=2", "num_labelled=300", "n_embd=32", "n_layer=1", "round0_steps=20",
               "iterations=2", "problems_per_iteration=300", "samples_per_problem=2", "iteration_steps=5",
               "eval_problems=200", THREADS]


def test_sample_unseen_draws_again_and_runs_out_honestly():
    task = get_task("addition")
    seen = {p.prompt for p in task.sample(2000, 1, np.random.default_rng(0))}  # every one-digit sum, nearly
    got, refused = sample_unseen(task, 50, 1, np.random.default_rng(1), seen)
    assert refused > 0 and all(p.prompt not in seen for p in got) and len(got) < 50
    got, refused = sample_unseen(task, 50, 4, np.random.default_rng(1), seen)
    assert len(got) == 50 and refused == 0


def test_self_training_never_sees_a_held_out_problem(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", "star", "--out", str(out), *sets(SMALL_SPACE))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    cfg = build_config(get_recipe("star").Config, RunStore.open(out).config_values())
    task = get_task(cfg.task)
    labelled = cfg.seed_set(task)
    from selfevolve.selftrain import held_out

    test, _ = held_out(cfg, task, {p.prompt for p in labelled})
    test_prompts = {p.prompt for p in test}
    assert len(test) == 200 and not test_prompts & {p.prompt for p in labelled}
    trained = {prompt for r in (1, 2) for prompt in pq.read_table(out / "samples" / f"round-{r:03d}.parquet")
               .column("prompt").to_pylist()}
    assert trained and not trained & test_prompts
    # the space is small: without the rule, both directions would have met (the counts say how often)
    assert s["held_out"]["labelled_left_out"] > 0 and s["held_out"]["self_training_redrawn"] > 0
    assert s["held_out"]["problems"] == 200


def test_the_dev_split_is_apart_from_test_and_labelled_problems():
    """Settings are chosen on eval_split=dev: none of its problems is a test or labelled one."""
    from selfevolve.selftrain import held_out

    Config = get_recipe("star").Config
    cfg = build_config(Config, {"task": "countdown", "difficulty": 3, "num_labelled": 300, "eval_problems": 200})
    dev_cfg = build_config(Config, {**cfg.__dict__, "eval_split": "dev"})
    task = get_task(cfg.task)
    labelled = {p.prompt for p in cfg.seed_set(task)}
    test, dev = (held_out(c, task, labelled)[0] for c in (cfg, dev_cfg))
    assert len(dev) == len(test) == 200
    test, dev = {p.prompt for p in test}, {p.prompt for p in dev}
    assert not dev & test and not dev & labelled and not test & labelled


def test_length_gen_held_out_sets_hold_no_labelled_problem():
    from selfevolve.recipes.length_gen import Config, held_out_sets, labelled_set

    cfg = Config(labelled_max_digits=4, num_labelled=8000, target_digits=6, eval_extra_digits=1, eval_problems=100)
    task = get_task(cfg.task)
    labelled = {p.prompt for p in labelled_set(cfg, task)}
    sets_ = held_out_sets(cfg, task, labelled)
    assert list(sets_) == [str(d) for d in range(1, 8)]
    assert all(p.prompt not in labelled for problems in sets_.values() for p in problems)
    assert len(sets_["1"]) < 100 and all(len(sets_[str(d)]) == 100 for d in range(3, 8))
    assert all(isinstance(p, Problem) for p in sets_["7"])


def test_length_gen_and_rstar_dev_splits_are_apart_from_test_and_labelled_problems():
    """length-gen and rstar choose settings on eval_split=dev too."""
    from selfevolve.recipes import length_gen, rstar

    cfg = length_gen.Config(labelled_max_digits=3, num_labelled=3000, target_digits=4, eval_extra_digits=0,
                            eval_problems=100)
    task = get_task(cfg.task)
    labelled = {p.prompt for p in length_gen.labelled_set(cfg, task)}
    test, dev = (length_gen.held_out_sets(c, task, labelled) for c in (cfg, build_config(
        length_gen.Config, {**cfg.__dict__, "eval_split": "dev"})))
    for d in ("3", "4"):
        t, v = {p.prompt for p in test[d]}, {p.prompt for p in dev[d]}
        assert len(t) == len(v) == 100 and not t & v and not v & labelled

    cfg = rstar.Config(eval_problems=100)
    task = get_task(cfg.task)
    seed_set = cfg.seed_set(task)
    test, dev = (c.held_out(task, seed_set)[0] for c in (cfg, build_config(rstar.Config, {"eval_problems": 100,
                                                                                          "eval_split": "dev"})))
    t, v, seeds = ({p.prompt for p in x} for x in (test, dev, seed_set))
    assert len(t) == len(v) == 100 and not t & v and not v & seeds and not t & seeds


def test_agentevol_held_out_tasks_are_never_a_training_task():
    from selfevolve.agents.env import make_env
    from selfevolve.recipes.agentevol import Config, held_out_tasks, training_tasks

    cfg = Config()

    def key(name, task_id):
        env = make_env(name)
        env.reset(task_id)
        return name, env.state_key()

    trained = {key(*t) for t in training_tasks(cfg)}
    tasks, skipped = held_out_tasks(cfg, cfg.envs)
    assert len(tasks) == cfg.eval_tasks * len(cfg.envs) and len(set(tasks)) == len(tasks)
    assert not {key(*t) for t in tasks} & trained
    assert skipped > 0  # small mazes repeat: the first held-out ids held training tasks (40 of 800)
    dev, _ = held_out_tasks(Config(eval_split="dev"), cfg.envs)
    assert len(dev) == len(tasks) and not {key(*t) for t in dev} & (trained | {key(*t) for t in tasks})
