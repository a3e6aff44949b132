"""MobileSteward: the scripted steward and staff solve every template through the agent, passing what one
app's subtask read to the next; the steward re-plans after a failed subtask; guidelines and expertise grown
from successes fix plans; any reply is survived; a tiny run learns, compares the agents and resumes after
kill -9."""

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
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.agents.mobile_agent import ground
from selfevolve.agents.phone import HELD_OUT_TEMPLATES, Phone
from selfevolve.agents.steward import (
    StewardMemory,
    expert_plan,
    parse_plan,
    play,
    remember,
    shape,
    staff_demos,
    steward_prompt,
    unshape,
)
from selfevolve.config import build_config, parse_overrides
from selfevolve.errors import ConfigError
from selfevolve.evolve.runner import Evaluator
from selfevolve.models.lm import Completion, TransformerLM
from selfevolve.recipes.mobilesteward import MAX_SEQ_LEN, Config, Player
from selfevolve.store import RunStore

HELD = list(range(1_000_000, 1_000_120))


class Replies:
    """A scripted LM for both roles: the expert's reply to every prompt it knows, `plan(instruction,
    temperature)` for the steward's prompts when given, "home" otherwise."""

    def __init__(self, task_ids, plan=None):
        env, self.known = Phone(1), dict(staff_demos(task_ids, 1))
        for t in task_ids:
            env.reset(t)
            self.known[steward_prompt(env.instruction)] = expert_plan(env)
        self.plan, self.calls = plan, []

    def generate(self, prompts, n=1, temperature=0.0, max_tokens=64, stop=None):
        out = []
        for p in prompts:
            self.calls.append((p, temperature))
            steward = p.startswith("instruction: ")
            text = (self.plan(p.split("\n")[0].removeprefix("instruction: "), temperature, self.known.get(p))
                    if steward and self.plan else self.known.get(p, "home"))
            out.append([Completion(text, 0.0, 0)] * n)
        return out


def test_the_scripted_steward_and_staff_solve_every_template_passing_what_they_read_between_apps():
    episodes = play(Replies(HELD), HELD, 1, None)
    assert all(e.success for e in episodes)
    assert {e.template for e in episodes} == {"taxi", "phone", "time", "buy", "place", "forward"}
    taxi = next(e for e in episodes if e.template == "taxi")
    (read, answer), typed = taxi.decisions[-3], taxi.decisions[-2]
    assert answer.startswith("answer ") and "task: find the address in" in read
    assert typed[0].startswith(f"task: book a taxi to {answer.removeprefix('answer ')}\nscreen: taxi")
    assert ("home", "open taxi") in taxi.steps and all(len(e.plans) == 1 for e in episodes)
    assert all("task: " + e.instruction not in q for e in episodes for q, _ in e.decisions)  # staff: its subtask only


def test_the_steward_reflects_on_a_failed_subtask_by_planning_again():
    def plan(instruction, temperature, right):  # greedy: a plan that reads nothing; sampled: the expert's
        return right if temperature else right.replace("find", "look for")

    tasks = HELD[:12]
    stuck = play(Replies(tasks, plan), tasks, 1, None, replans=0)
    again = play(Replies(tasks, plan), tasks, 1, None, replans=1)
    two_step = [e.template != "buy" for e in again]
    assert not any(e.success for e, two in zip(stuck, two_step, strict=True) if two)
    assert all(e.success and len(e.plans) == 1 + two for e, two in zip(again, two_step, strict=True))


def test_guidelines_and_expertise_grown_from_successes_fix_the_plans_of_later_tasks():
    env, tasks = Phone(1), []
    for t in HELD:
        env.reset(t)
        tasks += [t] if env.template == "forward" else []
    first, later = tasks[:1], tasks[1:6]

    def wrong_app(instruction, temperature, right):  # the send subtask given to messages, which cannot do it
        return right.replace("contacts: send", "messages: send")

    memory = StewardMemory()
    played = play(Replies(first), first, 1, memory)
    assert all(e.success for e in played) and memory == StewardMemory()  # playing reads the memories only
    remember(memory, played)
    assert memory.expertise == {"messages": ["find <1>'s last message"], "contacts": ["send <1> the message {1}"]}
    assert memory.guidelines == {"send <1> the last message you got from <2>":
                                 "messages: find <2>'s last message; contacts: send <1> the message {1}"}
    assert not any(e.success for e in play(Replies(later, wrong_app), later, 1, None, replans=0))
    guided = play(Replies(later, wrong_app), later, 1, memory, replans=0)
    assert all(e.success and e.guided for e in guided)
    memory.guidelines.clear()  # expertise alone: the planned app is overruled
    assigned = play(Replies(later, wrong_app), later, 1, memory, replans=0)
    assert all(e.success and e.reassigned == 1 and not e.guided for e in assigned)


