"""PhoneSim and WebSim: tasks over apps and sites, solved by the scripted expert, judged by a verifier of
the final state; malformed or wrong actions never crash them; held-out templates stay held out."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfevolve.agents import phone, web
from selfevolve.agents.env import HELD_OUT
from selfevolve.agents.phone import PAGE, Phone
from selfevolve.agents.web import Web

ENVS = {"phone": (Phone, phone), "web": (Web, web)}


def play(env, task_id, policy):
    obs, _ = env.reset(task_id)
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        if terminated or truncated:
            return reward, env.steps, truncated


@pytest.mark.parametrize("name", ENVS)
@pytest.mark.parametrize("difficulty", [0, 1, 3])
def test_the_expert_solves_every_template_and_held_out_templates_only_appear_held_out(name, difficulty):
    cls, module = ENVS[name]
    env = cls(difficulty)
    seen = {"train": set(), "test": set()}
    for task_id in [*range(150), *range(HELD_OUT, HELD_OUT + 150)]:
        reward, steps, truncated = play(env, task_id, lambda obs: env.expert())
        assert reward == 1.0 and not truncated and steps >= 3, (task_id, env.instruction)
        seen["test" if task_id >= HELD_OUT else "train"].add(env.template)
    assert seen["train"] == set(module.TEMPLATES)
    assert seen["test"] == set(module.TEMPLATES + module.HELD_OUT_TEMPLATES)


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
     "tap t-0", "tap c-99", "type b-send x", "open", "tap", "type f-dest", "swipe sideways", "click l-forum",
     "click t-0", "click next", "click prev", "type f-reply x", "click post", "click l-admin", "click u-0",
     "type f-role admin", "click save", "click l-kitchen", "click p-0", "click add", "click checkout",
     "click empty", "click x-price", "type f-active no"])), max_size=30),
    st.integers(0, 2_000_100), st.sampled_from(list(ENVS)))
def test_no_action_sequence_crashes_an_app_environment(actions, task_id, name):
    env = ENVS[name][0](1)
    env.reset(task_id)
    for action in actions:
        if env.done:
            break
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and reward in (0.0, 1.0)
        assert info["valid"] or obs.startswith("invalid action. use:")


def test_the_web_verifier_reads_the_site_and_long_lists_page():
    env = Web(3)
    task = next(t for t in range(200) if env.reset(t) and env.template == "cheapest")
    env.reset(task)
    category = env.goal["category"]
    rows = [k for k, p in enumerate(env.products) if p["category"] == category]
    assert len(rows) > web.PAGE  # the cheapest may be on a later page
    env.step(f"click l-{category}")
    assert "[next] link" in env.observe() and f"[p-{rows[-1]}]" not in env.observe()
    dearest = max(rows, key=lambda k: env.products[k]["price"])
    for _ in range(rows.index(dearest) // web.PAGE):
        env.step("click next")
    env.step(f"click p-{dearest}")
    env.step("click add")
    assert env.step("click checkout")[1:3] == (0.0, True)  # bought, but not the cheapest
    env.reset(task)
    assert env.step("click checkout")[0].startswith("invalid action.")  # not on this page


def test_a_team_task_takes_one_edit_per_member_and_only_the_last_ends_it():
    env = Web(1)
    task = next(t for t in range(HELD_OUT, HELD_OUT + 300) if env.reset(t) and env.template == "team"
                and len([u for u in env.users if u["team"] == env.goal["team"]]) >= 2)
    env.reset(task)
    ends = []
    while not env.done:
        action = env.expert().split("Action: ")[1]
        _, reward, terminated, _, _ = env.step(action)
        if action == "click save":
            ends.append(terminated)
    assert ends[-1] and not any(ends[:-1]) and len(ends) >= 2 and reward == 1.0


def test_a_screen_is_drawn_with_one_row_per_widget(tmp_path):
    from selfevolve.agents.screens import ROW, render

    env = Web(1)
    env.reset(5)
    obs = env.step("click l-forum")[0]
    path = render(obs, tmp_path / "web.png", device="web")
    assert path.stat().st_size > 5_000 and path.read_bytes()[:4] == b"\x89PNG"
    assert len([line for line in obs.split("\n") if ROW.match(line)]) == len(env.elements())
    phone = Phone(1)
    phone.reset(5)
    assert render(phone.observe(), tmp_path / "phone.png").stat().st_size > 5_000


@pytest.mark.parametrize("name", ENVS)
def test_an_episode_replays_screen_by_screen_to_the_outcome_it_had(name, tmp_path):
    from selfevolve.agents.screens import draw_episode, replay

    env = ENVS[name][0](1)
    env.reset(7)
    solution, first = env.solution(), env.observe()
    env.step(solution[0])  # replay starts the task again, whatever state the environment is in
    pages, done = replay(env, 7, solution, lambda a: a)
    assert done and len(pages) == len(solution) + 1 and [a for _, a in pages] == [*solution, ""]
    assert pages[0][0] == first and not replay(env, 7, solution[:-1], lambda a: a)[1]  # the commit is what finishes
    assert not replay(env, 7, ["no such action"] * 3, lambda a: None)[1]
    # drawn: the first `limit` screens and the last, in order
    pngs = draw_episode(pages, done, env.template, tmp_path, "ex", "web" if name == "web" else "phone", limit=2)
    assert [p.name for p in pngs] == ["example-ex-00.png", "example-ex-01.png", f"example-ex-{len(pages) - 1:02d}.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
