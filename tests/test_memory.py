"""FinMem's layered memory: scores, decay, clean-up, layer moves and feedback follow the paper's
code; a saved store loads back with identical retrieval; damaged or foreign files fail clearly."""

import math

import numpy as np
import pytest

from selfevolve.agents.memory import LayeredMemory, hashing_embedder
from selfevolve.errors import CheckpointError

NEWS = ["Acme beats earnings expectations, raises guidance", "Rumour: Acme CEO to resign",
        "Weather sunny in the capital", "Acme recalls faulty batteries", "Globex opens new factory"]


def test_retrieval_score_is_similarity_plus_recency_plus_importance():
    memory = LayeredMemory()
    memory.add(NEWS, "short", importance=[40, 60, 80, 40, 60])
    hits = memory.query("Acme earnings guidance", k=5)["short"]
    assert hits[0].text == NEWS[0]
    for h in hits:
        assert math.isclose(h.score, h.similarity + h.recency + h.importance / 100, rel_tol=1e-6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert memory.query("x", layers=("mid",)) == {"mid": []}
    close = memory.query("Acme earnings guidance", k=5, min_similarity=0.3)["short"]
    assert close and all(h.similarity >= 0.3 for h in close)
    assert [h.id for h in close] == [h.id for h in hits if h.similarity >= 0.3]


def test_step_decays_per_layer_and_cleans_up():
    memory = LayeredMemory()
    memory.add(["a short item"], "short", importance=[50])
    memory.add(["a long item"], "long", importance=[90])
    memory.step()
    hits = {h.layer: h for layer in memory.query("item").values() for h in layer}
    assert math.isclose(hits["short"].importance, 50 * 0.92) and math.isclose(hits["short"].recency, math.exp(-1 / 3))
    assert hits["long"].importance == pytest.approx(90 * 0.988) and hits["long"].recency == pytest.approx(
        math.exp(-1 / 365))
    for _ in range(7):
        memory.step()
    assert memory.sizes()["short"] == 1  # age 8 days: recency exp(-8/3) = 0.069
    assert memory.step()["removed"] == 1  # age 9 days: recency exp(-3) = 0.0498 < 0.05
    assert memory.sizes() == {"short": 0, "mid": 0, "long": 1, "reflection": 0}
    memory.step()  # 90 * 0.988^10 = 79.4 < 80: down to mid
    assert memory.sizes() == {"short": 0, "mid": 1, "long": 0, "reflection": 0}


def test_items_move_between_layers_at_finmems_thresholds():
    memory = LayeredMemory()
    memory.add(["rising"], "short", importance=[70])  # 70 * 0.92 = 64.4 >= 60: up to mid, age restarts
    memory.add(["slipping"], "mid", importance=[61])  # 61 * 0.967 = 59.0 < 60: down to short
    memory.add(["stays"], "mid", importance=[70])
    moved = memory.step(1)
    assert moved == {"removed": 0, "promoted": 1, "demoted": 1}
    layers = {h.text: (h.layer, h.recency) for hits in memory.query("x").values() for h in hits}
    assert layers["rising"] == ("mid", 1.0) and layers["slipping"][0] == "short" and layers["stays"][0] == "mid"


def test_feedback_moves_the_importance_of_cited_items():
    memory = LayeredMemory()
    ids = memory.add(NEWS[:3], "mid", importance=[60, 60, 60])
    memory.feedback([ids[0], ids[2]], reward=+0.03)
    memory.feedback([ids[1]], reward=-1)
    imp = {h.text: h.importance for h in memory.query("x")["mid"]}
    assert imp == {NEWS[0]: 65, NEWS[1]: 55, NEWS[2]: 65}
    assert memory.access.tolist() == [1, -1, 1]


def test_default_importance_follows_finmems_draw():
    memory = LayeredMemory(seed=3)
    memory.add(["n"] * 4000, "short")
    shares = [(memory.importance == v).mean() for v in (40, 60, 80)]
    assert np.allclose(shares, (0.5, 0.45, 0.05), atol=0.03)


def test_saved_store_loads_with_identical_retrieval(tmp_path):
    memory = LayeredMemory(seed=1)
    ids = memory.add(NEWS, "short")
    memory.add(["Reflection: earnings news moved the price for weeks"], "reflection")
    memory.step(2)
    memory.feedback(ids[:2], 1)
    path = memory.save(tmp_path / "memory.npz")
    again = LayeredMemory.load(path)
    for q in ("Acme earnings", "battery recall", "weather"):
        assert again.query(q, k=3) == memory.query(q, k=3)
    assert again.step(3) == memory.step(3) and again.sizes() == memory.sizes()
    assert again.add(["new"]) == memory.add(["new"])  # ids and the importance draw continue alike
    assert np.array_equal(again.importance, memory.importance)


def test_damaged_or_foreign_store_files_fail_clearly(tmp_path):
    path = LayeredMemory().save(tmp_path / "memory.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        LayeredMemory.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", meta=np.array('{"format": "something-else/9"}'))
    with pytest.raises(CheckpointError, match="format"):
        LayeredMemory.load(tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        LayeredMemory.load(tmp_path / "missing.npz")


def test_hashing_embedder_is_unit_length_and_sees_shared_words():
    v = hashing_embedder(["acme earnings beat", "acme earnings beat", "sunny weather"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1)
    assert v[0] @ v[1] == pytest.approx(1) and abs(v[0] @ v[2]) < 0.5
