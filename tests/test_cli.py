import pytest
from helpers import assert_clean_error, run_cli, sets

from selfevolve.store import RunStore


def test_list_shows_recipes_tasks_and_documented_defaults():
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    assert "recipe length-gen" in proc.stdout and "addition" in proc.stdout
    assert "target_digits = 10" in proc.stdout


@pytest.mark.parametrize("args,fragments", [
    (["run", "alphazero"], ["unknown recipe 'alphazero'", "length-gen"]),
    (["run", "length-gen", *sets(["digits=3"])], ["unknown config key 'digits'"]),
    (["run", "length-gen", *sets(["labelled_max_digits=-5"])], ["labelled_max_digits must be >= 1, got -5"]),
    (["run", "length-gen", *sets(["task=chess"])], ["unknown task 'chess'"]),
    (["run", "length-gen", *sets(["seed=x"])], ["seed: expected a number"]),
    (["run", "length-gen", "--config", "missing.toml"], ["missing.toml does not exist"]),
    (["run", "agentevol", *sets(["max_tokens=40"])], ["max_tokens (40) must be at least the longest expert reply"]),
    (["resume", "nowhere"], ["not a selfevolve run directory"]),
    (["eval", "nowhere"], ["not a selfevolve run directory"]),
])
def test_bad_input_is_one_clear_message_and_exit_2(tmp_path, args, fragments):
    assert_clean_error(run_cli(*args, cwd=tmp_path), *fragments)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_out_that_holds_another_run_is_refused(tmp_path):
    RunStore.create(tmp_path / "old", "length-gen", "seed = 0\n")
    proc = run_cli("run", "length-gen", "--out", str(tmp_path / "old"))
    assert_clean_error(proc, "already holds another run", "--overwrite")
    assert (tmp_path / "old" / "config.toml").read_text() == "seed = 0\n"


def test_broken_checkpoint_on_resume(tmp_path, tok):
    import torch

    from selfevolve.models.transformer import Transformer, TransformerConfig
    from selfevolve.train.sft import SFTConfig, make_optimizer

    store = RunStore.create(tmp_path / "run", "length-gen", "")
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=1, n_embd=8, pos_encoding="nope"))
    path = store.save_checkpoint(0, model, model.cfg.to_dict(), make_optimizer(model, SFTConfig()), {"round": 0})
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:40])
    assert_clean_error(run_cli("resume", str(tmp_path / "run")), "model.safetensors is unreadable")
    (path / "model.safetensors").write_bytes(data)  # intact, but a model of another shape
    assert_clean_error(run_cli("resume", str(tmp_path / "run")), "do not fit this model")
    assert torch.load(path / "optimizer.pt", weights_only=True)  # nothing was deleted
