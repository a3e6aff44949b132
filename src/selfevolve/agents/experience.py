"""What an agent keeps from its own episodes (Mobile-Agent-E): shortcuts, reusable action sequences with a
precondition, and tips, lessons in words from recurring failures.

A model that writes its own shortcuts proposes them as text; a model too small to do that gets them
from the rule-based reflectors here: `mine_shortcuts` finds action sequences that recur across
successful episodes and generalises what varies between occurrences (a widget id, a typed text)
into parameters; `tips_from_failures` turns the invalid actions an agent keeps making on the same
screen into a sentence. Every shortcut is validated before it is kept (`why_not`): a new name,
actions the environment knows, parameters that are all used and only those, a precondition that
names a screen. `expand` turns a call into the actions it stands for, or says why it cannot.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{(\w+)\}")
NAME = re.compile(r"[a-z][a-z0-9_]{1,30}")
ID = re.compile(r"[a-z]+-\d+")


@dataclass(frozen=True)
class Shortcut:
    name: str
    params: tuple[str, ...]
    precondition: str  # the screen it starts from, e.g. "home"
    actions: tuple[str, ...]  # with {param} placeholders

    def __str__(self) -> str:
        args = ", ".join(self.params)
        return f"{self.name}({args}) from {self.precondition}: " + "; ".join(self.actions)


def why_not(shortcut: Shortcut, kept: dict[str, Shortcut], verbs: set[str], screens: set[str]) -> str | None:
    """Why the shortcut cannot be kept, or None if it can."""
    if not NAME.fullmatch(shortcut.name):
        return f"name {shortcut.name!r} is not a lower-case identifier"
    if shortcut.name in kept:
        return f"a shortcut named {shortcut.name!r} exists"
    if len(shortcut.actions) < 2:
        return "a shortcut needs at least two actions"
    if shortcut.precondition not in screens:
        return f"precondition {shortcut.precondition!r} is not a screen ({', '.join(sorted(screens))})"
    for action in shortcut.actions:
        if not action.split() or action.split()[0] not in verbs:
            return f"action {action!r} does not start with one of {', '.join(sorted(verbs))}"
    used = {p for action in shortcut.actions for p in PLACEHOLDER.findall(action)}
    if used - set(shortcut.params):
        return f"placeholders {sorted(used - set(shortcut.params))} are not parameters"
    if set(shortcut.params) - used:
        return f"parameters {sorted(set(shortcut.params) - used)} are never used"
    return None


def expand(shortcut: Shortcut, args: list[str], screen: str) -> list[str] | str:
    """The actions a call stands for, or why it cannot run here (wrong screen or arguments)."""
    if screen != shortcut.precondition:
        return f"{shortcut.name} starts from {shortcut.precondition}, not {screen}"
    if len(args) != len(shortcut.params):
        return f"{shortcut.name} takes {len(shortcut.params)} arguments, got {len(args)}"
    values = dict(zip(shortcut.params, args, strict=True))
    return [PLACEHOLDER.sub(lambda m: values[m.group(1)], action) for action in shortcut.actions]


def _generalise(occurrences: list[tuple[str, ...]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """One action sequence for several occurrences: each word that differs between them becomes a
    parameter, with the part all of them share kept (c-3, c-7 -> c-{p1})."""
    actions, params = [], []
    for i, first in enumerate(occurrences[0]):
        words = []
        for j, word in enumerate(first.split()):
            column = [o[i].split()[j] if len(o[i].split()) > j else "" for o in occurrences]
            if len(set(column)) == 1 and not ID.fullmatch(word):  # an id is the screen's, never the shortcut's
                words.append(word)
                continue
            prefix = _common_prefix(column)
            params.append(f"p{len(params) + 1}")
            words.append(prefix + "{" + params[-1] + "}")
        actions.append(" ".join(words))
    return tuple(actions), tuple(params)


def _common_prefix(words: list[str]) -> str:
    prefix = words[0]
    for w in words[1:]:
        while not w.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[:prefix.rfind("-") + 1]  # up to its last dash: c-3, c-7 and t-5, t-5 -> c-, t-


def mine_shortcuts(episodes: list[list[tuple[str, str]]], kept: dict[str, Shortcut], verbs: set[str],
                   screens: set[str], min_support: int = 3, lengths: tuple[int, ...] = (2, 3),
                   min_confidence: float = 0.0) -> list[Shortcut]:
    """Shortcuts from successful episodes, each a list of (screen before the action, action): sequences of
    `lengths` actions with the same verbs from the same screen in at least `min_support` episodes, which
    follow their first action from that screen at least `min_confidence` of the times it was taken (so
    that the first action alone can call them), generalised, named after their verbs and screen,
    validated; the longest, most supported first."""
    found: dict[tuple, list[tuple[str, ...]]] = {}
    windows, starts = Counter(), Counter((screen, _shape(a)) for episode in episodes for screen, a in episode)
    for episode in episodes:
        seen_here = set()
        for n in lengths:
            for i in range(len(episode) - n + 1):
                window = episode[i:i + n]
                shape = (window[0][0], tuple(_shape(a) for _, a in window))
                windows[shape] += 1
                if shape not in seen_here:
                    seen_here.add(shape)
                    found.setdefault(shape, []).append(tuple(a for _, a in window))
    found = {shape: o for shape, o in found.items() if windows[shape] >= min_confidence * starts[shape[0], shape[1][0]]}
    out: list[Shortcut] = []
    ranked = sorted(found.items(), key=lambda kv: (-len(kv[0][1]), -len(kv[1]), kv[0]))
    for (screen, shape), occurrences in ranked:
        if len(occurrences) < min_support:
            continue
        actions, params = _generalise(occurrences)
        taken = {*kept, *(s.name for s in out)}
        base = re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", " ".join([screen, *shape]).lower())).strip("_")[:27]
        name = next(n for n in (base, *(f"{base}_{k}" for k in range(2, 99))) if n not in taken)
        candidate = Shortcut(name, params, screen, actions)
        if why_not(candidate, {**kept, **{s.name: s for s in out}}, verbs, screens) is None:
            out.append(candidate)
    return out


def _shape(action: str) -> str:
    """An action with its arguments' varying parts blurred: tap c-3 -> tap c-*, an entry tapped by its text
    (tap kai, tap team sync) -> tap *, open contacts stays."""
    words = action.split()
    if words[0] == "tap" and len(words) > 1 and "-" not in words[1]:
        return "tap *"
    return " ".join([words[0], *(re.sub(r"\d+", "*", w) if "-" in w else w for w in words[1:2])])


def recurring_failures(failures: list[tuple[str, str]], min_count: int = 3) -> list[tuple[tuple[str, str], int,
                                                                                         list[str]]]:
    """Each (screen, verb) an agent misused at least `min_count` times among (screen, invalid action) pairs,
    most frequent first, with the count and up to three of the attempts."""
    def verb(action: str) -> str:
        return action.split()[0] if action.split() else "(nothing)"

    counts = Counter((screen, verb(action)) for screen, action in failures)
    return [(key, n, sorted({a for s, a in failures if (s, verb(a)) == key})[:3])
            for key, n in counts.most_common() if n >= min_count]


def tip(key: tuple[str, str], n: int, examples: list[str]) -> str:
    """A recurring failure as a lesson in words."""
    screen, verb = key
    return (f"on {screen}, '{verb}' failed {n} times ({'; '.join(examples)}): only tap ids shown on the current "
            f"screen, swipe to bring list entries into view, and check the action's form")


def tips_from_failures(failures: list[tuple[str, str]], min_count: int = 3) -> list[str]:
    """Lessons from (screen, invalid action) pairs: one sentence per recurring (screen, verb)."""
    return [tip(*found) for found in recurring_failures(failures, min_count)]
