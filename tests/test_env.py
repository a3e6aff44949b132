"""Text environments: each task id is one reproducible task, the scripted experts solve them,
and nothing an agent writes can crash an environment: malformed actions get a penalty observation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.agents.env import ENVS, HELD_OUT, make_env, parse_react, split_of


def play(env, task_id, policy):
    obs, _ = env.reset(task_id)
    rewards, steps = [], 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        rewards.append(reward)
        steps += 1
        if terminated or truncated:
            return sum(rewards), steps, truncated


@pytest.mark.parametrize("name", list(ENVS))
def test_the_scripted_expert_solves_every_task_within_the_step_limit(name):
    env = make_env(name)
    lengths = []
    for task_id in [*range(60), *range(HELD_OUT, HELD_OUT + 20)]:
        reward, steps, truncated = play(env, task_id, lambda obs: env.expert())
        assert reward == 1.0 and not truncated, (name, task_id)
        lengths.append(steps)
    assert sum(lengths) / len(lengths) >= 3  # several steps each


@pytest.mark.parametrize("name", list(ENVS))
def test_a_task_id_is_one_task_and_held_out_ids_are_marked(name):
    env = make_env(name)
    first, info = env.reset(7)
    assert env.reset(7)[0] == first and info == {"task_id": 7, "split": "train"}
    assert len({env.reset(i)[0] for i in range(30)}) > 10
    assert env.reset(HELD_OUT + 3)[1]["split"] == "test" and split_of(HELD_OUT - 1) == "train"


@pytest.mark.parametrize("name", list(ENVS))
def test_malformed_actions_cost_a_step_and_get_a_penalty_observation(name):
    env = make_env(name)
    start, _ = env.reset(1)
    for bad in ["", "dance", "move x y", "guess abc", "calc 1/0", "answer", "craft", "Thought: hmm"]:
        if env.done:
            env.reset(1)
        obs, reward, terminated, _, info = env.step(bad)
        assert obs.startswith("invalid action. use:") and reward == 0 and not terminated and not info["valid"]
    reward, steps, truncated = play(env, 2, lambda obs: "nonsense")
    assert reward == 0 and truncated and steps == env.max_steps
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("nonsense")


def walker(use_new: bool):
    """A policy that reads only the maze's text: the open move nearest the goal, taken among the
    neighbours not visited yet when `use_new` and there are any."""
    moves = {"n": (-1, 0), "e": (0, 1), "s": (1, 0), "w": (0, -1)}

    def act(obs: str) -> str:
        words = obs.split("\n")[-1].split()
        (r, c), (gr, gc) = (map(int, words[i].split(",")) for i in (2, 4))
        open_, new = words[6], words[8].strip("-")
        choices = new if use_new and new else open_
        best = min(choices, key=lambda m: abs(gr - r - moves[m][0]) + abs(gc - c - moves[m][1]))
        return f"move {best}"

    return act


def test_the_maze_marks_unvisited_neighbours_and_that_memory_is_what_solves_it():
    env = make_env("maze")
    first, _ = env.reset(3)
    assert first == "maze: at 2,0 goal 4,2 open ne new ne"
    env.step("move e")
    assert env.step("move w")[0] == "maze: at 2,0 goal 4,2 open ne new n"  # e is visited now
    assert env.reset(3)[0] == first  # a new episode forgets the walk
    tasks = range(HELD_OUT, HELD_OUT + 300)
    remembering = sum(play(env, t, walker(True))[0] for t in tasks) / len(tasks)
    forgetting = sum(play(env, t, walker(False))[0] for t in tasks) / len(tasks)
    assert remembering >= 0.9 and forgetting <= 0.85, (remembering, forgetting)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(list(ENVS)), task_id=st.integers(0, 2 * HELD_OUT), actions=st.lists(st.text(), max_size=6))
def test_no_text_crashes_an_environment(name, task_id, actions):
    env = make_env(name)
    env.reset(task_id)
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        assert isinstance(obs, str) and reward in (0.0, 1.0)
        if terminated or truncated:
            break


def test_react_replies_are_parsed_into_thought_and_action():
    assert parse_react("Thought: goal is +1,+0\nAction: move s") == ("goal is +1,+0", "move s")
    assert parse_react("move s\nmore") == ("", "move s")
    assert parse_react("") == ("", "")
