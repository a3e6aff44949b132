"""Mobile-Agent-E: the agent's notetaker carries what the expert needs between apps, shortcuts mined from
its own successes keep it right in fewer decisions, guards from recurring failures send an action that
cannot work back to the operator, and a tiny run learns, compares every memory and resumes after kill -9."""

import importlib.util
import json
import re
from dataclasses import asdict

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import (
    THREADS,
    assert_phone_example_replays,
    assert_refused_before_a_run,
    assert_resume_finishes_as,
    kill_9_after,
    sets,
    summary,
)

from selfevolve.agents.experience import Shortcut
from selfevolve.agents.mobile_agent import (
    Memory,
    Player,
    bind,
    can_work,
    describe,
    expert,
    ground,
    lm_operator,
    play,
    prompt_of,
)
from selfevolve.agents.phone import HELD_OUT_TEMPLATES, Phone
from selfevolve.config import build_config, parse_overrides
from selfevolve.errors import ConfigError
from selfevolve.evolve.runner import Evaluator
from selfevolve.models.lm import TransformerLM
from selfevolve.recipes.mobile_agent_e import Config

TINY = ["demo_tasks=80", "bc_steps=150", "tasks=4", "update_every=2", "variants=none,both", "resamples=1",
        "n_layer=2", THREADS]


def test_the_expert_through_the_agent_solves_every_task_reading_only_its_notes_across_apps():
    played = play(expert, list(range(1_000_000, 1_000_120)), 1, Memory())
    assert all(p.success for p in played)
    assert {p.template for p in played} == {"taxi", "phone", "time", "buy", "place", "forward"}
    taxi = next(p for p in played if p.template == "taxi")
    typed = next(a for _, a in taxi.decisions if a.startswith("type f-dest"))
    prompt = next(q for q, a in taxi.decisions if a == typed)
    assert "screen: taxi" in prompt and typed.removeprefix("type f-dest ") in prompt.split("\n")[1]  # the notes


def test_shortcuts_mined_from_successes_keep_the_expert_right_in_fewer_decisions():
    memory = Memory()
    memory.learn(play(expert, list(range(200)), 1, Memory()), 100, False, True, 3, 3, 0.9)
    assert memory.shortcuts and not memory.tips
    plain = play(expert, list(range(1_000_000, 1_000_100)), 1, Memory())
    quick = play(expert, list(range(1_000_000, 1_000_100)), 1, memory)
    assert all(p.success for p in quick)
    assert sum(p.shortcut_runs for p in quick) > 50
    assert np.mean([len(p.decisions) for p in quick]) < np.mean([len(p.decisions) for p in plain]) - 1
    # without the confidence rule a first action calls shortcuts it often does not begin: the expert fails
    loose = Memory()
    loose.learn(play(expert, list(range(200)), 1, Memory()), 100, False, True, 3, 3, 0.0)
    assert np.mean([p.success for p in play(expert, list(range(1_000_000, 1_000_100)), 1, loose)]) < 0.8


def test_a_shortcut_runs_from_its_first_action_as_far_as_that_binds_its_parameters():
    buy = Shortcut("buy_it", ("p1",), "shop", ("tap r-{p1}", "tap b-add", "tap b-cart", "tap b-checkout"))
    assert bind(buy, "tap r-4") == ["tap r-4", "tap b-add", "tap b-cart", "tap b-checkout"]
    assert bind(buy, "tap b-add") is None and bind(buy, "tap r-4 now") is None
    send = Shortcut("send", ("p1", "p2"), "contacts", ("tap c-{p1}", "tap b-message", "type f-text {p2}", "tap b-send"))
    assert bind(send, "tap c-2") == ["tap c-2", "tap b-message"]  # the text is not known yet
    assert bind(Shortcut("s", ("p1",), "home", ("open x", "tap c-{p1}")), "open x") is None
    named = Shortcut("named", ("p1",), "shop", ("tap {p1}", "tap b-add"))
    assert bind(named, "tap candle") == ["tap candle", "tap b-add"] and bind(named, "tap b-search") is None


def test_a_guard_sends_an_action_that_cannot_work_back_to_the_operator_only_where_a_tip_says():
    def operator(prompts, envs, temperature):  # greedy: a contact that is not on screen; sampled: the expert
        return [expert([p], [e], 0)[0] if temperature else "tap c-99" if "screen: contacts" in p else
                expert([p], [e], 0)[0] for p, e in zip(prompts, envs, strict=True)]

    env = Phone(1)
    tasks = [t for t in range(1_000_000, 1_000_200) if env.reset(t) and env.template == "phone"][:5]
    stuck = play(operator, tasks, 1, Memory())  # "tap c-99" on the contacts list, again and again
    assert not any(p.success for p in stuck) and all(p.failures[0] == ("contacts", "tap c-99") for p in stuck)
    memory = Memory()
    memory.learn(stuck, 0, True, False, 3, 3)
    assert memory.guards == [("contacts", "tap")] and "on contacts, 'tap' failed" in memory.tips[0]
    guarded = play(operator, tasks, 1, memory)
    assert all(p.success and not p.failures and p.resampled > 0 for p in guarded)
    assert Memory.from_json(memory.to_json()) == memory


