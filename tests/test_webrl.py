"""WebRL on WebSim: both interfaces carry the expert through every task, malformed actions never crash, the
curriculum keeps only tasks in its band, the ORM learns to judge and its agreement is counted right, the
KL-regression update moves the actor the way the advantages say, and a tiny run learns, compares the
variants on equal episodes and resumes after kill -9."""

import importlib.util
import re
from dataclasses import asdict

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import THREADS, assert_refused_before_a_run, assert_resume_finishes_as, kill_9_after, sets, summary
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.agents.curriculum import Critic, TaskWriter, evolve, in_band
from selfevolve.agents.orm import agreement, judge, train_orm
from selfevolve.agents.screens import replay
from selfevolve.agents.web import Web
from selfevolve.agents.web_agent import INTERFACES, Player, WebTask, ground, in_words, lm_actor, observation, play
from selfevolve.config import build_config, parse_overrides
from selfevolve.errors import ConfigError
from selfevolve.evolve.runner import Evaluator
from selfevolve.models.lm import TransformerLM
from selfevolve.models.policy import TINY as TINY_MODEL
from selfevolve.models.policy import load_policy
from selfevolve.progress import Progress
from selfevolve.recipes.webrl import Config
from selfevolve.train.dpo import answer_logprobs
from selfevolve.train.rl import confidence, kl_regression_loss, kl_regression_update
from selfevolve.train.sft import Examples, SFTConfig

HELD = [WebTask(d, 1_000_000 + 7 * d + t) for d in range(3) for t in range(40)]


@pytest.mark.parametrize("interface", INTERFACES)
def test_the_expert_solves_every_task_through_either_interface(interface):
    episodes = play(None, HELD, interface, 60)  # a team task takes up to 4 actions per member
    assert all(ep.success and ep.invalid == 0 for ep in episodes)
    assert {ep.template for ep in episodes} == {"cheapest", "reply", "role", "team"}
    if interface == "index":
        assert all(re.fullmatch(r"(click \d+|type \d+ \w+|back)", a) for ep in episodes for a in ep.actions)
    else:  # elements named, never numbered
        assert "[" not in episodes[0].prompts[0] and "click forum" in {a for ep in episodes for a in ep.actions}


def test_the_grounder_maps_names_and_numbers_to_the_elements_on_the_page():
    env = Web(1)
    env.reset(5)  # "make nora an admin", on the home page
    assert ground(env, "click admin panel", "semantic") == "click l-admin"
    assert ground(env, "click 7", "index") == "click l-admin" and "  [7] link: admin panel" in observation(
        env, "index", [])
    assert ground(env, "click admin", "semantic") is None and ground(env, "click 99", "index") is None
    env.step("click l-admin")
    env.step("click next")
    env.step("click u-11")
    assert ground(env, "type role admin", "semantic") == "type f-role admin"
    assert ground(env, "click role", "semantic") is None and ground(env, "type save x", "semantic") is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="clicktypeback 0123456789-admin", max_size=30), min_size=1, max_size=12),
       st.sampled_from(INTERFACES))
def test_malformed_actions_are_penalised_never_a_crash(replies, interface):
    script = iter(replies)
    [ep] = play(lambda prompts, t: [next(script, "back") for _ in prompts], [WebTask(1, 3)], interface, len(replies))
    assert ep.steps <= len(replies) and ep.invalid <= ep.steps


def test_the_curriculum_keeps_variations_of_failures_only_inside_its_band():
    critic = Critic()
    for _ in range(30):
        critic.add("role", 2, False)  # hopeless: 1/32
        critic.add("role", 0, True)  # solved: 31/32
    critic.add("role", 1, True)  # 2/3
    assert critic.value("role", 2) < 0.05 < critic.value("role", 1) < 0.75 < critic.value("role", 0)
    assert in_band(0.05, 0.05, 0.75) and not in_band(0.76, 0.05, 0.75)
    new, counts = evolve([("role", WebTask(1, 7)), ("reply", WebTask(3, 8))], critic, TaskWriter(500_000, 600_000),
                         10, 0.05, 0.75, 3)
    # role: 0 too easy, 2 hopeless, 1 kept; reply: never tried (0.5), 2 and 3 kept, 4 beyond max_difficulty
    assert [t.difficulty for t in new] == [1, 2, 3]
    templates = []
    for t in new:
        env = Web(t.difficulty)
        env.reset(t.task_id)
        templates.append(env.template)
    assert templates == ["role", "reply", "reply"] and counts == {"proposed": 5, "accepted": 3}
    assert len({t.task_id for t in new}) == 3 and all(500_000 <= t.task_id < 600_000 for t in new)


