"""Shortcuts and tips (Mobile-Agent-E's memory): validation rejects bad shortcuts, calls expand or say why
not, mining from successful PhoneSim episodes finds reusable generalised sequences that run on new
tasks, and recurring failures become tips."""

import pytest

from selfevolve.agents.experience import Shortcut, expand, mine_shortcuts, tips_from_failures, why_not
from selfevolve.agents.phone import APPS, Phone

VERBS = {"open", "tap", "type", "swipe", "back", "home"}
SCREENS = {"home", *APPS}
GOOD = Shortcut("text_contact", ("who", "text"), "home",
                ("open contacts", "tap c-{who}", "tap b-message", "type f-text {text}", "tap b-send"))


@pytest.mark.parametrize("bad, fragment", [
    (Shortcut("Text Contact", (), "home", ("open contacts", "tap c-1")), "not a lower-case identifier"),
    (Shortcut("text_contact", (), "home", ("open contacts", "tap c-1")), "exists"),
    (Shortcut("one", (), "home", ("open contacts",)), "at least two actions"),
    (Shortcut("elsewhere", (), "settings", ("open contacts", "tap c-1")), "is not a screen"),
    (Shortcut("fly", (), "home", ("open contacts", "fly away")), "does not start with"),
    (Shortcut("loose", ("who",), "home", ("open contacts", "tap c-{whom}")), "are not parameters"),
    (Shortcut("idle", ("who", "why"), "home", ("open contacts", "tap c-{who}")), "never used"),
])
def test_validation_rejects_bad_shortcuts_and_keeps_a_good_one(bad, fragment):
    kept = {GOOD.name: GOOD}
    assert fragment in why_not(bad, kept, VERBS, SCREENS)
    assert why_not(GOOD, {}, VERBS, SCREENS) is None


def test_a_call_expands_to_its_actions_or_says_why_not():
    assert expand(GOOD, ["3", "hello"], "home") == ["open contacts", "tap c-3", "tap b-message",
                                                    "type f-text hello", "tap b-send"]
    assert "starts from home, not contacts" in expand(GOOD, ["3", "hi"], "contacts")
    assert "takes 2 arguments, got 1" in expand(GOOD, ["3"], "home")


def episodes(env, tasks):
    out = []
    for t in tasks:
        env.reset(t)
        steps = []
        while not env.done:
            action = env.expert().split("Action: ")[1]
            steps.append((env.screen[0], action))
            _, reward, *_ = env.step(action)
        if reward == 1.0:
            out.append(steps)
    return out


def test_mining_successful_episodes_finds_shortcuts_that_run_on_new_tasks():
    env = Phone(1)
    mined = mine_shortcuts(episodes(env, range(60)), {}, VERBS, SCREENS, min_support=5)
    assert mined and all(why_not(s, {}, VERBS, SCREENS) is None for s in mined)
    reach = next(s for s in mined if s.actions == ("open contacts", "tap c-{p1}"))
    assert reach.precondition == "home" and reach.params == ("p1",)
    # used on a task it was not mined from: its actions are valid there and open the contact
    env.reset(1_000)
    actions = expand(reach, ["2"], env.screen[0])
    for action in actions:
        *_, info = env.step(action)
        assert info["valid"]
    assert env.screen == ("contacts", list(env.contacts)[2])


def test_recurring_failures_become_tips():
    failures = [("contacts", "tap c-12")] * 3 + [("contacts", "tap c-15"), ("home", "dance"), ("home", "dance")]
    tips = tips_from_failures(failures, min_count=3)
    assert len(tips) == 1 and tips[0].startswith("on contacts, 'tap' failed 4 times (tap c-12; tap c-15)")