def test_plans_parse_only_when_every_piece_names_an_app_and_a_subtask_and_shapes_round_trip():
    assert parse_plan("messages: find ana's last message; taxi: book a taxi to {1}") == [
        ("messages", "find ana's last message"), ("taxi", "book a taxi to {1}")]
    for bad in ("", "plan", "radio: play", "taxi:", "taxi: go; ", "messages find ana"):
        assert parse_plan(bad) == []
    text, values = shape("text ana the place of the book club from your calendar")
    assert (text, values) == ("text <1> the place of the <2> from your calendar", ["ana", "book club"])
    assert unshape(text, values) == "text ana the place of the book club from your calendar"
    assert shape("send <1> ben", ["ben"])[0] == "send <1> <1>"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=60), min_size=1, max_size=6))
def test_any_reply_of_either_role_is_survived_and_never_counted_a_success_it_is_not(replies):
    class Any:
        def __init__(self):
            self.n = 0

        def generate(self, prompts, n=1, temperature=0.0, max_tokens=64, stop=None):
            self.n += len(prompts)
            return [[Completion(replies[(self.n + k) % len(replies)], 0.0, 0)] for k in range(len(prompts))]

    tasks = HELD[:3]
    for e, task_id in zip(play(Any(), tasks, 1, StewardMemory(), replans=1, max_sub_steps=4), tasks, strict=True):
        assert 1 <= len(e.plans) <= 2 and len(e.steps) <= Phone.max_steps
        phone = Phone(1)  # replaying its actions gives the verdict it reported
        phone.reset(task_id)
        for _, action in e.steps:
            phone.step(ground(phone, action))
        assert e.success == (phone.done and phone.check())


TINY = ["demo_tasks=80", "bc_steps=150", "tasks=6", "update_every=3", "chunk_size=2", "n_layer=2", "batch_size=16",
        THREADS]


@pytest.fixture(scope="module")
def tiny_run(finished_run):
    return finished_run("mobilesteward", TINY)


def test_a_tiny_run_learns_both_roles_and_compares_the_agents_on_one_stream(tiny_run):
    s = summary(tiny_run)
    runs = {r["variant"]: r for r in s["variants"]}
    assert list(runs) == ["one-agent", "steward", "steward-memory"]
    assert all(len(r["batches"]) == 2 for r in runs.values()) and s["bc"][1]["examples"] > 80  # plans and staff
    assert runs["steward"]["guided"] == 0 and "plans" not in runs["one-agent"]
    # it learned to plan: on new training-template tasks the plan's first subtask names the expert's app
    env, instructions, apps = Phone(1), [], []
    for t in range(5000, 5040):
        env.reset(t)
        instructions.append(steward_prompt(env.instruction))
        apps.append(expert_plan(env).split(":")[0])
    plans = TransformerLM.from_run(tiny_run).generate(instructions, max_tokens=96)  # the steward's model
    assert np.mean([p.text.split(":")[0] == app for (p,), app in zip(plans, apps, strict=True)]) >= 0.75, plans
    rows = pq.read_table(tiny_run / "samples" / "round-003.parquet").to_pydict()
    assert len(set(rows["task_id"])) == 6 and all(t >= 1_000_000 for t in rows["task_id"])
    staff = [r for r in rows["role"] if r == "staff"]
    assert len(staff) / 6 == pytest.approx(runs["steward"]["decisions"])
    assert rows["role"].count("steward") / 6 == pytest.approx(runs["steward"]["plans"])
    assert (tiny_run / "memory" / "steward-memory.json").exists()
    assert (tiny_run / "plots" / "success-by-batch.png").exists()


