"""MCTS over steps: UCT, back-propagation and the data a tree gives, on hand-built trees; and a real search."""

import math

import numpy as np
import pytest
import torch

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.sandbox import run_step
from selfevolve.search import mcts
from selfevolve.search.mcts import MCTSConfig, Node, Tree, backprop, search, select, uct_child
from selfevolve.tasks.wordmath import WordMathSteps, WordMathTask, parse_step


def child(parent: Node, step: str, terminal: bool = False, reward: float = 0.0) -> Node:
    names = run_step(parse_step(step)[1], parent.state) if ": " in step else {}
    node = Node(step, names, parent, parent.depth + 1, terminal=terminal, reward=reward)
    parent.children.append(node)
    parent.expanded, parent.expansions = True, 1
    return node


def test_backprop_adds_the_value_along_the_path_and_q_is_the_mean():
    root = Node("", {})
    a = child(root, "a: x = 1")
    b = child(a, "b: answer = x", terminal=True, reward=1.0)
    backprop(b, 1.0)
    backprop(b, -1.0)
    backprop(a, -1.0)
    assert (root.visits, a.visits, b.visits) == (3, 3, 2)
    assert a.q == pytest.approx(-1 / 3) and b.q == 0.0
    assert Node("", {}, prior=0.4).q == 0.4  # unvisited: the prior


def test_uct_prefers_the_unvisited_then_balances_value_and_visits():
    root = Node("", {}, visits=10)
    good = child(root, "g")
    good.visits, good.value_sum = 8, 6.0
    fresh = child(root, "f")
    assert uct_child(root, c=1.0) is fresh  # 0 + sqrt(ln 11 / 1) > 0.75 + sqrt(ln 11 / 9)
    assert uct_child(root, c=0.0) is good
    fresh.visits, fresh.value_sum = 1, -1.0
    want = max([good, fresh], key=lambda n: n.q + math.sqrt(math.log(11) / (n.visits + 1)))
    assert uct_child(root, c=1.0) is want


def test_select_stops_at_an_unexpanded_or_terminal_node():
    root = Node("", {})
    a = child(root, "a")
    assert select(root, 1.0, max_depth=8) is a  # a is not expanded yet
    end = child(a, "answer", terminal=True, reward=1.0)
    assert select(root, 1.0, max_depth=8) is end
    assert select(root, 1.0, max_depth=1) is a


def test_a_node_with_too_few_children_is_widened_once_they_are_all_tried():
    root = Node("", {})
    only = child(root, "only")  # four proposals, one distinct step
    assert select(root, 1.0, 8, width=4, widen=2) is only  # its one child is not tried yet
    backprop(only, -1.0)
    assert select(root, 1.0, 8, width=4, widen=2) is root  # now the root is expanded again
    assert select(root, 1.0, 8, width=4, widen=1) is only  # widen=1: never
    assert select(root, 1.0, 8, width=1, widen=2) is only  # it has its `width` children
    root.expansions = 2
    assert select(root, 1.0, 8, width=4, widen=2) is only  # no expansions left


def tree_with_two_branches() -> Tree:
    """root -> a (-> a1 correct, a2 wrong) and b (-> b1 wrong), visited as a search would."""
    root = Node("", {})
    a, b = child(root, "a: x = 1"), child(root, "b: x = 2")
    a1 = child(a, "a1: answer = x", terminal=True, reward=1.0)
    a2 = child(a, "a2: answer = x + 1", terminal=True, reward=-1.0)
    b1 = child(b, "b1: answer = x", terminal=True, reward=-1.0)
    for leaf in (a1, a1, a2, b1):
        backprop(leaf, leaf.reward)
    return Tree(WordMathTask().make("q", 1), root)


def test_trajectories_and_pairs_come_from_correct_vs_incorrect_siblings():
    tree = tree_with_two_branches()
    a, b = tree.root.children
    assert mcts.solved(a) and not mcts.solved(b) and mcts.solved(tree.root)
    (best,) = mcts.best_trajectories(tree, k=2)
    assert [n.step for n in best] == ["a: x = 1", "a1: answer = x"]
    pairs = mcts.preference_pairs(tree)
    assert ("a: x = 1", "b: x = 2") in pairs  # first step: the branch that reaches the answer wins
    assert ("a: x = 1\na1: answer = x", "a: x = 1\na2: answer = x + 1") in pairs
    assert len(pairs) == 2


