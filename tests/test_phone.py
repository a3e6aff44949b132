"""PhoneSim: tasks that carry information across apps, solved by the scripted expert, judged by a
verifier of the final state; malformed or wrong actions never crash it; held-out templates stay held out."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.agents.env import HELD_OUT
from selfevolve.agents.phone import HELD_OUT_TEMPLATES, PAGE, TEMPLATES, Phone


def play(env, task_id, policy):
    obs, _ = env.reset(task_id)
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return reward, env.steps, truncated


@pytest.mark.parametrize("difficulty", [0, 1, 3])
def test_the_expert_solves_every_template_and_held_out_templates_only_appear_held_out(difficulty):
    env = Phone(difficulty)
    seen = {"train": set(), "test": set()}
    for task_id in [*range(150), *range(HELD_OUT, HELD_OUT + 150)]:
        reward, steps, truncated = play(env, task_id, lambda obs: env.expert())
        assert reward == 1.0 and not truncated and steps >= 3, (task_id, env.instruction)
        seen["test" if task_id >= HELD_OUT else "train"].add(env.template)
    assert seen["train"] == set(TEMPLATES) and seen["test"] == set(TEMPLATES + HELD_OUT_TEMPLATES)


def test_the_verifier_reads_the_final_state_not_the_route():
    env = Phone(1)
    task = next(t for t in range(200) if env.reset(t) and env.template == "taxi")
    env.reset(task)
    address = env._address_in(env.last(env.goal["a"]))
    # straight to the taxi app with the right address: the route does not matter, the state does
    assert env.step("open taxi")[0].startswith("task: book a taxi")
    env.step(f"type f-dest {address}")
    obs, reward, terminated, *_ = env.step("tap b-request")
    assert reward == 1.0 and terminated and obs == "done: the task is complete"
    env.reset(task)
    env.step("open taxi")
    env.step("type f-dest 1 nowhere road")
    assert env.step("tap b-request")[1:3] == (0.0, True)  # a committed wrong answer ends it, unrewarded


def test_long_lists_scroll_and_only_widgets_on_screen_can_be_tapped():
    env = Phone(3)
    env.reset(4)
    env.step("open contacts")
    n = len(env.contacts)
    assert n > 2 * PAGE and f"entries 1-{PAGE} of {n}" in env.observe()
    obs, _, _, _, info = env.step(f"tap c-{n - 1}")  # not on the first page
    assert obs.startswith("invalid action.") and not info["valid"]
    for _ in range(n // PAGE):
        env.step("swipe down")
    obs, *_ = env.step(f"tap c-{n - 1}")
    assert "x-phone" in obs and env.screen == ("contacts", list(env.contacts)[-1])


def test_the_expert_recovers_when_the_agent_wanders_off():
    env = Phone(1)
    env.reset(11)
    for action in ["open shop", "type f-search mug", "back", "open notes"]:
        env.step(action)
    assert env.expert().endswith("Action: home")
    while not env.done:
        *_, reward, terminated, truncated, _ = env.step(env.expert())
    assert reward == 1.0 and terminated


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30), st.sampled_from(
    ["open taxi", "open shop", "tap b-send", "tap a-messages", "type f-text hi", "swipe down", "back", "home",
     "tap t-0", "tap c-99", "type b-send x", "open", "tap", "type f-dest", "swipe sideways"])), max_size=30),
    st.integers(0, 2_000_100))
def test_no_action_sequence_crashes_the_phone(actions, task_id):
    env = Phone(1)
    env.reset(task_id)
    for action in actions:
        if env.done:
            break
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and reward in (0.0, 1.0)
        assert info["valid"] or obs.startswith("invalid action. use:")
