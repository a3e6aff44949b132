"""Text environments with a gymnasium-style protocol, procedural tasks and scripted experts.

    obs, info = env.reset(task_id)          # one task per integer id; ids >= HELD_OUT are held out
    obs, reward, terminated, truncated, info = env.step("move e")
    env.expert()                            # the scripted expert's next "Thought: ...\\nAction: ..."

Observations are short text that holds what the agent needs to act (the maze marks the neighbours
not visited yet, its memory of the walk), so a small policy can act on the current observation
alone. Reward is 1 on success and 0 otherwise. An action that does not parse costs a step and
returns a penalty observation naming the valid actions: never an exception. Four environments, each
needing several steps: `maze` (walk to a goal around walls), `guess` (find a secret number from
higher / lower feedback, like Wordle's feedback loop), `craft` (gather and craft along a recipe
tree) and `calc` (evaluate an expression with a calculator tool, one operation per call).
"""

from __future__ import annotations

import re
import zlib
from collections import deque

import numpy as np

HELD_OUT = 1_000_000  # task ids from here on are held out from training: the test split
DEV = 2_000_000  # and from here on, the dev split (for choosing settings without touching test)


def split_of(task_id: int) -> str:
    return "dev" if task_id >= DEV else "test" if task_id >= HELD_OUT else "train"


def parse_react(text: str) -> tuple[str, str]:
    """(thought, action) of a ReAct reply "Thought: ...\\nAction: ..."; a bare line counts as the action."""
    thought = re.search(r"Thought:\s*(.*)", text)
    action = re.search(r"Action:\s*(.*)", text)
    return (thought.group(1).strip() if thought else "",
            action.group(1).strip() if action else text.strip().splitlines()[0] if text.strip() else "")


