"""Long-term memory: synthetic users checked by replaying what they told, the per-user store's add /
search / update / forget, the window, and a tiny run that learns, compares every memory and resumes."""

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import THREADS, assert_refused_before_a_run, assert_resume_finishes_as, kill_9_after, sets, summary

from selfevolve.agents.users import UserMemory, population, user_sessions
from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.recipes.long_memory import VARIANTS, Config, facts_so_far, reader_examples, recent

TINY = ["users=12", "train_users=150", "sessions=6", "reader_steps=500", "distill_steps=20", THREADS]
QUICK = [*TINY, "reader_steps=50"]  # what resuming must reproduce does not depend on how well it reads


def test_every_question_asks_the_current_value_of_a_fact_told_in_an_earlier_session():
    sessions = user_sessions(3, 30, 2, 0.4, np.random.default_rng(0))
    assert sessions[0].asked == "" and all(s.asked for s in sessions[1:])
    told_when: dict[str, tuple[str, int]] = {}
    updates = 0
    for s in sessions:
        assert s.user == 3 and len(s.told) == 2 and len({slot for slot, _ in s.told}) == 2
        if s.asked:
            value, when = told_when[s.asked]
            assert (s.answer, s.age) == (value, s.index - when) and s.age >= 1
        for slot, value in s.told:
            updates += slot in told_when
            told_when[slot] = (value, s.index)
    assert 0.2 < updates / 60 < 0.6  # about `update` of the facts give a new value to an old slot
    assert max(s.age for s in sessions) > 5  # old facts are asked too


def test_users_differ_and_held_out_users_are_not_training_users():
    held_out = population(0, 5, 4, 2, 0.3, np.random.default_rng(1))
    training = population(5, 5, 4, 2, 0.3, np.random.default_rng(2))
    assert [u[0].user for u in held_out] == list(range(5)) and [u[0].user for u in training] == list(range(5, 10))
    assert len({u[0].said() for u in held_out + training}) == 10


def test_the_store_keeps_users_apart_and_updates_and_forgets_a_slot():
    memory = UserMemory()
    memory.add(1, "kul", "903")
    memory.add(1, "mib", "377")
    memory.add(2, "kul", "111")
    assert memory.search(1, "kul", 1) == ["kul=903"] and memory.search(2, "kul", 5) == ["kul=111"]
    assert sorted(memory.search(1, "dor", 5)) == ["kul=903", "mib=377"]  # never another user's facts
    memory.update(1, "kul", "555")
    assert memory.search(1, "kul", 5)[0] == "kul=555" and "kul=903" not in memory.search(1, "kul", 5)
    assert memory.forget(1, "kul") == 1 and memory.search(1, "kul", 5) == ["mib=377"]
    assert memory.forget(3, "kul") == 0 and memory.search(3, "kul", 5) == []


def test_the_window_and_the_facts_so_far_are_what_the_users_told():
    users = population(0, 2, 5, 2, 0.5, np.random.default_rng(4))
    sessions = users[1]
    assert recent(sessions, 0, 3) == "" and recent(sessions, 4, 2) == f"{sessions[2].said()}/{sessions[3].said()}"
    current = facts_so_far(users, 2)
    for u in users:
        replay = {}
        for s in u[:3]:
            replay.update(dict(s.told))
        assert {slot: v for (user, slot), v in current.items() if user == u[0].user} == replay


def test_the_reader_learns_from_training_users_only_and_every_answer_is_in_its_memory(tok):
    cfg = build_config(Config, {"users": 3, "train_users": 6, "sessions": 8, "window": 2})
    store_form, window_form = reader_examples(cfg, tok)
    for pool in (store_form, window_form):
        assert len(pool) > 20
        for ids, n, end in zip(pool.ids, pool.prompt_lens, pool.lens, strict=True):
            prompt, answer = tok.decode(ids[:n].tolist()), tok.decode(ids[n:end].tolist())
            user, rest = prompt.split(":", 1)
            memory, slot = rest.rsplit("|", 1)
            assert int(user[1:]) >= 3  # never a held-out user
            told = [f.split("=") for f in memory.replace("/", ";").split(";")]
            assert [v for k, v in told if k == slot.removesuffix("?>")][-1] == answer  # the latest value told


@pytest.fixture(scope="module")
def tiny_run(finished_run):
    return finished_run("long-memory", TINY)


def test_a_tiny_run_reads_its_store_and_compares_every_memory(tiny_run):
    s = summary(tiny_run)
    acc = {r["variant"]: r for r in s["variants"]}
    assert list(acc) == list(VARIANTS) and all(r["questions"] == 12 * 5 for r in acc.values())
    # the reader learnt to read: from the store's facts it answers far more than from nothing
    assert acc["store"]["accuracy"] > acc["none"]["accuracy"] + 0.3, acc
    # a window of 3 sessions cannot answer about older facts; the store can
    old = [a for a in acc["store"]["by_age"] if int(a) > 3]
    assert old and all(acc["window"]["by_age"][a] <= acc["store"]["by_age"][a] for a in old)
    rows = pq.read_table(tiny_run / "samples" / "round-003.parquet").to_pydict()
    assert rows["correct"] == [a == g for a, g in zip(rows["answer"], rows["given"], strict=True)]
    assert all(p.startswith(f"u{u}:") and p.endswith(f"|{q}?>") for p, u, q in zip(rows["prompt"], rows["user"],
                                                                                   rows["asked"], strict=True))
    assert np.mean(rows["correct"]) == acc["store"]["accuracy"]
    assert (tiny_run / "plots" / "accuracy-by-session.png").exists()


def test_kill_9_then_resume_equals_an_uninterrupted_run(finished_run, tmp_path):
    killed = tmp_path / "killed"
    kill_9_after(["run", "long-memory", "--out", str(killed), *sets(QUICK)], "samples/round-002.parquet")
    assert not (killed / "summary.json").exists()
    assert_resume_finishes_as(killed, finished_run("long-memory", QUICK))


def test_bad_settings_are_one_clear_error_before_a_run_exists(tmp_path):
    assert_refused_before_a_run(tmp_path, "long-memory", "variants must be distinct names", "variants=none,rag")


@pytest.mark.parametrize("values,message", [({"sessions": 1}, "sessions must be >= 2"),
                                             ({"update": 1.5}, "update must be in [0, 1]"),
                                             ({"sessions": 400}, "at most 720")])
def test_each_bad_setting_names_itself(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(Config, values)
