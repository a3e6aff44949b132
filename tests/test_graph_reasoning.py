"""Agentic graph reasoning: parsing and merging relations, the network metrics on graphs whose values are
known by hand, steering, and the loop with a scripted model (resume, GraphML, the call log)."""

import json
import re
import zlib

import networkx as nx
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import assert_clean_error, run_cli

from selfevolve.agents.knowledge_graph import focus, merge, metrics, normalise, parse
from selfevolve.config import build_config
from selfevolve.errors import ConfigError
from selfevolve.models.lm import ScriptedLM
from selfevolve.progress import Progress
from selfevolve.recipes.graph_reasoning import Config, grow
from selfevolve.store import RunStore


def test_replies_become_normalised_relations_and_merge_once():
    reply = ("Here are some relations:\n1. The Sun -- emits -- Light\n- light -> drives -> Photosynthesis.\n"
             "sun | heats | the sun\nnot a relation\nA -- is -- " + "x" * 60 + "\nSolar energy -- wind energy\n"
             "energy -- a force of nature that sustains all life\n")
    triples, lines = parse(reply)
    assert triples == [("sun", "emits", "light"), ("light", "drives", "photosynthesis"),
                       ("solar energy", "relates to", "wind energy")] and lines == 8
    assert normalise("  The  Calvin-Cycle! ") == "calvin cycle"
    g = nx.Graph()
    assert merge(g, triples, 1) == (5, 3)
    assert merge(g, [("sun", "warms", "light"), ("sun", "feeds", "plants")], 2) == (1, 1)  # sun-light kept once
    assert g.edges["sun", "light"]["relation"] == "emits" and g.nodes["plants"]["iteration"] == 2


def test_metrics_match_values_worked_out_by_hand():
    barbell = nx.barbell_graph(5, 0)  # two 5-cliques joined by one edge
    m = metrics(barbell)
    assert m["nodes"] == 10 and m["edges"] == 21 and m["communities"] == 2 and m["components"] == 1
    # Q = 2 x (10/21 - (21/42)^2); path lengths: 20 pairs at 1 + the bridge, 8 at 2, 16 at 3 -> 85 / 45
    assert m["modularity"] == pytest.approx(2 * (10 / 21 - 0.25)) and m["average_path_length"] == pytest.approx(85 / 45)
    assert m["max_degree"] == 5 and set(m["hubs"][:2]) == {4, 5} and m["degree_histogram"] == [0, 0, 0, 0, 8, 2]
    star = metrics(nx.star_graph(6))
    assert star["hubs"][0] == 0 and star["max_degree"] == 6 and star["clustering"] == 0.0
    assert star["average_path_length"] == pytest.approx((6 * 1 + 15 * 2) / 21)
    split = nx.Graph([(0, 1), (2, 3), (3, 4)])
    assert metrics(split)["components"] == 2 and metrics(split)["largest_component_share"] == pytest.approx(0.6)


def test_bridge_steering_joins_the_least_linked_communities():
    g = nx.Graph()
    for offset in (0, 10, 20):  # three 4-cliques; A-B linked twice, B-C once, A-C never
        g.add_edges_from((f"{offset + i}", f"{offset + j}") for i in range(4) for j in range(i + 1, 4))
    g.add_edges_from([("0", "10"), ("1", "11"), ("12", "20")])
    for v in g:
        g.nodes[v]["iteration"] = int(v) // 10
    rng = np.random.default_rng(0)
    pairs = {focus(g, "bridge", rng) for _ in range(20)}
    assert all({int(a) // 10, int(b) // 10} == {0, 2} for a, b in pairs), pairs
    assert focus(g, "latest", rng)[0].startswith("2") and len({focus(g, "random", rng) for _ in range(30)}) > 3


def scripted(prompt: str) -> str:
    """A model that answers a two-concept question with a path between them and a one-concept one with a
    small clique of new concepts around it (names from the prompt's hash: the same prompt, the same reply)."""
    pair = re.search(r"how (.+?) and (.+?) are connected", prompt)
    if pair:
        return f"{pair.group(1)} -- leads to -- link {zlib.crc32(prompt.encode()) % 997}\n" \
               f"link {zlib.crc32(prompt.encode()) % 997} -- leads to -- {pair.group(2)}"
    about = re.search(r"relations about (.+?)\. Concepts", prompt).group(1)
    fresh = [f"c{zlib.crc32((prompt + str(k)).encode()) % 100000}" for k in range(3)]
    return "\n".join([f"{about} -- has -- {fresh[0]}"] + [f"{a} -- with -- {b}" for i, a in enumerate(fresh)
                                                         for b in fresh[i + 1:]])


def grown(path, **settings):
    cfg = Config(**{"base_url": "http://127.0.0.1:9/v1", "model": "scripted", "prompts": 2, "iterations": 6,
                    **settings})
    store = RunStore.create(path, "graph-reasoning", "") if not path.exists() else RunStore.open(path)
    with Progress(enabled=False) as progress:
        return grow(cfg, store, progress, ScriptedLM(scripted))


def test_steering_by_the_graph_links_what_random_expansion_leaves_apart(tmp_path):
    steered, unsteered = grown(tmp_path / "bridge"), grown(tmp_path / "random", steering="random")
    a, b = steered["final"], unsteered["final"]
    assert a["nodes"] > 10 and b["nodes"] > 10
    # bridging questions go to concepts of two communities, which the replies join
    rows = [pq.read_table(tmp_path / "bridge" / "samples" / f"round-{i:03d}.parquet").to_pydict() for i in range(1, 7)]
    assert sum(" | " in f for row in rows for f in row["focus"]) >= 6
    assert sum(r["bridged"] for r in steered["iterations_log"]) >= 6
    assert a["modularity"] < b["modularity"] and a["average_path_length"] < b["average_path_length"]
    # the saved graph is the run's graph; every call is logged with what it added
    g = nx.read_graphml(tmp_path / "bridge" / "graph.graphml")
    assert g.number_of_nodes() == a["nodes"] and g.number_of_edges() == a["edges"]
    assert all(json.loads(r) for row in rows for r in row["relations"])


def test_a_stopped_run_continues_to_the_same_graph(tmp_path):
    straight = grown(tmp_path / "straight")
    grown(tmp_path / "stopped", iterations=3)
    again = grown(tmp_path / "stopped")  # the same store, asked for all 6 iterations: continues from 3
    drop = ("lm_seconds", "wall_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in again["iterations_log"]] == \
           [{k: v for k, v in r.items() if k not in drop} for r in straight["iterations_log"]]


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="seed_concept must hold"):
        build_config(Config, {"seed_concept": "!!", "base_url": "http://127.0.0.1:9/v1"})
    out = tmp_path / "run"
    assert_clean_error(run_cli("run", "graph-reasoning", "--out", str(out), "--set", "steering=widest",
                               "--set", "base_url=http://127.0.0.1:9/v1"), "steering must be one of")
    assert not out.exists()