def test_entries_are_named_by_their_text_and_grounded_to_their_ids_on_the_screen():
    env = Phone(1)
    env.reset(3)
    assert can_work(env, "tap a-shop") and can_work(env, "open taxi") and can_work(env, "home")
    assert not can_work(env, "tap c-1") and not can_work(env, "fly") and not can_work(env, "type a-shop")
    env.step("open contacts")
    first, sixth = list(env.contacts)[0], list(env.contacts)[5]
    assert describe(env, "tap c-0") == f"tap {first}" and ground(env, f"tap {first}") == "tap c-0"
    assert f"\n[c-0] {first}\n" in prompt_of(env, "") and describe(env, "tap b-x") == "tap b-x"
    assert ground(env, f"tap {sixth}") == f"tap {sixth}" and not can_work(env, f"tap {sixth}")  # not on screen
    env.step("swipe down")
    assert ground(env, f"tap {sixth}") == "tap c-5"


@pytest.fixture(scope="module")
def tiny_run(finished_run):
    return finished_run("mobile-agent-e", TINY)


def test_a_tiny_run_learns_to_act_and_compares_memories_on_one_stream(tiny_run):
    s = summary(tiny_run)
    runs = {r["variant"]: r for r in s["variants"]}
    assert list(runs) == ["none", "both"] and all(len(r["batches"]) == 2 for r in runs.values())
    assert runs["none"]["shortcut_runs"] == 0 and runs["none"]["resampled"] == 0
    rows = pq.read_table(tiny_run / "samples" / "round-001.parquet").to_pydict()
    assert len(set(rows["task_id"])) == 4 and all(t >= 1_000_000 for t in rows["task_id"])
    assert len(rows["decision"]) / 4 == pytest.approx(runs["none"]["decisions"])
    # it learned to act: on the training templates it opens the app the task starts in (untrained: never)
    env, first = Phone(1), []
    for t, d, template, action in zip(rows["task_id"], rows["decision"], rows["template"], rows["action"],
                                      strict=True):
        if d == 0 and template not in HELD_OUT_TEMPLATES:
            env.reset(t)
            first.append(action == env.plan[0])
    assert first and np.mean(first) >= 0.75, first
    both = Memory.from_json((tiny_run / "memory" / "both.json").read_text())
    assert (len(both.shortcuts), len(both.tips)) == (runs["both"]["batches"][-1]["shortcuts"],
                                                     runs["both"]["batches"][-1]["tips"])
    assert (tiny_run / "plots" / "success-by-batch.png").exists()


def test_the_report_replays_an_episode_of_the_last_variant_screen_by_screen(tiny_run):
    assert_phone_example_replays(tiny_run, "both")
    played = pq.read_table(tiny_run / "samples" / "round-002.parquet").to_pydict()["success"]
    assert json.loads((tiny_run / "episodes" / "both.json").read_text())["success"] == any(played)


@pytest.mark.skipif(not importlib.util.find_spec("ray"), reason="needs Ray")
def test_chunks_played_on_ray_workers_give_the_serial_episodes_for_a_fixed_seed(tiny_run):
    cfg, trained = build_config(Config, parse_overrides(TINY)), TransformerLM.from_run(tiny_run)
    tasks, _ = cfg.stream()
    greedy = Player(trained.model, trained.tok, 1, Memory(), 0, 1.0, cfg.max_tokens)(tasks, 0)
    memory = Memory(guards=sorted({(screen, action.split()[0]) for p in greedy for screen, action in p.failures}))
    player = Player(trained.model, trained.tok, 1, memory, 2, 1.0, cfg.max_tokens)  # guards resample at temperature 1
    serial = [asdict(p) for p in Evaluator(player, 1)(tasks, 7)]
    assert [asdict(p) for p in Evaluator(player, 1, "ray", workers=2)(tasks, 7)] == serial
    assert sum(p["resampled"] for p in serial) > 0
    assert [asdict(p) for p in Evaluator(player, 1)(tasks, 8)] != serial  # the seed reaches the sampling
    # chunk_size 0 (the default) plays the batch here with the seed itself
    operator = lm_operator(TransformerLM(trained.model, trained.tok, seed=7), cfg.max_tokens)
    assert [asdict(p) for p in Evaluator(player, 0)(tasks, 7)] == [asdict(p) for p in play(operator, tasks, 1, memory,
                                                                                          2, 1.0)]


QUICK = ["demo_tasks=10", "bc_steps=10", "tasks=3", "update_every=2", "variants=none,both", "resamples=1",
         "n_layer=1", "batch_size=8", THREADS]


def test_kill_9_then_resume_equals_an_uninterrupted_run(finished_run, tmp_path):
    killed = tmp_path / "killed"
    kill_9_after(["run", "mobile-agent-e", "--out", str(killed), *sets(QUICK)], "samples/round-001.parquet")
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, finished_run("mobile-agent-e", QUICK))


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "mobile-agent-e", "variants must be distinct names", "variants=none,rag")


@pytest.mark.parametrize("values,message", [({"tasks": 0}, "tasks must be >= 1"),
                                             ({"min_confidence": 1.5}, "min_confidence must be in [0, 1]"),
                                             ({"eval_split": "train"}, "eval_split must be one of")])
def test_each_bad_setting_names_itself(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(Config, values)