def test_reward_models_train_long_enough_to_see_their_data_reward_epochs_times():
    from selfevolve.judge.reward import train_from_trees
    from selfevolve.models.policy import Policy
    from selfevolve.progress import Progress
    from selfevolve.search.tree_data import COLUMNS, tree_data
    from selfevolve.train.sft import SFTConfig

    trees = [tree_with_two_branches() for _ in range(9)]  # trees 0-8: none held out (every 10th is)
    data = tree_data(trees, k=1)
    counts = {kind: data["kind"].count(kind) for kind in ("pair", "prm", "orm")}
    assert set(data) == set(COLUMNS) and min(counts.values()) > 0
    tok = CharTokenizer()
    torch.manual_seed(0)
    policy = Policy(Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=16, max_seq_len=96,
                                                  pos_encoding="rope")), tok)
    sft = SFTConfig(batch_size=4, warmup_steps=0)
    taken = {}
    with Progress(enabled=False) as progress:
        for steps, epochs, most in ((2, 0.0, 0), (2, 3.0, 0), (50, 3.0, 0), (2, 3.0, 5)):
            models, taken[steps, epochs, most] = train_from_trees(
                policy, data, steps, sft, torch.Generator().manual_seed(0), progress, "", epochs, most)
            assert set(models) == {"ppm", "prm", "orm"}
            wanted = {name: max(steps, math.ceil(epochs * counts[kind] / 4))
                      for name, kind in (("ppm", "pair"), ("prm", "prm"), ("orm", "orm"))}
            assert taken[steps, epochs, most] == {name: min(n, most) if most else n for name, n in wanted.items()}
    assert min(taken[2, 3.0, 0].values()) > 2 and taken[50, 3.0, 0]["ppm"] == 50  # more data, more steps; >= `steps`
    assert max(taken[2, 3.0, 0].values()) > 5 and max(taken[2, 3.0, 5].values()) == 5  # the bound bites


def test_a_failed_step_that_computes_what_a_correct_sibling_computes_is_not_a_worse_step():
    tree = tree_with_two_branches()
    a = tree.root.children[0]
    twin = child(tree.root, "typo: x = 1")  # a's code under another text; its one rollout failed later
    backprop(child(twin, "t1: answer = x + 1", terminal=True, reward=-1.0), -1.0)
    pairs = mcts.preference_pairs(tree)
    assert not any(worse.startswith("typo") for _, worse in pairs)
    assert ("a: x = 1", "b: x = 2") in pairs and mcts.solved(a) and not mcts.solved(twin)


def random_policy(tok: CharTokenizer) -> Transformer:
    torch.manual_seed(0)
    return Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_embd=32, n_head=2, pos_encoding="rope",
                                         max_seq_len=512))


def test_search_prunes_steps_that_do_not_run_and_counts_its_tokens():
    tok = CharTokenizer()
    policy = random_policy(tok)
    problems = WordMathTask().sample(3, 2, np.random.default_rng(0))
    cfg = MCTSConfig(rollouts=2, width=3, max_step_tokens=12)
    trees = search(policy, tok, WordMathSteps(), problems, cfg, torch.Generator().manual_seed(0))
    for tree in trees:  # a random policy writes no runnable step: everything is pruned, nothing breaks
        assert tree.tokens > 0 and tree.pruned > 0 and len(tree.answers_after) == 2
        assert all(n.state or n is tree.root for n in tree.root.walk())
        assert tree.root.visits == 2


class Lines:
    """A step format of no task: every line is a step, its state the lines so far, "=" ends a solution
    and it is right when it has three lines. The search must run on it as on wordmath."""

    def start(self, problem):
        return ()

    def run(self, line, state):
        if not line.strip():
            raise mcts.StepError("an empty line")
        return (*state, line)

    def is_final(self, state):
        return "=" in state[-1]

    def is_correct(self, problem, state):
        return len(state) == 3


def test_search_runs_on_any_step_format():
    tok = CharTokenizer()
    policy = random_policy(tok)
    problems = WordMathTask().sample(2, 2, np.random.default_rng(0))
    cfg = MCTSConfig(rollouts=3, width=4, max_depth=3, max_step_tokens=40)
    trees = search(policy, tok, Lines(), problems, cfg, torch.Generator().manual_seed(0))
    for tree in trees:
        nodes = [n for n in tree.root.walk() if n is not tree.root]
        assert nodes and all(n.state == tuple(p.step for p in n.path()) for n in nodes)  # the format's own state
        finals = [n for n in nodes if n.terminal and "=" in n.step]
        assert all(n.reward == (1.0 if n.depth == 3 else -1.0) for n in finals)
        assert tree.root.visits == 3
    assert any(n.terminal and "=" in n.step for t in trees for n in t.root.walk())  # the format ended some
