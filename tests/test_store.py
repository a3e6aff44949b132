import json

import pytest
import torch

from selfevolve.errors import CheckpointError, RunDirError
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import RunStore, atomic_write, load_checkpoint, model_from_checkpoint
from selfevolve.train.sft import SFTConfig, make_optimizer


def tiny(tok, n_embd=32):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=n_embd, pos_encoding="rope"))


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write(tmp_path / "a.txt", "one")
    atomic_write(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_create_refuses_to_overwrite(tmp_path):
    RunStore.create(tmp_path / "run", "length-gen", "seed = 0\n")
    with pytest.raises(RunDirError, match="already holds another run"):
        RunStore.create(tmp_path / "run", "length-gen", "seed = 1\n")
    RunStore.create(tmp_path / "run", "length-gen", "seed = 1\n", overwrite=True)
    assert (tmp_path / "run" / "config.toml").read_text() == "seed = 1\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError, match="files that selfevolve did not write"):
        RunStore.create(tmp_path / "mine", "length-gen", "", overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_open_rejects_foreign_directories(tmp_path):
    with pytest.raises(RunDirError, match="not a selfevolve run directory"):
        RunStore.open(tmp_path)
    store = RunStore.create(tmp_path / "run", "length-gen", "")
    store.db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(RunDirError, match="format 99"):
        RunStore.open(tmp_path / "run")


def test_rounds_replace_on_rerecord(tmp_path):
    store = RunStore.create(tmp_path / "run", "length-gen", "")
    store.record_round(0, {"round": 0, "x": 1}, {"m": 1.0})
    store.record_round(0, {"round": 0, "x": 2}, {"m": 2.0})
    assert store.rounds() == [{"round": 0, "x": 2}]


def test_checkpoint_roundtrip_and_damage(tmp_path, tok):
    store = RunStore.create(tmp_path / "run", "length-gen", "")
    model = tiny(tok)
    opt = make_optimizer(model, SFTConfig())
    model(torch.tensor([[5, 6, 7]])).sum().backward()
    opt.step()
    path = store.save_checkpoint(0, model, model.cfg.to_dict(), opt, {"round": 0})
    assert store.completed_rounds() == [0]
    ckpt = load_checkpoint(path)
    again = model_from_checkpoint(ckpt)
    x = torch.tensor([[3, 4, 5, 6]])
    assert torch.equal(again(x), model(x))
    assert ckpt["state"] == {"round": 0}

    # a model of another shape does not load silently
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(ckpt, into=tiny(tok, n_embd=64))
    # truncated weights
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)
    (path / "model.safetensors").write_bytes(data)
    (path / "state.json").write_text('{"round": ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    (path / "state.json").write_text(json.dumps({"round": 0}))
    (path / "optimizer.pt").unlink()
    with pytest.raises(CheckpointError, match="missing optimizer.pt"):
        load_checkpoint(path)


def test_samples_parquet(tmp_path):
    store = RunStore.create(tmp_path / "run", "length-gen", "")
    store.write_samples(2, {"prompt": ["1+1="], "answer": ["2"], "kept": [True]})
    assert store.read_samples(2).to_pylist() == [{"prompt": "1+1=", "answer": "2", "kept": True}]