def test_orm_agreement_counts_accuracy_and_each_class():
    out = agreement([True, True, False, False, True], [True, False, False, False, True])
    assert out["accuracy"] == pytest.approx(0.8) and out["success_recall"] == 1.0
    assert out["failure_recall"] == pytest.approx(2 / 3) and out["judged_success"] == pytest.approx(0.6)
    assert np.isnan(agreement([False], [False])["success_recall"])


def test_the_orm_learns_to_tell_finished_tasks_from_wandering():
    rng = np.random.default_rng(0)

    def wander(prompts, temperature):
        return [f"click {rng.integers(12)}" for _ in prompts]

    def episodes(first, n):  # n of the expert's, then n of a wanderer's
        tasks = [WebTask(t % 3, t) for t in range(first, first + 2 * n)]
        return play(None, tasks[:n], "index", 12) + play(wander, tasks[n:], "index", 12)

    train, test = episodes(0, 60), episodes(5000, 20)
    truth = [ep.success for ep in test]
    assert sum(truth) == 20  # the wanderer never finishes a task
    orm = load_policy(TINY_MODEL, 0, 512, 2, 2, 32)
    assert agreement(judge(orm, test), truth)["accuracy"] <= 0.6  # untrained: about one answer for all
    train_orm(orm, train, [ep.success for ep in train], SFTConfig(learning_rate=3e-3, batch_size=32, warmup_steps=10),
              100, torch.Generator().manual_seed(0), Progress(enabled=False))
    assert agreement(judge(orm, test), truth)["accuracy"] >= 0.9


def test_the_kl_regression_update_moves_actions_the_way_their_advantages_say():
    ref, logp = torch.tensor([-2.0, -1.0]), torch.tensor([-1.0, -1.5])
    assert kl_regression_loss(logp, ref, torch.tensor([0.5, -0.25]), 0.5) == 0  # beta log(pi/ref) = A
    policy = load_policy(TINY_MODEL, 0, 64, 1, 2, 32)
    data = Examples.encode(policy.tok, ["task: a\naction: ", "task: b\naction: "], ["click 1", "click 2"])
    before = answer_logprobs(policy.model, *data.batch(torch.arange(2)))[0].detach()
    assert torch.allclose(confidence(policy, data), torch.exp(before / torch.tensor([8.0, 8.0])))
    kl_regression_update(policy, data, torch.tensor([1.0, -1.0]), 0.5, 40,
                         SFTConfig(learning_rate=1e-2, batch_size=2, warmup_steps=0),
                         torch.Generator().manual_seed(0), Progress(enabled=False), "update")
    after = answer_logprobs(policy.model.eval(), *data.batch(torch.arange(2)))[0].detach()
    assert after[0] > before[0] + 1 and after[1] < before[1] - 1
    assert abs(0.5 * (after - before) - torch.tensor([1.0, -1.0])).max() < 0.5  # close to the optimum


TINY = ["demo_tasks=60", "bc_steps=250", "phases=2", "tasks_per_phase=12", "eval_tasks=6", "orm_steps=20",
        "update_steps=10", "max_steps=6", "variants=webrl,no-kl", "n_layer=2", "batch_size=16", THREADS]


@pytest.fixture(scope="module")
def tiny_run(finished_run):
    return finished_run("webrl", TINY)


def test_a_tiny_run_learns_to_act_and_compares_variants_on_equal_episodes(tiny_run):
    s = summary(tiny_run)
    runs = {v["variant"]: v for v in s["variants"]}
    assert list(runs) == ["webrl", "no-kl"]
    assert all(len(s["held_out"][v]) == 3 and len(r["phases"]) == 2 for v, r in runs.items())
    assert all(r["phases"][0]["orm"] is None and r["phases"][1]["orm"] is not None for r in runs.values())
    rows = duckdb.sql(f"SELECT phase, count(DISTINCT task_id) AS n FROM '{tiny_run}/samples/round-002.parquet'"
                      " GROUP BY phase ORDER BY phase").fetchall()
    assert rows == [(1, 12), (2, 12)]
    shared = duckdb.sql(f"SELECT task_id, action FROM '{tiny_run}/samples/round-001.parquet' WHERE step = 0").df()
    # it learned to act: the first action of the shared phase-1 episodes is often the expert's (untrained: never;
    # 150 steps get forum and admin panel right, and some of the categories, which must be copied from the task)
    first = []
    for task_id, action in zip(shared["task_id"], shared["action"], strict=True):
        env = Web(task_id % 3)
        env.reset(task_id)
        first.append(action == in_words(env, env.plan[0], "semantic"))
    assert np.mean(first) >= 0.5, first
    assert (tiny_run / "plots" / "held-out.png").exists()


