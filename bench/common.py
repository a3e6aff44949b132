"""Shared set-up for the benchmarks: the ~1M-parameter model shape and its HF twin."""

from __future__ import annotations

import fcntl
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from selfevolve.models.hf_export import export_hf
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import atomic_write

SHAPE = {"n_layer": 4, "n_embd": 128, "n_head": 4}


def ours_and_hf(seed: int = 0) -> tuple[Transformer, torch.nn.Module]:
    """Our model with random weights, and `transformers`' LlamaForCausalLM loaded from its export."""
    import transformers

    tok = CharTokenizer()
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(tok.vocab_size, pos_encoding="rope", max_seq_len=256, **SHAPE)).eval()
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    ckpt = {"model_config": model.cfg.to_dict(), "tensors": state}
    with tempfile.TemporaryDirectory() as tmp:
        out = export_hf(ckpt, Path(tmp) / "hf")
        hf = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="sdpa").eval()
    return model, hf


def matmul_peak_gflops(device: str, n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def memory_read_gbps(device: str, n: int = 32 * 2**20, repeats: int = 10) -> float:
    """Bytes per second that a reduction over a 128 MiB tensor reads: the ceiling for KV-cache reads."""
    a = torch.randn(n, device=device)
    a.sum()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a.sum()
    if device == "cuda":
        torch.cuda.synchronize()
    return 4 * n * repeats / (time.perf_counter() - t0) / 1e9


def interleaved_best(fns: dict, repeats: int, steps: int = 1, device: str = "cpu") -> dict[str, float]:
    """Best seconds per call of each fn, timing them in alternation `repeats` times.

    Alternating, rather than timing one side after the other, gives both sides the same share of
    whatever else the (shared, noisy) machine is doing; the best of the repeats is the figure.
    """
    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for fn in fns.values():  # warm-up
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            sync()
            best[name] = min(best[name], (time.perf_counter() - t0) / steps)
    return best


def seed_list(text: str) -> list[int]:
    """Seeds from the command line: '0-9' (a range, both ends included), '0,3,5', '7' or a mix ('0,2-8')."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def emit(**record) -> dict:
    """Print one JSON line; returns the record, for a summary line over several."""
    print(json.dumps(record), flush=True)
    return record


def add_to_record(record: Path, entry: dict) -> None:
    """Append one JSON line to a record kept in the repo (bench/results/), with the commit checked out:
    studies longer than a session keep each finished run there, since runs/ is gone by the next one.
    Benches run side by side may add to one record: a lock beside it keeps each from losing another's line."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    record.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({**entry, "recorded_at": commit}) + "\n"
    with open(record.with_name(record.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        atomic_write(record, (record.read_text() if record.exists() else "") + line)


def recorded(record: Path | None, key: dict, compute, *args) -> dict:
    """The result recorded under `key` in `record` (read, not computed again), or `compute(*args)`, added there."""
    if record is not None and record.exists():
        for entry in map(json.loads, record.read_text().splitlines()):
            if entry.get("key") == key:
                return entry["result"]
    result = compute(*args)
    if record is not None:
        add_to_record(record, {"key": key, "result": result})
    return result
