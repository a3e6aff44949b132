"""`selfevolve serve`: throughput at concurrency 1, 8 and 64 against the same server with batching off,
and a short request's latency while a 4,000-character prompt is being served, against the same
server reading whole prompts at once (--prefill-chunk 0).

    python bench/serve.py [--new 32] [--requests 64] [--repeats 10]
All servers run as real processes on 127.0.0.1 serving the same ~1M-parameter model (random
weights: the work per token is what counts) and are driven by the official openai client from
a thread pool. Prints one JSON line per concurrency (requests/s and generated tokens/s of each)
and one for latency (median idle and loaded seconds of each, and loaded / idle).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import torch
from common import SHAPE, emit

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import RunStore


def make_run(path: Path, max_seq_len: int = 256) -> Path:
    store = RunStore.create(path, "star", "")
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(CharTokenizer().vocab_size, pos_encoding="rope", max_seq_len=max_seq_len,
                                          **SHAPE))
    store.save_checkpoint(0, model, model.cfg.to_dict(), torch.optim.AdamW(model.parameters()), {})
    return path


def start(run_dir: Path, *options: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "selfevolve", "serve", str(run_dir), "--port", str(port),
                             *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    while True:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=1)
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)


def load(base: str, concurrency: int, requests: int, new: int) -> tuple[float, float]:
    """(requests/s, generated tokens/s) for `requests` greedy completions, `concurrency` at a time."""
    client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
    prompts = [f"{i}+{i * 7 % 100}=" for i in range(requests)]

    def one(prompt: str) -> int:
        out = client.completions.create(model="bench", prompt=prompt, max_tokens=new, temperature=0)
        return out.usage.completion_tokens

    one(prompts[0])  # warm up
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(one, prompts))
    seconds = time.perf_counter() - t0
    return requests / seconds, tokens / seconds


def latency(base: str, repeats: int, new: int) -> tuple[float, float]:
    """Median seconds of a short greedy request alone, and sent 50 ms after a 4,000-character one."""
    client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)

    def short() -> float:
        t0 = time.perf_counter()
        client.completions.create(model="bench", prompt="3+4=", max_tokens=new, temperature=0)
        return time.perf_counter() - t0

    def long() -> None:
        client.completions.create(model="bench", prompt="12+34=" * 666 + "1234", max_tokens=new, temperature=0)

    short()  # warm up
    idle = [short() for _ in range(repeats)]
    loaded = []
    with ThreadPoolExecutor(1) as pool:
        for _ in range(repeats):
            pending = pool.submit(long)
            time.sleep(0.05)
            loaded.append(short())
            pending.result()
    return statistics.median(idle), statistics.median(loaded)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new", type=int, default=32, help="tokens generated per request")
    ap.add_argument("--requests", type=int, default=64, help="requests per measurement")
    ap.add_argument("--repeats", type=int, default=10, help="latency samples of each kind")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run(Path(tmp) / "bench")
        long_dir = make_run(Path(tmp) / "bench-long", max_seq_len=4096 + args.new)
        servers = {"batched": start(run_dir, "--max-batch", "64"), "unbatched": start(run_dir, "--max-batch", "1"),
                   "chunked": start(long_dir, "--name", "bench"),
                   "whole": start(long_dir, "--name", "bench", "--prefill-chunk", "0")}
        try:
            for concurrency in (1, 8, 64):
                requests = args.requests if concurrency > 1 else max(8, args.requests // 8)
                ours = load(servers["batched"][1], concurrency, requests, args.new)
                peer = load(servers["unbatched"][1], concurrency, requests, args.new)
                emit(bench="serve", concurrency=concurrency, requests=requests, new_tokens=args.new,
                     peer="selfevolve serve --max-batch 1 (no batching), same process layout",
                     requests_per_s=round(ours[0], 2), tokens_per_s=round(ours[1], 1),
                     peer_requests_per_s=round(peer[0], 2), peer_tokens_per_s=round(peer[1], 1),
                     speedup=round(ours[1] / peer[1], 2))
            ours, peer = latency(servers["chunked"][1], args.repeats, args.new), latency(servers["whole"][1],
                                                                                          args.repeats, args.new)
            emit(bench="serve_latency", figure="short request latency while a 4,000-character prompt is served",
                 unit="s", new_tokens=args.new, repeats=args.repeats,
                 peer="selfevolve serve --prefill-chunk 0 (whole prompt at once), same process layout",
                 idle_s=round(ours[0], 4), loaded_s=round(ours[1], 4), ratio=round(ours[1] / ours[0], 2),
                 peer_idle_s=round(peer[0], 4), peer_loaded_s=round(peer[1], 4),
                 peer_ratio=round(peer[1] / peer[0], 2))
        finally:
            for proc, _ in servers.values():
                proc.terminate()


if __name__ == "__main__":
    main()