def test_the_report_replays_a_rollout_screen_by_screen_and_every_rollout_replays_to_its_verdict(tiny_run):
    screens = sorted((tiny_run / "plots").glob("example-round-3-*.png"))
    assert screens and (tiny_run / "report.html").read_text().count('class="screen"') == len(screens)
    rows = pq.read_table(tiny_run / "samples" / "round-003.parquet").to_pylist()
    starts = [i for i, r in enumerate(rows) if r["step"] == 0] + [len(rows)]
    interface = summary(tiny_run)["interface"]
    for episode in (rows[a:b] for a, b in zip(starts, starts[1:], strict=False)):
        env = Web(episode[0]["difficulty"])
        done = replay(env, episode[0]["task_id"], [r["action"] for r in episode],
                      lambda a, env=env: ground(env, a, interface))[1]
        assert done == episode[0]["success"]


@pytest.mark.skipif(not importlib.util.find_spec("ray"), reason="needs Ray")
def test_chunks_played_on_ray_workers_give_the_serial_episodes_for_a_fixed_seed(tiny_run):
    cfg, trained = build_config(Config, parse_overrides(TINY)), TransformerLM.from_run(tiny_run)
    player = Player(trained.model, trained.tok, cfg.interface, cfg.max_steps, cfg.max_tokens, 1.0)
    serial = [asdict(ep) for ep in Evaluator(player, 3)(HELD[::15], 7)]
    assert [asdict(ep) for ep in Evaluator(player, 3, "ray", workers=2)(HELD[::15], 7)] == serial
    assert [asdict(ep) for ep in Evaluator(player, 3)(HELD[::15], 8)] != serial  # the seed reaches the sampling
    # chunk_size 0 (the default) plays every task in one batch with the seed itself, as the recipe always has
    lm = TransformerLM(trained.model, trained.tok, seed=7)
    assert [asdict(ep) for ep in Evaluator(player, 0)(HELD[::15], 7)] == [
        asdict(ep) for ep in play(lm_actor(lm, cfg.max_tokens), HELD[::15], cfg.interface, cfg.max_steps, 1.0)]


QUICK = ["demo_tasks=20", "bc_steps=20", "phases=2", "tasks_per_phase=6", "eval_tasks=3", "orm_steps=5",
         "update_steps=3", "max_steps=4", "variants=webrl,filtered-bc,bc-continued,verifier-reward", "n_layer=1",
         "batch_size=8", THREADS]


def test_kill_9_then_resume_equals_an_uninterrupted_run(finished_run, tmp_path):
    killed = tmp_path / "killed"
    kill_9_after(["run", "webrl", "--out", str(killed), *sets(QUICK)], "samples/round-002.parquet")
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, finished_run("webrl", QUICK))


def test_the_controls_are_judged_by_the_verifier_and_bc_continued_plays_only_base_tasks(finished_run):
    run = finished_run("webrl", QUICK)
    phases = {v["variant"]: v["phases"] for v in summary(run)["variants"]}
    assert phases["webrl"][1]["orm"] is not None  # from phase 2 on the ORM judges webrl's episodes
    for r, variant in ((4, "bc-continued"), (5, "verifier-reward")):
        assert all(p["orm"] is None for p in phases[variant])
        rows = duckdb.sql(f"SELECT count(*) FILTER (WHERE judged <> success), count(DISTINCT phase) "
                          f"FROM '{run}/samples/round-00{r}.parquet'").fetchall()[0]
        assert rows == (0, 2)  # every action labelled by the verifier, in both phases
    assert all(p["curriculum"]["accepted"] == 0 for p in phases["bc-continued"])
    assert all(p["loss"] == p["loss"] for p in phases["bc-continued"])  # cloned in every phase


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "webrl", "interface must be one of", "interface=pixels")


@pytest.mark.parametrize("values,message", [({"variants": ("webrl", "webrl")}, "variants must be distinct"),
                                             ({"band_low": 0.8}, "band_low <= band_high"),
                                             ({"phases": 0}, "phases must be >= 1")])
def test_each_bad_setting_names_itself(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(Config, values)
