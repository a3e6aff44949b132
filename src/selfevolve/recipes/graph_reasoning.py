"""Agentic graph reasoning: a language model grows a knowledge graph from one concept, steered by the
graph's own structure (Buehler 2025, "Agentic Deep Graph Reasoning Yields Self-Organizing Knowledge
Networks").

    each iteration: pick `prompts` focuses (steering=bridge: a concept of each of the two communities
    with the fewest links between them; latest: the newest concept; random: any
    concept, the unsteered baseline), ask the model for relations about each (one batched call),
    parse `concept -- relation -- concept` lines, merge them with names normalised, and measure the
    network (agents/knowledge_graph.py)

    selfevolve run graph-reasoning --set seed_concept="photosynthesis" --set steering=random

The graph is DIR/graph.graphml after every iteration (networkx, Gephi and Cytoscape read it); every
call (prompt, reply, tokens, seconds, the relations kept) is in samples/round-NNN.parquet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from selfevolve.agents.knowledge_graph import (
    STEERING,
    communities,
    focus,
    hubs,
    merge,
    metrics,
    normalise,
    parse,
    prompt,
)
from selfevolve.config import check_min, check_one_of
from selfevolve.models.lm import LMChoice, logged_chats
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore, atomic_write


@dataclass
class Config(LMChoice):
    seed: int = 0
    """Seeds the focus draws and the model's sampling."""
    seed_concept: str = "energy"
    """The concept the graph grows from."""
    steering: str = "bridge"
    """bridge (join weakly linked communities), latest (continue from the newest concept) or random."""
    iterations: int = 20
    """Expansion rounds."""
    prompts: int = 4
    """Focuses asked about per iteration (one batched model call)."""
    lines: int = 8
    """Relations asked for per prompt."""
    known_shown: int = 12
    """Concepts of the graph named in each prompt (its hubs first), so the model reuses them."""
    max_tokens: int = 200

    def __post_init__(self) -> None:
        check_one_of(self, "steering", STEERING)
        check_min(self, 1, "iterations", "prompts", "lines")
        check_min(self, 0, "known_shown")
        if not normalise(self.seed_concept):
            raise ValueError(f"seed_concept must hold a letter or digit, got {self.seed_concept!r}")
        self.check_lm()


def grow(cfg: Config, store: RunStore, progress: Progress, lm) -> dict:
    """The loop, with the model given (a ScriptedLM in tests)."""
    saved = store.read_state("knowledge graph")
    if saved:
        graph, start = nx.node_link_graph(saved["graph"], edges="edges"), saved["iteration"] + 1
    else:
        graph, start = nx.Graph(), 1
        graph.add_node(normalise(cfg.seed_concept), iteration=0)
    with progress.task(f"grow a knowledge graph from {cfg.seed_concept!r}", cfg.iterations, start - 1) as advance:
        for it in range(start, cfg.iterations + 1):
            t0 = time.perf_counter()
            rng = rngs(cfg.seed, it).np
            groups = communities(graph) if cfg.steering == "bridge" else None  # once for all the prompts
            about = [focus(graph, cfg.steering, rng, groups) for _ in range(cfg.prompts)]
            known = hubs(graph, cfg.known_shown)  # the full metrics (communities, paths) are measured once, below
            conversations = [prompt(a, known, cfg.lines) for a in about]
            completions, log = logged_chats(lm, conversations, rngs(cfg.seed, "lm", it).torch, cfg.temperature,
                                            cfg.max_tokens)
            parsed = [parse(c.text) for c in completions]
            new_nodes, new_edges = merge(graph, [t for triples, _ in parsed for t in triples], it)
            lines = sum(n for _, n in parsed)
            store.write_samples(it, {"focus": [" | ".join(a) for a in about], **log,
                                     "relations": [json.dumps(triples) for triples, _ in parsed]})
            atomic_write(store.path / "graph.graphml", "\n".join(nx.generate_graphml(graph)))
            record = {"round": it, "iteration": it, "new_nodes": new_nodes, "new_edges": new_edges,
                      "parsed_share": sum(len(t) for t, _ in parsed) / lines if lines else 0.0,
                      "bridged": sum(1 for a in about if len(a) == 2 and nx.has_path(graph, *a)),
                      **metrics(graph), "lm_seconds": log["latency_seconds"][0],
                      "wall_seconds": time.perf_counter() - t0}
            store.record_round(it, record, {"graph/nodes": record["nodes"], "graph/modularity": record["modularity"]})
            store.write_state({"iteration": it, "graph": nx.node_link_data(graph, edges="edges")})
            progress.log(f"[bold]iteration {it}[/] nodes {record['nodes']}  edges {record['edges']}  "
                         f"modularity {record['modularity']:.3f}  parsed {record['parsed_share']:.2f}")
            advance()
    log = [r for r in store.rounds() if r["round"] <= cfg.iterations]
    summary = {"recipe": "graph-reasoning", "seed": cfg.seed, "seed_concept": cfg.seed_concept,
               "steering": cfg.steering, "final": log[-1] if log else metrics(graph), "iterations_log": log,
               "wall_seconds": sum(r["wall_seconds"] for r in log)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    return grow(cfg, store, progress, cfg.open_lm(cfg.prompts, cfg.seed))


def headline(summary: dict) -> str:
    f = summary["final"]
    return (f"{summary['seed_concept']!r} ({summary['steering']}): {f['nodes']} concepts, {f['edges']} relations, "
            f"{f.get('communities', 0)} communities (modularity {f.get('modularity', 0):.3f}), hubs "
            f"{', '.join(f.get('hubs', [])[:3])}")


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from selfevolve.report import plot_lines

    log = summary["iterations_log"]
    its = [r["iteration"] for r in log]
    out = [plot_lines(its, {"concepts": [r["nodes"] for r in log], "relations": [r["edges"] for r in log]},
                      "Graph size per iteration", "iteration", "count", plot_dir / "size.png"),
           plot_lines(its, {"modularity": [r["modularity"] for r in log],
                            "clustering": [r["clustering"] for r in log],
                            "largest component share": [r["largest_component_share"] for r in log]},
                      "Structure per iteration", "iteration", "value", plot_dir / "structure.png")]
    graph_file = plot_dir.parent / "graph.graphml"
    if graph_file.exists():
        graph = nx.read_graphml(graph_file)
        top = graph.subgraph(sorted(graph, key=graph.degree, reverse=True)[:60])
        colour = {v: k for k, group in enumerate(communities(graph)) for v in group}
        fig, ax = plt.subplots(figsize=(8, 6))
        layout = nx.spring_layout(top, seed=0)
        nx.draw_networkx(top, layout, ax=ax, node_size=[30 + 20 * graph.degree(v) for v in top], font_size=6,
                         node_color=[colour[v] for v in top], cmap="tab20", edge_color="#bbbbbb")
        ax.set_title("The 60 best-linked concepts, coloured by community")
        ax.axis("off")
        fig.tight_layout()
        fig.savefig(plot_dir / "graph.png", dpi=120)
        plt.close(fig)
        out.append(plot_dir / "graph.png")
    return out


RECIPE = Recipe(Config, run, headline, plots, run_name=lambda cfg: cfg.steering)