QUICK = ["demo_tasks=10", "bc_steps=10", "tasks=3", "update_every=2", "variants=one-agent,steward-memory",
         "n_layer=1", "batch_size=8", "max_sub_steps=3", THREADS]


def test_kill_9_then_resume_equals_an_uninterrupted_run(finished_run, tmp_path):
    killed = tmp_path / "killed"
    kill_9_after(["run", "mobilesteward", "--out", str(killed), *sets(QUICK)], "samples/round-002.parquet")
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, finished_run("mobilesteward", QUICK))


@pytest.fixture(scope="module")
def tiny_steward(tiny_run):
    """The tiny run's config and its steward's model after a little training."""
    cfg = build_config(Config, parse_overrides(TINY))
    policy = cfg.load_policy(MAX_SEQ_LEN)
    RunStore.open(tiny_run).load_last(policy.model)
    return cfg, policy


def test_the_report_replays_an_episode_of_the_last_variant_screen_by_screen(tiny_run):
    assert_phone_example_replays(tiny_run, "steward-memory")
    played = pq.read_table(tiny_run / "samples" / "round-004.parquet").to_pydict()["success"]
    assert json.loads((tiny_run / "episodes" / "steward-memory.json").read_text())["success"] == any(played)


@pytest.mark.skipif(not importlib.util.find_spec("ray"), reason="needs Ray")
def test_chunks_played_on_ray_workers_give_the_serial_episodes_for_a_fixed_seed(tiny_steward):
    cfg, policy = tiny_steward
    player, ids = Player(policy.model, policy.tok, "steward", None, cfg), np.array(HELD[:8])
    serial = Evaluator(player, cfg.chunk_size)(ids, 7)
    ray = Evaluator(player, cfg.chunk_size, "ray", workers=2)(ids, 7)
    assert [asdict(e) for e in ray] == [asdict(e) for e in serial]
    assert sum(len(e.plans) for e in serial) > len(ids)  # some plans failed and the re-plans were sampled
    assert [asdict(e) for e in Evaluator(player, cfg.chunk_size)(ids, 8)] != [asdict(e) for e in serial]


def test_what_succeeds_on_the_first_plan_is_what_an_agent_without_reflection_solves(tiny_steward):
    """So the bench reads the no-reflection ablation off every run: up to the first re-plan all is greedy,
    whatever the re-plans of other tasks in the batch sample."""
    cfg, policy = tiny_steward
    lm, tasks = TransformerLM(policy.model, policy.tok, seed=3), HELD[:40]
    reflecting, plain = play(lm, tasks, 1, None, replans=2), play(lm, tasks, 1, None, replans=0)
    assert any(len(e.plans) > 1 for e in reflecting) and all(len(e.plans) == 1 for e in plain)
    for r, p in zip(reflecting, plain, strict=True):
        assert (r.plans[0], r.steps[:len(p.steps)], r.decisions[:len(p.decisions)]) == (p.plans[0], p.steps,
                                                                                        p.decisions)

    def half_right(instruction, temperature, right):  # greedy: right on every other task; sampled: right
        return right if temperature or len(instruction) % 2 else right.replace("find", "look for")

    reflecting = play(Replies(tasks, half_right), tasks, 1, None, replans=2)
    plain = play(Replies(tasks, half_right), tasks, 1, None, replans=0)
    assert [e.success and len(e.plans) == 1 for e in reflecting] == [e.success for e in plain]
    assert 0 < sum(e.success for e in plain) < sum(e.success for e in reflecting) == len(tasks)


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "mobilesteward", "variants must be distinct names",
                                "variants=steward,solo")


@pytest.mark.parametrize("values,message", [({"tasks": 0}, "tasks must be >= 1"),
                                             ({"replans": -1}, "replans must be >= 0"),
                                             ({"temperature": 0}, "temperature must be > 0"),
                                             ({"eval_split": "train"}, "eval_split must be one of")])
def test_each_bad_setting_names_itself(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(Config, values)


def test_held_out_templates_stay_out_of_the_demonstrations():
    env = Phone(1)
    for t in range(200):
        env.reset(t)
        assert env.template not in HELD_OUT_TEMPLATES
    assert np.all([not q.startswith("task: find the place") for q, _ in staff_demos(list(range(200)), 1)])
