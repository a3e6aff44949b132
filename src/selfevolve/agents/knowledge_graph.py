"""A knowledge graph grown by a language model, measured as a network (Buehler 2025, agentic deep
graph reasoning).

The model answers with relations, one per line, `concept -- relation -- concept`; `parse` keeps the
lines of that shape and `merge` adds them with names normalised (case, articles, punctuation,
spacing), so "The Sun" and "sun" are one node. `metrics` is what the paper follows per iteration:
size, degree distribution and hubs, communities and modularity, path lengths, clustering. `focus`
picks what the next prompt asks about: `bridge` pairs concepts of two communities with the fewest
links between them (steering by the graph's structure), `latest` continues from the newest node,
`random` takes any node (the unsteered baseline).
"""

from __future__ import annotations

import re
from collections import Counter

import networkx as nx
import numpy as np

PAIR = re.compile(r"^\W*(?:\d+[.)]\s*)?([^-|>—]+?)\s*(?:--|->|—|\|)\s*([^-|>—]+?)\W*$")
LINE = re.compile(r"^\W*(?:\d+[.)]\s*)?(.+?)\s*(?:--|->|—|\|)\s*(.+?)\s*(?:--|->|—|\|)\s*(.+?)\W*$")
ARTICLES = re.compile(r"^(?:the|a|an)\s+")
MAX_NAME = 48
PAIR_WORDS = 5  # a two-part line `concept -- concept` counts (as "relates to") when both are this short
STEERING = ("bridge", "latest", "random")


def normalise(name: str) -> str:
    """One spelling per concept: lower case, no leading article, letters, digits and single spaces."""
    name = re.sub(r"[^a-z0-9 ]+", " ", name.lower())
    return ARTICLES.sub("", " ".join(name.split()))


def parse(reply: str) -> tuple[list[tuple[str, str, str]], int]:
    """The (concept, relation, concept) triples in a reply and how many non-empty lines it had. A line
    `concept -- concept` of two short names (what a small model often writes) relates them as
    "relates to"; a line of another shape, an empty or over-long name, or a concept related to
    itself is skipped."""
    lines = [line for line in reply.splitlines() if line.strip()]
    triples = []
    for line in lines:
        if m := LINE.match(line.strip()):
            a, relation, b = normalise(m.group(1)), " ".join(m.group(2).lower().split()), normalise(m.group(3))
        elif (m := PAIR.match(line.strip())) and all(len(g.split()) <= PAIR_WORDS for g in m.groups()):
            a, relation, b = normalise(m.group(1)), "relates to", normalise(m.group(2))
        else:
            continue
        if a and b and relation and a != b and len(a) <= MAX_NAME and len(b) <= MAX_NAME:
            triples.append((a, relation[:MAX_NAME], b))
    return triples, len(lines)


def merge(graph: nx.Graph, triples: list[tuple[str, str, str]], iteration: int) -> tuple[int, int]:
    """Add the triples (a relation already there is kept once); returns the new nodes and edges."""
    nodes, edges = graph.number_of_nodes(), graph.number_of_edges()
    for a, relation, b in triples:
        for n in (a, b):
            if n not in graph:
                graph.add_node(n, iteration=iteration)
        if not graph.has_edge(a, b):
            graph.add_edge(a, b, relation=relation, iteration=iteration)
    return graph.number_of_nodes() - nodes, graph.number_of_edges() - edges


def communities(graph: nx.Graph) -> list[set[str]]:
    """Greedy modularity communities, largest first (one per isolated node)."""
    if graph.number_of_edges() == 0:
        return [{n} for n in graph]
    return [set(c) for c in nx.community.greedy_modularity_communities(graph)]


def hubs(graph: nx.Graph, k: int) -> list[str]:
    """The k best-linked concepts (ties by name)."""
    return [name for name, _ in sorted(graph.degree(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def metrics(graph: nx.Graph) -> dict:
    """The network's shape: size, degrees and hubs, communities and modularity, the largest component's
    share and average shortest path, clustering."""
    n, m = graph.number_of_nodes(), graph.number_of_edges()
    if n == 0:
        return {"nodes": 0, "edges": 0}
    degrees = dict(graph.degree())
    groups = communities(graph)
    largest = graph.subgraph(max(nx.connected_components(graph), key=len))
    return {"nodes": n, "edges": m, "mean_degree": 2 * m / n, "max_degree": max(degrees.values()),
            "degree_histogram": nx.degree_histogram(graph),
            "hubs": hubs(graph, 5),
            "communities": len(groups), "modularity": nx.community.modularity(graph, groups) if m else 0.0,
            "components": nx.number_connected_components(graph), "largest_component_share": len(largest) / n,
            "average_path_length": nx.average_shortest_path_length(largest) if len(largest) > 1 else 0.0,
            "clustering": nx.average_clustering(graph)}


def focus(graph: nx.Graph, steering: str, rng: np.random.Generator,
          groups: list[set[str]] | None = None) -> tuple[str, ...]:
    """What the next prompt is about: one concept, or (bridge) two from weakly linked communities
    (`groups`: the graph's communities, when the caller has them already)."""
    nodes = sorted(graph)
    if steering == "latest":
        return (max(nodes, key=lambda v: (graph.nodes[v].get("iteration", 0), graph.degree(v), v)),)
    groups = groups if groups is not None else communities(graph)
    if steering == "random" or len(groups) < 2:
        return (nodes[int(rng.integers(len(nodes)))],)
    where = {v: k for k, group in enumerate(groups) for v in group}
    links = Counter(tuple(sorted((where[a], where[b]))) for a, b in graph.edges if where[a] != where[b])
    pairs = [(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups))]
    fewest = min(links.get(p, 0) for p in pairs)
    weakest = [p for p in pairs if links.get(p, 0) == fewest]
    i, j = weakest[int(rng.integers(len(weakest)))]
    return tuple(sorted(groups[k])[int(rng.integers(len(groups[k])))] for k in (i, j))  # a concept of each


def prompt(about: tuple[str, ...], known: list[str], lines: int) -> list[dict]:
    """Chat messages that ask for relations about the focus, naming concepts the graph already has."""
    topic = (f"how {about[0]} and {about[1]} are connected, through intermediate concepts"
             if len(about) == 2 else f"{about[0]}")
    return [{"role": "system", "content": "You build knowledge graphs. You answer only with relations, one per "
                                          "line, in the form: concept -- relation -- concept"},
            {"role": "user", "content": "Write 4 relations about water."},  # one worked example
            {"role": "assistant", "content": "water -- is made of -- hydrogen\nwater -- is needed by -- plants\n"
                                             "plants -- produce -- oxygen\nhydrogen -- is a -- chemical element"},
            {"role": "user", "content": f"Write {lines} relations about {topic}. Concepts already in the graph "
                                        f"include: {', '.join(known)}. Reuse them where they fit."}]
