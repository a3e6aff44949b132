"""The self-assessment audit: the inventory, the permutation test on scores with a known effect, and the
command end to end on a local Llama."""

import json

import numpy as np
import pytest
import torch
import transformers
from helpers import assert_clean_error, run_cli, save_bpe_llama

from selfevolve.audit import OPTIONS, WORDINGS, Item, load_inventory, paired_permutation_p, question


def test_our_inventory_has_ten_balanced_items_per_trait_and_bad_files_name_their_line(tmp_path):
    items = load_inventory()
    traits = sorted({i.trait for i in items})
    assert traits == ["agreeableness", "conscientiousness", "extraversion", "neuroticism", "openness"]
    for trait in traits:
        keys = [i.key for i in items if i.trait == trait]
        assert len(keys) == 10 and sum(keys) == 0  # five keyed +, five keyed -
    bad = tmp_path / "mine.tsv"
    bad.write_text("item\ttrait\tkey\nI like tea.\topenness\t+\nI like rain.\topenness\tyes\n")
    with pytest.raises(ValueError, match="line 3"):
        load_inventory(bad)


def test_reversed_options_list_the_same_levels_the_other_way_round():
    item = Item("I like tea.", "openness", 1)
    text, levels = question(item, "rate", reverse=False)
    back, reversed_levels = question(item, "rate", reverse=True)
    assert levels == [1, 2, 3, 4, 5] and reversed_levels == [5, 4, 3, 2, 1]
    assert f"1. {OPTIONS[0]}" in text and f"1. {OPTIONS[4]}" in back and f"5. {OPTIONS[0]}" in back
    assert len(WORDINGS) == 3 and all("{item}" in w and "{options}" in w for w in WORDINGS.values())


def test_the_permutation_test_finds_a_known_effect_and_not_a_missing_one():
    rng = np.random.default_rng(0)
    a = rng.uniform(1, 5, 10)
    shifted = a + 0.5 + rng.normal(0, 0.1, 10)
    same = a + rng.normal(0, 0.1, 10)
    assert paired_permutation_p(shifted, a, 5000, np.random.default_rng(1)) < 0.01
    assert paired_permutation_p(same, a, 5000, np.random.default_rng(1)) > 0.05
    assert paired_permutation_p(a, a, 100, np.random.default_rng(1)) == 1.0


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    """A random local Llama whose BPE tokenizer learnt the inventory's questions, so it never joins a number
    to the space before it: a prompt's next-token probabilities are what the echoed log-likelihoods of
    the prompt followed by each number give. Its answers are peaked, so equal reports are not all 3s."""
    model = tmp_path_factory.mktemp("audit") / "llama"
    questions = [question(item, w, r)[0] for item in load_inventory() for w in WORDINGS for r in (False, True)]
    tok = save_bpe_llama(model, questions, vocab_size=1000)  # whole words: short prompts, quick forwards
    assert all(tok.encode(q + "3") == tok.encode(q) + tok.encode("3") for q in questions)
    net = transformers.LlamaForCausalLM.from_pretrained(model)
    with torch.no_grad():
        net.model.norm.weight.mul_(30)
    net.save_pretrained(model)
    return model


def test_audit_asks_a_local_llama_every_item_in_every_condition(tmp_path, llama):
    model = llama
    out = tmp_path / "audit.json"
    proc = run_cli("audit", str(model), "--out", str(out), "--rounds", "200")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["items"] == 50 and len(report["traits"]) == 5 and len(report["conditions"]) == 6
    for row in report["traits"].values():
        assert all(1 <= c["score"] <= 5 for c in row.values())
        assert [c["p_vs_base"] is None for c in row.values()].count(True) == 1
        assert all(0 < c["p_vs_base"] <= 1 for c in row.values() if c["p_vs_base"] is not None)
    assert all(1 <= c["mean_option_number"] <= 5 for c in report["conditions"].values())
    assert report["conditions"]["describe"]["r_vs_base"] == pytest.approx(1.0)
    bad = tmp_path / "bad.tsv"
    bad.write_text("question\tscale\n")
    assert_clean_error(run_cli("audit", str(model), "--inventory", str(bad)), "columns item, trait, key")


def test_over_an_openai_compatible_server_the_audit_gives_the_local_report(tmp_path, llama):
    from test_serve import start_server

    model, items = llama, load_inventory()[::10]  # one item a trait
    mine = tmp_path / "mine.tsv"
    mine.write_text("item\ttrait\tkey\n" + "".join(f"{i.text}\t{i.trait}\t{'+-'[i.key < 0]}\n" for i in items))
    reports = {}
    server, base = start_server(model, "--name", "tiny")
    try:
        for name, where in (("local", [str(model)]), ("served", ["tiny", "--base-url", base])):
            proc = run_cli("audit", *where, "--inventory", str(mine), "--out", str(tmp_path / name), "--rounds", "200")
            assert proc.returncode == 0, proc.stderr
            reports[name] = json.loads((tmp_path / name).read_text())
    finally:
        server.terminate()
        server.wait(timeout=10)
    local, served = reports["local"], reports["served"]
    assert local["items"] == served["items"] == 5 and served["base_url"] == base
    for trait, row in local["traits"].items():
        for condition, cell in row.items():
            assert served["traits"][trait][condition]["score"] == pytest.approx(cell["score"], abs=1e-4)
    scores = [cell["score"] for row in local["traits"].values() for cell in row.values()]
    assert max(scores) - min(scores) > 0.1  # the model answers item by item, not 3 everywhere
    for condition, row in local["conditions"].items():
        for measure in ("mean_option_number", "r_vs_base"):
            assert served["conditions"][condition][measure] == pytest.approx(row[measure], abs=1e-4)
