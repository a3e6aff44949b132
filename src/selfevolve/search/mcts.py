"""Monte Carlo Tree Search over reasoning steps whose code must run (rStar-Math's search).

Guan et al. (2025), "rStar-Math: Small LLMs Can Master Math Reasoning with Self-Evolved Deep
Thinking", arXiv:2501.04519

A node is a partial solution: the steps so far, and the state they leave (for wordmath, the
names their code defined). What a step is, when a solution has ended and whether it is right is
the task's `StepFormat`; the search itself knows nothing of any task. One rollout per tree:
select from the root by UCT down to a node not yet expanded, expand it (the policy proposes
`width` next steps; a step the format refuses is pruned), move to the best new child, and repeat
until a step gives the answer or the depth limit is reached; then back the leaf's value up the
path. A confident policy often proposes the same step `width` times; with `widen` > 1 such a node
is expanded again once its few children have all been tried (progressive widening), so a search
is not stuck with the one step the policy likes best.

All trees advance together, so each expansion is one batched call of the sampler over every
tree's current node. The leaf value is the terminal reward (+1 if the answer equals the gold
one, -1 if not) when the gold answer is known, and a reward model's score otherwise; a reward
model also gives every new node its initial value (PPM-guided search).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from selfevolve.models.policy import Tokenizer
from selfevolve.models.sampler import generate
from selfevolve.sandbox import StepError
from selfevolve.tasks.base import Problem

# (problems, partial solutions) -> values in [-1, 1], one per pair
ValueFn = Callable[[list[Problem], list[str]], np.ndarray]


class StepFormat(Protocol):
    """One line of a solution, as a task reads it: what it leaves, and when and how a solution ends."""

    def start(self, problem: Problem) -> Any:
        """The state before the first step."""

    def run(self, line: str, state: Any) -> Any:
        """The state after `line` (a new object; `state` is not changed); StepError if it is refused."""

    def is_final(self, state: Any) -> bool:
        """Has the solution given its answer?"""

    def is_correct(self, problem: Problem, state: Any) -> bool:
        """Is the answer of a final state the problem's gold answer?"""