class TextEnv:
    """The shared step logic: parsing, penalties, truncation. Subclasses hold one task's state."""

    name = ""
    actions = ""  # the valid actions, shown in penalty observations
    default_difficulty = 0
    max_steps = 10

    def __init__(self, difficulty: int | None = None) -> None:
        self.difficulty = self.default_difficulty if difficulty is None else difficulty
        self.task_id, self.steps, self.done = -1, 0, True

    def reset(self, seed: int) -> tuple[str, dict]:
        """Start task `seed` (its task id): the same id always gives the same task."""
        self.task_id, self.steps, self.done = int(seed), 0, False
        self.new_task(np.random.default_rng([zlib.crc32(self.name.encode()), self.difficulty, self.task_id]))
        return self.observe(), {"task_id": self.task_id, "split": split_of(self.task_id)}

    def state_key(self) -> str:
        """The whole task as it stands after reset, as text: two task ids with the same key are the
        same task (small mazes repeat), so a held-out set can be kept apart from training."""
        state = {k: v for k, v in vars(self).items() if k not in ("task_id", "steps", "done")}
        return repr(sorted((k, v.tolist() if isinstance(v, np.ndarray) else sorted(v) if isinstance(v, set) else v)
                           for k, v in state.items()))

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self.done:
            raise RuntimeError("step() after the episode ended; call reset()")
        self.steps += 1
        _, action = parse_react(action)
        words = action.lower().split()
        result = self.act(words[0], words[1:]) if words else None
        if result is None:
            obs, reward, terminated = f"invalid action. {self.actions}\n{self.observe()}", 0.0, False
        else:
            obs, reward, terminated = result
        truncated = not terminated and self.steps >= self.max_steps
        self.done = terminated or truncated
        return obs, reward, terminated, truncated, {"task_id": self.task_id, "valid": result is not None}

    # -- what each environment defines ----------------------------------------------------------
    def new_task(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def observe(self) -> str:
        raise NotImplementedError

    def act(self, verb: str, args: list[str]) -> tuple[str, float, bool] | None:
        """Apply a parsed action; None when it is malformed."""
        raise NotImplementedError

    def expert(self) -> str:
        raise NotImplementedError


def _int(word: str) -> int | None:
    return int(word) if re.fullmatch(r"-?\d{1,9}", word) else None


class Maze(TextEnv):
    """A grid with walls; the agent sees its cell, the goal, which neighbours are open and which of
    those it has not been to yet. The walls further away stay hidden, so the marks are the agent's
    memory of its walk: a walker that reads only this text and takes the new cell nearest the goal
    solves 97% of held-out mazes, one that ignores the marks 74% (tests/test_env.py)."""

    name, actions = "maze", "use: move n|e|s|w"
    default_difficulty = 5  # grid side
    MOVES = {"n": (-1, 0), "e": (0, 1), "s": (1, 0), "w": (0, -1)}

    @property
    def max_steps(self) -> int:
        return 3 * self.difficulty

    def new_task(self, rng: np.random.Generator) -> None:
        n = self.difficulty
        while True:
            self.walls = rng.random((n, n)) < 0.2
            cells = np.argwhere(~self.walls)
            if len(cells) < 2:
                continue
            a, b = rng.choice(len(cells), 2, replace=False)
            self.pos, self.goal = tuple(map(int, cells[a])), tuple(map(int, cells[b]))
            self.visited = {self.pos}
            path = self._path()
            if path is not None and len(path) >= 3:
                return

    def _open(self, cell: tuple[int, int]) -> bool:
        r, c = cell
        return 0 <= r < self.difficulty and 0 <= c < self.difficulty and not self.walls[r, c]

    def _path(self) -> list[str] | None:
        """Moves of a shortest path from pos to goal (breadth-first search), None if there is none."""
        back: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {self.pos: None}
        queue = deque([self.pos])
        while queue:
            cell = queue.popleft()
            if cell == self.goal:
                moves = []
                while back[cell] is not None:
                    cell, move = back[cell]
                    moves.append(move)
                return moves[::-1]
            for move, (dr, dc) in self.MOVES.items():
                nxt = (cell[0] + dr, cell[1] + dc)
                if self._open(nxt) and nxt not in back:
                    back[nxt] = (cell, move)
                    queue.append(nxt)
        return None

    def observe(self) -> str:
        near = [(m, (self.pos[0] + dr, self.pos[1] + dc)) for m, (dr, dc) in self.MOVES.items()]
        open_ = "".join(m for m, cell in near if self._open(cell))
        new = "".join(m for m, cell in near if self._open(cell) and cell not in self.visited) or "-"
        return f"maze: at {self.pos[0]},{self.pos[1]} goal {self.goal[0]},{self.goal[1]} open {open_} new {new}"

    def act(self, verb, args):
        if verb != "move" or len(args) != 1 or args[0] not in self.MOVES:
            return None
        dr, dc = self.MOVES[args[0]]
        nxt = (self.pos[0] + dr, self.pos[1] + dc)
        if not self._open(nxt):
            return f"blocked.\n{self.observe()}", 0.0, False
        self.pos = nxt
        self.visited.add(nxt)
        if self.pos == self.goal:
            return "reached the goal", 1.0, True
        return self.observe(), 0.0, False

    def expert(self) -> str:
        dr, dc = self.goal[0] - self.pos[0], self.goal[1] - self.pos[1]
        return f"Thought: goal is {dr:+d},{dc:+d}\nAction: move {self._path()[0]}"


class Guess(TextEnv):
    """Find a secret number; each guess is answered higher or lower (Wordle's feedback loop)."""

    name, actions = "guess", "use: guess N"
    default_difficulty = 30  # the secret's range is up to this wide, within 1..2 x difficulty

    @property
    def max_steps(self) -> int:
        return int(np.ceil(np.log2(self.difficulty + 1))) + 2

    def new_task(self, rng):
        self.lo = int(rng.integers(1, self.difficulty + 1))
        self.hi = self.lo + int(rng.integers(self.difficulty // 4, self.difficulty))
        self.secret = int(rng.integers(self.lo, self.hi + 1))

    def observe(self) -> str:
        return f"guess: secret in {self.lo}-{self.hi}"

    def act(self, verb, args):
        if verb != "guess" or len(args) != 1 or (g := _int(args[0])) is None:
            return None
        if g == self.secret:
            return f"{g} is right", 1.0, True
        if g < self.secret:
            self.lo = max(self.lo, g + 1)
            return f"{g} is too low. {self.observe()}", 0.0, False
        self.hi = min(self.hi, g - 1)
        return f"{g} is too high. {self.observe()}", 0.0, False

    def expert(self) -> str:
        mid = (self.lo + self.hi) // 2
        return f"Thought: middle of {self.lo}-{self.hi}\nAction: guess {mid}"


RAW = ("wood", "stone", "iron", "wool", "sand", "clay", "reed", "coal")
MADE = ("stick", "plank", "rope", "glass", "brick", "pick", "sword", "bed", "lamp", "cart", "axe", "boat")


class Craft(TextEnv):
    """Make a target item along a recipe tree: gather raw materials, craft the intermediates."""

    name, actions = "craft", "use: gather ITEM | craft ITEM"
    default_difficulty = 1  # crafted ingredients of the target (0-2); each needs two raw ones

    @property
    def max_steps(self) -> int:
        return 2 * (3 + 3 * self.difficulty) + 2

    def new_task(self, rng):
        made = [str(x) for x in rng.choice(MADE, 1 + self.difficulty, replace=False)]
        self.target, parts = made[0], made[1:]
        raw = [str(x) for x in rng.choice(RAW, 2, replace=False)]
        self.recipes = {self.target: parts + raw[: 2 - len(parts)]}
        for part in parts:
            self.recipes[part] = [str(x) for x in rng.choice(RAW, 2, replace=False)]
        self.inventory: list[str] = []

    def observe(self) -> str:
        recipes = ", ".join(f"{k}={'+'.join(v)}" for k, v in self.recipes.items())
        return f"craft: make {self.target}. {recipes}. have: {' '.join(self.inventory) or 'nothing'}"

    def act(self, verb, args):
        if len(args) != 1 or verb not in ("gather", "craft"):
            return None
        item = args[0]
        if verb == "gather":
            if item not in RAW:
                return f"{item} cannot be gathered.\n{self.observe()}", 0.0, False
            self.inventory.append(item)
            return self.observe(), 0.0, False
        needs = self.recipes.get(item)
        if needs is None or any(self.inventory.count(x) < needs.count(x) for x in set(needs)):
            return f"cannot craft {item}.\n{self.observe()}", 0.0, False
        for x in needs:
            self.inventory.remove(x)
        self.inventory.append(item)
        if item == self.target:
            return f"made {item}", 1.0, True
        return self.observe(), 0.0, False

    def _missing(self, item: str, have: list[str]) -> str | None:
        """The next action (as "verb item") towards `item`, consuming from `have`; None if held."""
        if item in have:
            have.remove(item)
            return None
        if item in RAW:
            return f"gather {item}"
        for part in self.recipes[item]:
            nxt = self._missing(part, have)
            if nxt is not None:
                return nxt
        return f"craft {item}"

    def expert(self) -> str:
        action = self._missing(self.target, list(self.inventory))
        return f"Thought: need {action.split()[1]}\nAction: {action}"


class Calc(TextEnv):
    """Evaluate an expression with a calculator tool that does one operation per call."""

    name, actions = "calc", "use: calc A+B | calc A*B | answer N"
    default_difficulty = 3  # operations

    @property
    def max_steps(self) -> int:
        return self.difficulty + 3

    def new_task(self, rng):
        numbers = [str(int(x)) for x in rng.integers(2, 10, self.difficulty + 1)]
        ops = [str(x) for x in rng.choice(["+", "*"], self.difficulty)]
        self.tokens = [t for pair in zip(numbers, ops + [""], strict=True) for t in pair if t]
        self.value = sum(eval_product(term) for term in "".join(self.tokens).split("+"))

    def observe(self) -> str:
        return f"calc: {''.join(self.tokens)}"

    def _next_op(self) -> int:
        """Index of the operator to apply next: the first *, else the first +."""
        ops = [i for i, t in enumerate(self.tokens) if t in "+*"]
        return next((i for i in ops if self.tokens[i] == "*"), ops[0])

    def act(self, verb, args):
        if verb == "answer" and len(args) == 1 and (n := _int(args[0])) is not None:
            right = n == self.value  # the tool is a help, not a requirement
            return ("right" if right else "wrong"), float(right), True
        if verb != "calc" or len(args) != 1:
            return None
        m = re.fullmatch(r"(\d{1,9})([+*])(\d{1,9})", args[0])
        if m is None:
            return None
        a, op, b = m.groups()
        value = int(a) + int(b) if op == "+" else int(a) * int(b)
        i = self._next_op() if len(self.tokens) > 1 else -1
        if i > 0 and self.tokens[i - 1 : i + 2] == [a, op, b]:
            self.tokens[i - 1 : i + 2] = [str(value)]
            return f"= {value}. {self.observe()}", 0.0, False
        return f"= {value}, not the next step. {self.observe()}", 0.0, False

    def expert(self) -> str:
        if len(self.tokens) == 1:
            return f"Thought: done\nAction: answer {self.tokens[0]}"
        i = self._next_op()
        a, op, b = self.tokens[i - 1 : i + 2]
        return f"Thought: first {a}{op}{b}\nAction: calc {a}{op}{b}"


def eval_product(term: str) -> int:
    out = 1
    for factor in term.split("*"):
        out *= int(factor)
    return out


ENVS: dict[str, type[TextEnv]] = {cls.name: cls for cls in (Maze, Guess, Craft, Calc)}


def state_keys(env: TextEnv, task_ids) -> set[str]:
    """The tasks these ids give, as `state_key`s."""
    keys = set()
    for task_id in task_ids:
        env.reset(task_id)
        keys.add(env.state_key())
    return keys


def unseen_ids(env: TextEnv, seen: set[str], first: int, n: int) -> tuple[list[int], int]:
    """The first `n` task ids from `first` on whose task is none of `seen` (held-out means unseen: small
    tasks repeat across ids), and how many were skipped."""
    out, task_id, skipped = [], first, 0
    while len(out) < n:
        env.reset(task_id)
        if env.state_key() in seen:
            skipped += 1
        else:
            out.append(task_id)
        task_id += 1
    return out, skipped


def make_env(name: str, difficulty: int | None = None) -> TextEnv:
    if name not in ENVS:
        raise ValueError(f"unknown environment {name!r}; environments: {', '.join(ENVS)}")
    return ENVS[name](difficulty)
