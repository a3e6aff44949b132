"""What a round of search trees teaches, as one table: policy trajectories, step pairs for a
process preference model, Q targets for a process reward model, outcomes for an outcome one."""

from __future__ import annotations

from selfevolve.search.mcts import Tree, best_trajectories, preference_pairs

COLUMNS = ("kind", "prompt", "text", "other", "target", "tree")


def tree_data(trees: list[Tree], k: int) -> dict[str, list]:
    """Rows of kind `sft` (the k best correct trajectories per tree, by mean Q), `pair` (better and
    worse sibling steps), `prm` (every visited step's Q rescaled to [0, 1]) and `orm` (every
    terminal's outcome); `tree` numbers the tree a row came from."""
    rows: dict[str, list] = {name: [] for name in COLUMNS}

    def add(*values) -> None:
        for name, value in zip(COLUMNS, values, strict=True):
            rows[name].append(value)

    for i, tree in enumerate(trees):
        prompt = tree.problem.prompt
        for path in best_trajectories(tree, k):
            add("sft", prompt, "\n".join(n.step for n in path), "", 1.0, i)
        for better, worse in preference_pairs(tree):
            add("pair", prompt, better, worse, 1.0, i)
        for node in tree.root.walk():
            if node.step and node.visits:
                add("prm", prompt, node.solution(), "", (node.q + 1) / 2, i)
            if node.terminal and node.step:
                add("orm", prompt, node.solution(), "", float(node.reward > 0), i)
    return rows


def pick(data: dict[str, list], kind: str, held_out: bool | None = None) -> dict[str, list]:
    """Rows of one kind; held_out=True / False: only the trees of every 10th problem / the others."""
    keep = [i for i, k in enumerate(data["kind"]) if k == kind
            and (held_out is None or (data["tree"][i] % 10 == 9) == held_out)]
    return {name: [col[i] for i in keep] for name, col in data.items()}
