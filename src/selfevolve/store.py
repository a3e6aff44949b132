"""The run directory: everything needed to inspect, compare and resume a run.

    runs/<name>/
      config.toml                  resolved config, every default written out
      run.sqlite                   rounds, metrics, events (WAL)
      samples/round-003.parquet    every proposed candidate with its scores and verdicts
      checkpoints/round-003/       model.safetensors, model.json, optimizer.pt, state.json
      summary.json, report.html, plots/*.png

Every file is written to a temporary name, fsynced and renamed, so a run killed at any
moment leaves either the old file or the new one. A checkpoint directory is renamed into
place only when complete: its presence is the "round finished" marker resume relies on.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sqlite3
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import SafetensorError

if TYPE_CHECKING:  # torch loads only where checkpoints are used: the evolution recipes never need it
    import torch

from selfevolve.errors import CheckpointError, RunDirError

FORMAT_VERSION = 1
CHECKPOINT_FILES = ("model.safetensors", "model.json", "optimizer.pt", "state.json")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_writes: dict[str, int] = {}


def kill_point(path: Path) -> None:
    """A kill -9 at a chosen place, to test recovery without racing a timer: with
    SELFEVOLVE_KILL_AFTER=SUFFIX[@N] the process SIGKILLs itself right after its N-th (default
    first) completed write of a file or checkpoint whose path ends with SUFFIX."""
    spec = os.environ.get("SELFEVOLVE_KILL_AFTER")
    if not spec:
        return
    suffix, _, nth = spec.partition("@")
    if Path(path).as_posix().endswith(suffix):
        _writes[suffix] = _writes.get(suffix, 0) + 1
        if _writes[suffix] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    kill_point(path)


def atomic_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what}: {path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{what}: {path} is not valid JSON (truncated or corrupt)") from None


MARKER = ".selfevolve"


def write_marker(path: Path, kind: str) -> None:
    """Sign a directory as ours: only a directory with this marker may ever be replaced or deleted."""
    atomic_json(Path(path) / MARKER, {"kind": kind, "format_version": FORMAT_VERSION})


def marker_kind(path: Path) -> str | None:
    """"run" or "export" for a directory we wrote, None for anything else."""
    try:
        return json.loads((Path(path) / MARKER).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


def check_replaceable(path: Path, kind: str, overwrite: bool, option: str) -> None:
    """Refuse, touching nothing, unless `path` is free (absent or empty) or, with `overwrite`, holds
    a directory of `kind` that we wrote."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise RunDirError(f"{path} exists and is not a directory; choose another {option}")
    if not any(path.iterdir()):
        return
    found = marker_kind(path)
    if found != kind:
        what = f"a selfevolve {found}" if found else "files that selfevolve did not write"
        raise RunDirError(f"{path} holds {what}; selfevolve replaces only its own {kind} directories (marked "
                          f"by {MARKER}): choose another {option}")
    if not overwrite:
        raise RunDirError(f"{path} already holds another {kind}; choose another {option} or pass --overwrite")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextmanager
