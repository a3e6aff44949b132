"""Nothing a user owns is lost: overwrite rules, validation before any write, one-line errors, faults."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    QUICK_GP,
    QUICK_STAR,
    assert_clean_error,
    assert_resume_finishes_as,
    kill_9_after,
    run_cli,
    sets,
    summary,
    without_times,
)

from selfevolve.errors import CheckpointError, RunDirError
from selfevolve.models.hf_export import export_hf
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import MARKER, RunStore, build_beside, load_checkpoint
from selfevolve.train.sft import SFTConfig, make_optimizer


def console_script() -> str:
    """The installed `selfevolve` command itself (not `python -m`): what a user types."""
    return str(Path(sys.executable).with_name("selfevolve"))


def users_project(path: Path) -> dict[str, str]:
    files = {"config.toml": "[tool]\nname = 'mine'\n", "src/main.py": "print('hi')\n", "notes.md": "three years\n"}
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return files


def assert_untouched(path: Path, files: dict[str, str]) -> None:
    assert {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} == set(files)
    assert all((path / name).read_text() == text for name, text in files.items())


def test_overwrite_never_deletes_a_directory_selfevolve_did_not_write(tmp_path):
    project = tmp_path / "project"
    files = users_project(project)  # it even has a config.toml, as many projects do
    proc = run_cli("run", "gp", "--out", str(project), "--overwrite", *sets(QUICK_GP))
    assert_clean_error(proc, "files that selfevolve did not write")
    assert_untouched(project, files)
    with pytest.raises(RunDirError, match="did not write"):
        export_hf({"tensors": {}, "model_config": {}}, project, overwrite=True)
    assert_untouched(project, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]  # no half-made sibling either


def test_a_bad_value_with_overwrite_leaves_the_finished_run_as_it_was(tmp_path):
    old = tmp_path / "old"
    assert run_cli("run", "gp", "--out", str(old), *sets(QUICK_GP)).returncode == 0
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    for recipe, bad, fragment in [("gp", "seed=-1", "seed must be >= 0"), ("star", "seed=-1", "seed must be >= 0"),
                                  ("finmem", "seed=-1", "seed must be >= 0"),
                                  ("length-gen", "n_embd=65", "n_embd (65) must be n_head (4) times")]:
        proc = run_cli("run", recipe, "--out", str(old), "--overwrite", "--set", bad)
        assert_clean_error(proc, fragment)
        assert {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    # a valid overwrite replaces our own run, and leaves nothing beside it
    proc = run_cli("run", "gp", "--out", str(old), "--overwrite", *sets(QUICK_GP + ["seed=1"]))
    assert proc.returncode == 0, proc.stderr
    assert summary(old)["seed"] == 1 and (old / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_a_crash_while_building_the_new_run_leaves_the_old_one_intact(tmp_path):
    RunStore.create(tmp_path / "run", "gp", "seed = 0\n")
    with pytest.raises(RuntimeError, match="power cut"), build_beside(tmp_path / "run") as new:
        (new / "config.toml").write_text("seed = 1\n")
        raise RuntimeError("power cut")
    assert (tmp_path / "run" / "config.toml").read_text() == "seed = 0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    RunStore.create(tmp_path / "run", "gp", "seed = 1\n", overwrite=True)
    assert (tmp_path / "run" / "config.toml").read_text() == "seed = 1\n"
    assert RunStore.open(tmp_path / "run").recipe == "gp"


@pytest.mark.parametrize("args,fragment", [
    ([], "Missing command"),
    (["run"], "Missing argument 'recipe'"),
    (["run", "gp", "--bogus"], "No such option: --bogus"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["serve", "nowhere", "--max-batch", "0"], "--max-batch must be >= 1, got 0"),
    (["serve", "nowhere", "--max-context", "0"], "--max-context must be >= 1, got 0"),
    (["serve", "nowhere", "--port", "70000"], "--port must be in 1..65535, got 70000"),
])
def test_usage_errors_are_one_line_and_exit_2_from_the_real_command(tmp_path, args, fragment):
    proc = subprocess.run([console_script(), *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "80"})
    assert_clean_error(proc, fragment)
    assert proc.stderr.strip().count("\n") == 0, proc.stderr  # one line, even at 80 columns


def test_errors_print_user_values_verbatim(tmp_path):
    assert_clean_error(run_cli("run", "star", "--set", "seed=[inf, 7]", cwd=tmp_path), "got '[inf, 7]'")
    assert_clean_error(run_cli("run", "gp", "--set", "data=[red].csv", cwd=tmp_path), "data file [red].csv")


def tiny_checkpoint(tmp_path: Path, tok) -> dict:
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(tok.vocab_size, n_layer=1, n_head=2, n_embd=16, pos_encoding="rope"))
    store = RunStore.create(tmp_path / "run", "length-gen", "")
    return load_checkpoint(store.save_checkpoint(0, model, model.cfg.to_dict(), make_optimizer(model, SFTConfig()),
                                                 {"round": 0}))


def test_export_checks_every_weight_against_the_config_and_replaces_only_an_export(tmp_path, tok):
    ckpt = tiny_checkpoint(tmp_path, tok)
    name = next(iter(ckpt["tensors"]))
    for bad, fragment in [({**ckpt["tensors"], name: ckpt["tensors"][name].half()}, "torch.float16"),
                          ({**ckpt["tensors"], name: ckpt["tensors"][name][:1]}, name),
                          ({k: v for k, v in ckpt["tensors"].items() if k != name}, name),
                          ({**ckpt["tensors"], "stowaway": torch.zeros(2)}, "stowaway")]:
        with pytest.raises(CheckpointError, match=fragment):
            export_hf({**ckpt, "tensors": bad}, tmp_path / "hf")
        assert not (tmp_path / "hf").exists()
    export_hf(ckpt, tmp_path / "hf")
    with pytest.raises(RunDirError, match="already holds another export"):
        export_hf(ckpt, tmp_path / "hf")
    export_hf(ckpt, tmp_path / "hf", overwrite=True)
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["hidden_size"] == 16
    with pytest.raises(RunDirError, match="a selfevolve run"):  # an export never replaces a run
        export_hf(ckpt, tmp_path / "run", overwrite=True)


def test_a_second_kill_during_resume_loses_nothing(tmp_path):
    config = QUICK_STAR + ["iterations=2"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli("run", "star", "--out", str(straight), *sets(config)).returncode == 0
    kill_9_after(["run", "star", "--out", str(killed), *sets(config)], "checkpoints/round-000")
    # the resume is killed too, in the middle of iteration 1 (its samples written, its model not)
    kill_9_after(["resume", str(killed)], "samples/round-001.parquet")
    assert not (killed / "checkpoints" / "round-001").exists()
    assert_resume_finishes_as(killed, straight)
    assert [r["round"] for r in RunStore.open(killed).rounds()] == [0, 1, 2]


def test_a_disk_that_fills_during_a_checkpoint_stops_the_run_in_one_line_and_resume_finishes_it(tmp_path,
                                                                                             finished_run):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        st = os.statvfs(disk)
        ballast = disk / "ballast"  # leaves 150 KiB: the round-0 checkpoint (210 KiB) does not fit
        ballast.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 150 * 1024))
        run = disk / "run"
        proc = run_cli("run", "star", "--out", str(run), *sets(QUICK_STAR))
        assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        line = proc.stderr.strip().splitlines()[-1]
        assert "No space left on device" in line and f"selfevolve resume {run}" in line, proc.stderr
        assert not (run / "checkpoints" / "round-000").exists()
        ballast.unlink()
        proc = run_cli("resume", str(run))
        assert proc.returncode == 0, proc.stderr
        assert without_times(summary(run)) == without_times(summary(finished_run("star", QUICK_STAR)))
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["round-000", "round-001"]
    finally:
        subprocess.run(["umount", str(disk)], check=True)