@dataclass
class MCTSConfig:
    rollouts: int = 16
    """MCTS rollouts per problem (each ends at a terminal step or the depth limit)."""
    width: int = 4
    """Candidate next steps sampled when a node is expanded."""
    max_depth: int = 8
    """Most steps in a solution."""
    c_uct: float = 1.0
    """Exploration constant of UCT."""
    widen: int = 1
    """Times a node may be expanded: a node whose proposals gave fewer than `width` distinct steps
    that run is expanded again, once every child has been tried, up to this many times
    (progressive widening; 1: never again)."""
    temperature: float = 1.0
    """Sampling temperature of the proposed steps (and of sampled solutions)."""
    max_step_tokens: int = 40
    """Tokens a step may take before it counts as unfinished (and is pruned)."""

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()  # a recipe's config may add these fields to its own
        for name in ("rollouts", "width", "max_depth", "max_step_tokens", "widen"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.c_uct < 0 or self.temperature <= 0:
            raise ValueError("c_uct must be >= 0 and temperature > 0")


@dataclass(eq=False)
class Node:
    step: str  # this step's line; "" at the root
    state: Any  # what the steps so far leave, as the step format keeps it (wordmath: the names defined)
    parent: Node | None = None
    depth: int = 0
    children: list[Node] = field(default_factory=list)
    expanded: bool = False
    expansions: int = 0
    visits: int = 0
    value_sum: float = 0.0
    prior: float = 0.0  # initial value: a reward model's score, 0 without one
    terminal: bool = False
    reward: float = 0.0  # the terminal's value: +1 / -1 against the gold answer, or a reward model's

    @property
    def q(self) -> float:
        return self.value_sum / self.visits if self.visits else self.prior

    def path(self) -> list[Node]:
        """The steps from the first one down to this node (the root excluded)."""
        out, node = [], self
        while node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def solution(self) -> str:
        return "\n".join(n.step for n in self.path())

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass
class Tree:
    problem: Problem
    root: Node
    tokens: int = 0  # generated by the policy for this tree
    pruned: int = 0  # proposed steps the step format refused
    # after each rollout: (value, solution, tokens so far) of the best terminal found yet
    answers_after: list[tuple[float, str, int]] = field(default_factory=list)

    def terminals(self) -> list[Node]:
        return [n for n in self.root.walk() if n.terminal and n.step]


def uct_child(node: Node, c: float) -> Node:
    """The child maximising q + c * sqrt(ln(N + 1) / (n + 1)); ties to the first proposed."""
    log_n = math.log(node.visits + 1)
    return max(node.children, key=lambda ch: ch.q + c * math.sqrt(log_n / (ch.visits + 1)))


def wants_more(node: Node, width: int, widen: int) -> bool:
    """Progressive widening: too few distinct children, each already tried, and expansions left."""
    return node.expansions < widen and len(node.children) < width and all(c.visits for c in node.children)


def open_node(node: Node, max_depth: int, width: int = 1, widen: int = 1) -> bool:
    """Is this node still to be (re-)expanded by a rollout that reaches it?"""
    return (not node.terminal and node.depth < max_depth
            and (not node.expanded or wants_more(node, width, widen)))


def select(root: Node, c: float, max_depth: int, width: int = 1, widen: int = 1) -> Node:
    """Down from the root by UCT to the first node still open to expansion, or to a leaf."""
    node = root
    while node.children and not node.terminal and node.depth < max_depth:
        if open_node(node, max_depth, width, widen):
            break
        node = uct_child(node, c)
    return node


def backprop(leaf: Node, value: float) -> None:
    node: Node | None = leaf
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node = node.parent


def expand(trees: list[Tree], nodes: list[Node], policy, tok: Tokenizer, fmt: StepFormat, cfg: MCTSConfig,
           gen: torch.Generator, value_fn: ValueFn | None, use_gold: bool, serial: bool = False) -> None:
    """Give every node up to `width` children: distinct steps the policy proposes that the format accepts.
    One batched sampler call for all nodes (one call per node when `serial`, for comparison)."""
    prompts = [tok.encode(t.problem.prompt + "".join(n.step + "\n" for n in node.path()))
               for t, node in zip(trees, nodes, strict=True)]
    newlines = line_end_ids(tok)
    stops = (*newlines, tok.eos_id)
    if serial:
        parts = [generate(policy, [p], cfg.max_step_tokens, stop_id=stops, num_samples=cfg.width,
                          temperature=cfg.temperature, generator=gen) for p in prompts]
        rows = [row for part in parts for row in part.tokens]
    else:
        out = generate(policy, prompts, cfg.max_step_tokens, stop_id=stops, num_samples=cfg.width,
                       temperature=cfg.temperature, generator=gen)
        rows = list(out.tokens)
    fresh: list[tuple[Tree, Node]] = []
    for i, (tree, node) in enumerate(zip(trees, nodes, strict=True)):
        node.expanded = True
        node.expansions += 1
        seen = {c.step for c in node.children}
        for row in rows[i * cfg.width:(i + 1) * cfg.width]:
            ids = row.tolist()
            ended = next((j for j, t in enumerate(ids) if t in stops), None)
            tree.tokens += len(ids) if ended is None else ended + 1
            if ended is None:
                tree.pruned += 1  # never finished its line
                continue
            # a subword token may hold the newline with text before it ("s.\n"): the line ends there
            line = tok.decode(ids[:ended + (ids[ended] != tok.eos_id)]).split("\n")[0]
            if line in seen:
                continue
            seen.add(line)
            try:
                state = fmt.run(line, node.state)
            except StepError:
                tree.pruned += 1
                continue
            child = Node(line, state, node, node.depth + 1)
            child.terminal = fmt.is_final(state) or ids[ended] == tok.eos_id
            if child.terminal and use_gold:
                child.reward = 1.0 if fmt.is_final(state) and fmt.is_correct(tree.problem, state) else -1.0
            node.children.append(child)
            fresh.append((tree, child))
    if value_fn is not None and fresh:
        values = value_fn([t.problem for t, _ in fresh], [c.solution() for _, c in fresh])
        for (_, child), v in zip(fresh, values, strict=True):
            child.prior = float(v)
            if child.terminal and not use_gold:
                child.reward = float(v)


_LINE_ENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> its line-end ids


def line_end_ids(tok: Tokenizer) -> tuple[int, ...]:
    """Every token id whose text holds a newline: one for a character tokenizer, many for a subword
    one (where "\n" merges with what stands beside it)."""
    if tok not in _LINE_ENDS:
        _LINE_ENDS[tok] = tuple(i for i in range(tok.vocab_size) if "\n" in tok.decode([i], stop_at_eos=False))
    return _LINE_ENDS[tok]


def search(policy, tok: Tokenizer, fmt: StepFormat, problems: list[Problem], cfg: MCTSConfig,
           gen: torch.Generator, value_fn: ValueFn | None = None, use_gold: bool = True, serial: bool = False,
           on_rollout: Callable[[], None] | None = None) -> list[Tree]:
    """`cfg.rollouts` rollouts on every problem's tree, all trees advancing together."""
    trees = [Tree(p, Node("", fmt.start(p))) for p in problems]
    for _ in range(cfg.rollouts):
        current = [select(t.root, cfg.c_uct, cfg.max_depth, cfg.width, cfg.widen) for t in trees]
        while True:
            todo = [i for i, n in enumerate(current) if open_node(n, cfg.max_depth, cfg.width, cfg.widen)]
            if todo:
                expand([trees[i] for i in todo], [current[i] for i in todo], policy, tok, fmt, cfg, gen,
                       value_fn, use_gold, serial)
            moved = False
            for i, node in enumerate(current):
                if node.children and not node.terminal and node.depth < cfg.max_depth:
                    current[i] = uct_child(node, cfg.c_uct)
                    moved = True
            if not moved:
                break
        for tree, leaf in zip(trees, current, strict=True):
            backprop(leaf, leaf.reward if leaf.terminal else -1.0)  # a dead end or the depth limit: a failure
            best = max(tree.terminals(), key=lambda n: n.reward, default=None)
            tree.answers_after.append((best.reward, best.solution(), tree.tokens) if best else (-1.0, "", tree.tokens))
        if on_rollout:
            on_rollout()
    return trees


def solved(node: Node) -> bool:
    """Does a correct terminal lie at or below this node?"""
    return any(n.terminal and n.reward > 0 for n in node.walk())


def best_trajectories(tree: Tree, k: int) -> list[list[Node]]:
    """Up to k correct root-to-terminal paths, highest mean Q first (rStar's choice of SFT data)."""
    paths = [t.path() for t in tree.terminals() if t.reward > 0]
    paths.sort(key=lambda p: -float(np.mean([n.q for n in p])))
    return paths[:k]


def preference_pairs(tree: Tree, per_side: int = 2) -> list[tuple[str, str]]:
    """(better, worse) partial solutions sharing a parent: the `per_side` highest-Q children that lead
    to a correct answer against the `per_side` lowest-Q ones that do not (rStar-Math's PPM data).
    A child that leaves the state a correct sibling leaves (`bys: n = n + 3` beside `buys: n = n + 3`)
    is no worse, only unluckier later, and is never a `worse` step."""
    pairs = []
    for parent in tree.root.walk():
        tried = [c for c in parent.children if c.visits]
        right = [c for c in tried if solved(c)]
        good = sorted(right, key=lambda c: -c.q)[:per_side]
        bad = sorted((c for c in tried if not solved(c) and all(c.state != g.state for g in right)),
                     key=lambda c: c.q)[:per_side]
        pairs += [(g.solution(), b.solution()) for g in good for b in bad]
    return pairs