def build_beside(final: Path) -> Iterator[Path]:
    """Yield a new directory beside `final` to fill; when the block ends it takes `final`'s place
    whole (an old directory there, already checked with `check_replaceable`, is swapped out and only
    then deleted), and on an error it is removed, leaving `final` as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.new-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; a run is meant to be shared like any directory
    try:
        yield tmp
        if final.is_dir() and any(final.iterdir()):
            if _exchange(tmp, final):
                shutil.rmtree(tmp)
            else:
                old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old-"))
                os.replace(final, old / final.name)
                os.replace(tmp, final)
                shutil.rmtree(old)
        else:
            os.replace(tmp, final)  # over nothing, or over an empty directory
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(final.parent)


class RunStore:
    """One run directory. Use `RunStore.create` for a new run and `RunStore.open` to resume one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path / "run.sqlite", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS rounds (round INTEGER PRIMARY KEY, data TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS metrics (
                round INTEGER, name TEXT, value REAL, PRIMARY KEY (round, name));
            CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, kind TEXT, message TEXT);
            """
        )

    # -- creating and opening -------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, recipe: str, config_toml: str, overwrite: bool = False) -> RunStore:
        """Make a new run directory. It is built beside `path` and moved into place whole, so a crash
        leaves the previous run (with `overwrite`) intact or no directory at all."""
        path = Path(path)
        check_replaceable(path, "run", overwrite, "--out")
        with build_beside(path) as tmp:
            write_marker(tmp, "run")
            atomic_write(tmp / "config.toml", config_toml)
            store = cls(tmp)
            with store.db:
                store.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                     [("format_version", str(FORMAT_VERSION)), ("recipe", recipe)])
            store.event("created", f"recipe {recipe}")
            store.db.close()
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunStore:
        path = Path(path)
        if not (path / "config.toml").is_file() or not (path / "run.sqlite").is_file():
            raise RunDirError(f"{path} is not a selfevolve run directory (no config.toml / run.sqlite)")
        store = cls(path)
        version = store.meta("format_version")
        if version != str(FORMAT_VERSION):
            raise RunDirError(f"{path} was written by run format {version}, this selfevolve reads "
                              f"format {FORMAT_VERSION}; rerun it with this version")
        return store

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @property
    def recipe(self) -> str:
        return self.meta("recipe") or ""

    def config_values(self) -> dict[str, Any]:
        return tomllib.loads((self.path / "config.toml").read_text())

    # -- records --------------------------------------------------------------------------
    def event(self, kind: str, message: str = "") -> None:
        self.db.execute("INSERT INTO events (time, kind, message) VALUES (?, ?, ?)", (time.time(), kind, message))

    def record_round(self, round_: int, data: dict[str, Any], metrics: dict[str, float]) -> None:
        """Store one finished round; recording it again (after a resume) replaces it."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO rounds VALUES (?, ?)", (round_, json.dumps(data)))
            self.db.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?)",
                                [(round_, k, float(v)) for k, v in metrics.items()])

    def rounds(self) -> list[dict[str, Any]]:
        return [json.loads(d) for (d,) in self.db.execute("SELECT data FROM rounds ORDER BY round")]

    def write_samples(self, round_: int, columns: dict[str, list]) -> Path:
        path = self.path / "samples" / f"round-{round_:03d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table(columns), sink)
        atomic_write(path, sink.getvalue().to_pybytes())
        return path

    def read_samples(self, round_: int) -> pa.Table:
        return pq.read_table(self.path / "samples" / f"round-{round_:03d}.parquet")

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_json(self.path / "summary.json", summary)

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_dir(self, round_: int) -> Path:
        return self.path / "checkpoints" / f"round-{round_:03d}"

    def save_checkpoint(self, round_: int, model: torch.nn.Module, model_config: dict,
                        optimizer: torch.optim.Optimizer, state: dict[str, Any],
                        extra: dict[str, torch.nn.Module] | None = None) -> Path:
        """Write the round's checkpoint; `extra` modules (e.g. reward models) go to NAME.safetensors beside it."""
        import torch
        from safetensors.torch import save_file, save_model

        final = self.checkpoint_dir(round_)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {k: v.detach().contiguous() for k, v in checkpoint_tensors(model).items()}
        save_file(tensors, tmp / "model.safetensors")
        for name, module in (extra or {}).items():
            save_model(module, str(tmp / f"{name}.safetensors"))  # handles tied weights
        (tmp / "model.json").write_text(json.dumps(model_config, indent=2))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        kill_point(final)
        return final

    def completed_rounds(self) -> list[int]:
        root = self.path / "checkpoints"
        if not root.is_dir():
            return []
        return sorted(int(p.name[6:]) for p in root.iterdir()
                      if p.is_dir() and p.name.startswith("round-") and p.name[6:].isdigit())

    def last_checkpoint(self) -> Path | None:
        done = self.completed_rounds()
        return self.checkpoint_dir(done[-1]) if done else None

    def finished_checkpoint(self) -> Path:
        """The last finished round's checkpoint, or one clear error when no round has finished yet."""
        last = self.last_checkpoint()
        if last is None:
            raise CheckpointError(f"{self.path} has no finished round yet")
        return last

    def load_last(self, model: torch.nn.Module) -> torch.nn.Module:
        """The weights of the last finished round, checked and loaded into `model` (as the run's
        config builds it: LoRA adapters on their base, a policy's own shape)."""
        return model_from_checkpoint(load_checkpoint(self.finished_checkpoint()), into=model)

    # -- resuming -------------------------------------------------------------------------
    def resume_rounds(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, list[dict]]:
        """For a round-based run: load the last finished round's checkpoint into `model` and
        `optimizer` (nothing for a new run); returns the first round to run and the records of the
        rounds before it."""
        done = self.completed_rounds()
        if not done:
            return 0, []
        restore_checkpoint(self.checkpoint_dir(done[-1]), model, optimizer)
        self.event("resumed", f"from round {done[-1]}")
        return done[-1] + 1, [r for r in self.rounds() if r["round"] <= done[-1]]

    def read_state(self, what: str) -> dict | None:
        """For a generation-based run: its state.json (None for a new run), with the tensors its
        `tensors` entry names, if any, under "tensors" as a dict."""
        path = self.path / "state.json"
        if not path.exists():
            return None
        self.event("resumed", f"from its {what}")
        state = read_json(path, what)
        if "tensors" in state:
            from safetensors.torch import load_file

            state["tensors"] = load_file(self.path / state["tensors"])
        return state

    def write_state(self, state: dict, tensors: dict[str, torch.Tensor] | None = None) -> None:
        """state.json, and with `tensors` a new tensor file first (state-a or state-b, whichever the
        current JSON does not name), then the JSON that names it, then the old one goes: a kill at any
        moment leaves a JSON and the tensors it names."""
        if tensors is None:
            atomic_json(self.path / "state.json", state)
            return
        from safetensors.torch import save

        path = self.path / "state.json"
        current = json.loads(path.read_text()).get("tensors") if path.exists() else None
        name = "state-b.safetensors" if current == "state-a.safetensors" else "state-a.safetensors"
        atomic_write(self.path / name, save({k: v.contiguous() for k, v in tensors.items()}))
        atomic_json(self.path / "state.json", {**state, "tensors": name})
        for old in self.path.glob("state-*.safetensors"):
            if old.name != name:
                old.unlink()


