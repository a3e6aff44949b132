"""Where one GRPO step of bench/grpo_vs_trl.py goes: milliseconds per phase, on the same round-0 model.

    python bench/rl_step.py [--seed 0] [--steps 30] [--threads 2] [--profile] [--compiled] [--split] [--native]

Phases: sampling (and scoring) the completions, packing the shared prompts and the reference's forward,
the policy's forward and loss, backward, and the optimiser step (clip + AdamW). Also prints the
machine's matrix-product rate at the step's largest product, against which the model's FLOPs can be
read, and the milliseconds of one sampling step (a token for every row, 16 cached) at the step's 64 rows
and at one row, where the kernels have almost nothing to do: the per-operation floor of each token; and
the same step with the blocks run through their modules instead of as plain functions of their weights
(the sampler's way, the same values), from the same run. One JSON line; with --profile a second one: the
operators that take most of the steps' CPU time after warm-up (torch.profiler, which slows them: phase
times then read high), each with its share, calls and mean microseconds. With --compiled, a third: the
same sampling step under `torch.compile` (inductor, dynamic shapes, as the cache grows a token a step),
beside the first line's eager times from the same run, and the seconds of its first call, which
compiles. With --split, a fourth: the step at 64 rows on one torch thread, on two, and as two halves of
32 rows run at once by two Python threads of one torch thread each (the second core is idle while we
sample), with one half alone. With --bf16, a fifth: the training phases again with the reference's and
the policy's passes under bf16 autocast (fast products on a CPU with AMX tiles), beside fp32 phases from
the same run, and the matrix-product rate of each at the step's largest product. With --native, the
trainer runs with `native=true` (models/native.py: the passes in C, AdamW fused). Every run also times the
sampling step through the C forward (`decode_step_native_ms`).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from common import emit
from grpo_vs_trl import NEW_TOKENS, our_trainer, round0

from selfevolve.judge.rewards import correct_reward
from selfevolve.models.hf import load
from selfevolve.models.native import NativeForward
from selfevolve.models.transformer import KVCache
from selfevolve.rng import rngs
from selfevolve.tasks import get_task
from selfevolve.train.rl import RLConfig, advantages, sample_batch, step_problems
from selfevolve.train.sft import lr_at


def decode_step(model, rows: int, cached: int = 16, plain: bool = True, native: bool = False):
    """One sampling step of `rows` rows, a new token after `cached` ones each, as a call to repeat: with
    the blocks as plain functions, as the sampler runs them, (plain=False) through their modules, or
    (native) through the C forward."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(model.cfg.vocab_size, (rows, cached + 1), generator=gen)
    positions = torch.arange(cached + 1).expand(rows, -1)
    mask = torch.ones(rows, 1, 1, cached + 1, dtype=torch.bool)
    cache = KVCache(model.cfg, rows, cached + 1, torch.float32, torch.device("cpu"))
    with torch.inference_mode():
        model(ids[:, :cached], positions=positions[:, :cached], cache=cache)  # real keys and values in the cache

    blocks = model.plain_blocks() if plain else None
    fast = NativeForward(model) if native else None

    def step() -> None:
        cache.length = cached
        with torch.inference_mode():  # per thread: inference mode is thread-local
            if fast is not None:
                model.lm_head(fast.features(ids[:, cached:], positions[:, cached:], mask, cache))
            else:
                model(ids[:, cached:], positions=positions[:, cached:], mask=mask, cache=cache, blocks=blocks)
    return step


def median_ms(fn, repeats: int = 200) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times)), 3)


def matmul_gflops(a: torch.Tensor, b: torch.Tensor, repeats: int = 50) -> float:
    """The rate of a @ b, after one warm-up product."""
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] * repeats / (time.perf_counter() - t0) / 1e9


def decode_step_ms(model, rows: int, plain: bool = True, native: bool = False) -> float:
    """Median milliseconds of one sampling step of `rows` rows."""
    return median_ms(decode_step(model, rows, plain=plain, native=native))