def checkpoint_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a checkpoint of `model` holds: every weight (a tied lm_head once), or, when part of the
    model is frozen (LoRA on a pretrained base, which is read again from its own directory), only
    the trainable ones."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict()
    if len(trainable) < sum(1 for _ in model.parameters()):
        return {k: v for k, v in state.items() if k in trainable}
    cfg = getattr(model, "cfg", None)
    if cfg is not None and cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same storage as embed_tokens.weight
    return state


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint directory: tensors, model config, optimizer and run state, all validated."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist")
    missing = [f for f in CHECKPOINT_FILES if not (path / f).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    try:
        tensors = load_file(path / "model.safetensors")
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint {path}/model.safetensors is unreadable ({err})") from None
    try:
        optimizer = torch.load(path / "optimizer.pt", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged pickle/zip
        raise CheckpointError(f"checkpoint {path}/optimizer.pt is unreadable ({type(err).__name__})") from None
    return {
        "tensors": tensors,
        "model_config": read_json(path / "model.json", "checkpoint model config"),
        "optimizer": optimizer,
        "state": read_json(path / "state.json", "checkpoint state"),
    }


def restore_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load a checkpoint's weights into `model` and its optimizer state into `optimizer`; returns it."""
    ckpt = load_checkpoint(path)
    model_from_checkpoint(ckpt, into=model)
    optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt


def load_extra(path: Path, name: str, into: torch.nn.Module) -> torch.nn.Module:
    """Load NAME.safetensors of a checkpoint into a module of the same shape (see `save_checkpoint`)."""
    from safetensors.torch import load_model

    file = Path(path) / f"{name}.safetensors"
    try:
        load_model(into, str(file))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint {file} is missing or unreadable ({err})") from None
    except RuntimeError as err:  # missing, unexpected or mis-shaped tensors
        raise CheckpointError(f"checkpoint {file} does not fit this model ({str(err)[:200]})") from None
    return into


def model_from_checkpoint(ckpt: dict[str, Any], into: torch.nn.Module | None = None) -> torch.nn.Module:
    """Load checkpoint weights into `into` (or a new Transformer built from the checkpoint's config)."""
    from selfevolve.models.transformer import Transformer, TransformerConfig

    if into is None:
        try:
            into = Transformer(TransformerConfig(**ckpt["model_config"]))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint model config is not a selfevolve transformer ({err})") from None
    expected = {k: (tuple(v.shape), v.dtype) for k, v in checkpoint_tensors(into).items()}
    got = {k: (tuple(v.shape), v.dtype) for k, v in ckpt["tensors"].items()}
    if got != expected:
        diff = sorted(set(got) ^ set(expected)) or [k for k in got if got[k] != expected[k]]
        shown = f"{diff[0]}: {got[diff[0]]} where the model has {expected[diff[0]]}" if (
            diff[0] in got and diff[0] in expected) else diff[0]
        raise CheckpointError(f"checkpoint weights do not fit this model (first mismatch: {shown}); "
                              "was it written by another recipe or config?")
    into.load_state_dict(ckpt["tensors"], strict=False)
    return into