def split_step_ms(model, rows: int) -> dict:
    """The sampling step of `rows` rows on one thread, on two (torch's intra-op threads), and split into two
    halves run at once by two Python threads of one torch thread each: what the second core, idle while
    sampling, could give if the sampler split its rows."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        halves = [decode_step(model, rows // 2) for _ in range(2)]
        with ThreadPoolExecutor(2) as pool:
            split = median_ms(lambda: list(pool.map(lambda half: half(), halves)))
        one, half = decode_step_ms(model, rows), median_ms(halves[0])
        torch.set_num_threads(2)
        return {"one_thread": one, "two_threads": decode_step_ms(model, rows), "split_in_two_threads": split,
                "half_on_one_thread": half}
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="also print the operators that take the time")
    ap.add_argument("--compiled", action="store_true", help="also time the sampling step under torch.compile")
    ap.add_argument("--split", action="store_true", help="also time the sampling step split between two threads")
    ap.add_argument("--bf16", action="store_true", help="also time the training phases under bf16 autocast")
    ap.add_argument("--native", action="store_true", help="the trainer's native=true (the forward in C)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, tok = load(str(round0(Path(tmp), args.seed)))
    task = get_task("countdown")
    trainer = our_trainer(model, tok, args.steps, RLConfig.rl_learning_rate, 0.04, group_size=8, prompts_per_step=8,
                           native=args.native)
    cfg, sft = trainer.cfg, trainer.sft
    problems = task.sample(args.steps * cfg.prompts_per_step, 3, rngs(args.seed, "rl-bench").np, mixed=True)
    gen, reward = rngs(args.seed, "bench").torch, correct_reward(task)
    phases = {name: [] for name in ("sample", "prepare", "forward", "backward", "optimizer")}

    def step(s: int, bf16: bool = False):
        """One step, its phases timed into `phases`; returns its prepared batch."""
        chunk = step_problems(problems, s, cfg.prompts_per_step)
        t = [time.perf_counter()]
        batch = sample_batch(trainer.policy, [p.prompt for p in chunk], {"problem": chunk}, reward, cfg.group_size,
                             NEW_TOKENS, cfg.rl_temperature, gen, cfg.native)
        t.append(time.perf_counter())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            prepared = trainer.prepare(batch)
            t.append(time.perf_counter())
            model.train()
            loss, _ = trainer.loss(prepared, advantages(batch.rewards, cfg.algorithm).flatten(), cfg.kl_coef,
                                   NEW_TOKENS)
        t.append(time.perf_counter())
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), sft.grad_clip, foreach=True)
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr_at(s, args.steps, sft)
        trainer.optimizer.step()
        t.append(time.perf_counter())
        for name, a, b in zip(phases, t[:-1], t[1:], strict=True):
            phases[name].append(b - a)
        return prepared

    for s in range(3):  # warm-up: not in the medians, nor in the profile
        step(s)
    profiling = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.profile else None
    with profiling or contextlib.nullcontext():
        for s in range(3, args.steps):
            prepared = step(s)
    tokens = int(prepared.shared.ids.numel()) if prepared.shared is not None else int(prepared.inputs.numel())
    a, b = torch.randn(tokens, model.cfg.n_embd), torch.randn(model.cfg.n_embd, model.cfg.intermediate_size)
    gflops = matmul_gflops(a, b)
    ms = {f"{name}_ms": round(1000 * float(np.median(v[3:])), 2) for name, v in phases.items()}
    rows = (cfg.group_size * cfg.prompts_per_step, 1)
    eager = {r: decode_step_ms(model, r) for r in rows}
    modules = {r: decode_step_ms(model, r, plain=False) for r in rows}
    native = {r: decode_step_ms(model, r, native=True) for r in rows}
    emit(bench="rl_step", seed=args.seed, steps=args.steps, threads=args.threads, native=args.native,
         unit="ms per step (median)",
         **ms, step_ms=round(sum(ms.values()), 2), packed_tokens_last_step=tokens,
         matmul_gflops_at_that_size=round(gflops, 1), decode_step_ms=eager, decode_step_through_modules_ms=modules,
         decode_step_native_ms=native)
    if profiling is not None:
        ops = sorted(profiling.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in ops)
        emit(bench="rl_step_profile", seed=args.seed, steps=args.steps - 3, unit="share of self CPU time",
             top=[{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls": e.count,
                   "mean_us": round(e.self_cpu_time_total / e.count, 1)} for e in ops[:12]])
    if args.compiled:
        compiled = torch.compile(model, dynamic=True)  # reads model.cfg through to the model
        t0 = time.perf_counter()
        median_ms(decode_step(compiled, rows[0]), repeats=1)  # compiles the prefill's graph and the step's
        first_call_s = time.perf_counter() - t0  # shorter when inductor's disk cache holds an earlier run's
        emit(bench="rl_step_compiled", seed=args.seed, unit="ms per sampling step (median)", eager=eager,
             compiled={r: decode_step_ms(compiled, r) for r in rows}, first_call_s=round(first_call_s, 1))
    if args.split:
        emit(bench="rl_step_split", seed=args.seed, rows=rows[0], unit="ms per sampling step (median)",
             **split_step_ms(model, rows[0]))
    if args.bf16:
        timed = {}
        for bf16 in (False, True, False, True):  # in turn, against the machine's drift
            for v in phases.values():
                v.clear()
            for s in range(args.steps):
                step(s, bf16)
            timed.setdefault(bf16, []).append({n: 1000 * float(np.median(v[3:])) for n, v in phases.items()})
        a16, b16 = a.bfloat16(), b.bfloat16()
        emit(bench="rl_step_bf16", seed=args.seed, steps=args.steps, unit="ms per step (median of two runs' medians)",
             **{("bf16" if bf16 else "fp32"): {f"{n}_ms": round(float(np.median([r[n] for r in runs])), 2)
                                               for n in phases} for bf16, runs in timed.items()},
             matmul_gflops_at_that_size={"fp32": round(gflops, 1), "bf16": round(matmul_gflops(a16, b16), 1)})


if __name__ == "__main__":
    main()
