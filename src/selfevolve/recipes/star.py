"""STaR / ReST-EM: rejection-sampling fine-tuning on the model's own verified answers.

Zelikman et al. (2022), "STaR: Bootstrapping Reasoning With Reasoning", arXiv:2203.14465;
Singh et al. (2023), "Beyond Human Data: Scaling Self-Training ... (ReST-EM)", arXiv:2312.06585

    round 0: supervised fine-tuning on a small labelled seed set
    iteration i: sample `samples_per_problem` answers to each of `problems_per_iteration` new
             problems (only the target is known), keep the distinct answers the verifier accepts,
             fine-tune on them (continuing, or from the round-0 model again with restart=true:
             ReST-EM), then score held-out pass@1 (greedy) and pass@k
    every iteration also records B-STaR's exploration metrics on its own samples

    selfevolve run star --set restart=true
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfevolve.config import check_min
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.progress import Progress
from selfevolve.search.sampling import answer
from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint
from selfevolve.tasks import TASKS, Problem, Task, get_task
from selfevolve.train.sft import Examples, SFTConfig, make_optimizer, train_on_pools

MAX_ANSWER = 24  # tokens an answer may take before it counts as unfinished


@dataclass
class Config:
    seed: int = 0
    """Seeds model init, problems and sampling; same seed + same machine = same result."""
    task: str = "countdown"
    """Task with a verifier: countdown, addition or multiplication."""
    difficulty: int = 4
    """Problem size: numbers given (countdown) or digits (arithmetic); training mixes easier ones in."""
    num_labelled: int = 1000
    """Labelled seed problems for round 0."""
    iterations: int = 4
    """Self-training iterations after round 0."""
    problems_per_iteration: int = 2000
    """New unlabelled problems each iteration."""
    samples_per_problem: int = 8
    """Answers sampled per problem (k of pass@k and of the B-STaR metrics)."""
    temperature: float = 1.0
    """Sampling temperature of the self-training samples (bstar retunes it each iteration)."""
    restart: bool = False
    """ReST-EM: fine-tune the round-0 model afresh each iteration on that iteration's answers."""
    labelled_fraction: float = 0.5
    """Share of each batch drawn from the labelled seed set; the rest from kept answers."""
    balance_target: int = 4
    """n* of the B-STaR balance score: distinct correct answers per problem that count as enough."""

    n_layer: int = 4
    """Transformer layers."""
    n_head: int = 4
    """Attention heads."""
    n_embd: int = 128
    """Model width."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (warmup then cosine, per phase)."""
    batch_size: int = 64
    """Sequences per optimizer step."""
    warmup_steps: int = 50
    """Linear warmup steps at the start of each phase."""
    round0_steps: int = 1500
    """Optimizer steps on the labelled seed set."""
    iteration_steps: int = 300
    """Optimizer steps per self-training iteration."""
    eval_problems: int = 300
    """Held-out problems (the same every iteration)."""
    threads: int = 0
    """torch CPU threads (0: leave torch's default)."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; valid: {', '.join(sorted(TASKS))}")
        check_min(self, 1, "difficulty", "num_labelled", "problems_per_iteration", "samples_per_problem",
                  "balance_target", "n_layer", "n_head", "n_embd", "batch_size", "eval_problems")
        check_min(self, 0, "iterations", "round0_steps", "iteration_steps", "warmup_steps", "threads")
        if self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError("temperature and learning_rate must be > 0")
        if not 0 <= self.labelled_fraction <= 1:
            raise ValueError(f"labelled_fraction must be in [0, 1], got {self.labelled_fraction}")

    def sft(self) -> SFTConfig:
        return SFTConfig(learning_rate=self.learning_rate, batch_size=self.batch_size, warmup_steps=self.warmup_steps)


def build_model(cfg: Config, tok: CharTokenizer) -> Transformer:
    mcfg = TransformerConfig(vocab_size=tok.vocab_size, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                             max_seq_len=128, pos_encoding="rope")
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return Transformer(mcfg)


def exploration_metrics(correct: np.ndarray, texts: list[list[str]], balance_target: int) -> dict[str, float]:
    """B-STaR's monitors over k samples per problem (Zeng et al. 2024, arXiv:2412.17256).

    correct: (problems, k) verdicts; texts: the answers. pass_at_k: share of problems with a
    correct answer (Pass@K-S); diversity: distinct correct answers per problem; balance: mean of
    min(distinct / n*, 1) * distinct / selected, where an exact verifier selects the correct ones.
    """
    distinct = np.array([len({t for t, c in zip(row, ok, strict=True) if c}) for row, ok in zip(texts, correct,
                                                                                                  strict=True)])
    selected = correct.sum(axis=1)
    balance = np.where(selected > 0, np.minimum(distinct / balance_target, 1) * distinct / np.maximum(selected, 1), 0)
    return {"pass_at_k": float((selected > 0).mean()), "sample_accuracy": float(correct.mean()),
            "diversity": float(distinct.mean()), "balance": float(balance.mean())}


def sample_and_verify(model, tok, task: Task, problems: list[Problem], k: int, temperature: float,
                      gen: torch.Generator) -> tuple[list[list[str]], np.ndarray]:
    texts, _ = answer(model, tok, problems, num_samples=k, temperature=temperature, generator=gen,
                      max_new=MAX_ANSWER)
    rows = [texts[i * k:(i + 1) * k] for i in range(len(problems))]
    return rows, np.array([[task.verify(p, t) for t in row] for p, row in zip(problems, rows, strict=True)])


def evaluate(model, tok, task: Task, cfg: Config, gen: torch.Generator) -> dict[str, float]:
    """Held-out pass@1 (greedy) and pass@k (k samples at the configured temperature)."""
    problems = task.sample(cfg.eval_problems, cfg.difficulty, np.random.default_rng([cfg.seed, 10_000]))
    greedy, _ = answer(model, tok, problems, max_new=MAX_ANSWER)
    _, correct = sample_and_verify(model, tok, task, problems, cfg.samples_per_problem, cfg.temperature, gen)
    return {"pass1": float(np.mean([task.verify(p, t) for p, t in zip(problems, greedy, strict=True)])),
            "passk": float(correct.any(axis=1).mean())}


def fixed_temperature(model, tok, task, cfg, problems, gen, progress) -> tuple[float, dict]:
    return cfg.temperature, {}


def learn_sft(model, optimizer, cfg: Config, labelled: Examples, kept: list[Examples], base, samples, gen,
              progress, r: int):
    """STaR's learning step: fine-tune on the kept answers (all so far, or with restart only this
    iteration's, from the round-0 weights). Returns the optimizer in use and the last loss."""
    if cfg.restart:
        model.load_state_dict(base.state_dict())
        optimizer = make_optimizer(model, cfg.sft())
    pool = [k for k in (kept[-1:] if cfg.restart else kept) if len(k)]
    if not pool:
        progress.log(f"[yellow]round {r}: no correct answer to learn from")
        return optimizer, float("nan")
    loss = train_on_pools(model, optimizer, cfg.sft(), [labelled, Examples.concat(pool)],
                          [cfg.labelled_fraction, 1 - cfg.labelled_fraction], cfg.iteration_steps, gen,
                          progress, f"round {r}: fine-tune on {len(kept[-1])} kept answers")
    return optimizer, loss


def run(cfg: Config, store: RunStore, progress: Progress, pick_temperature=fixed_temperature,
        learn=learn_sft) -> dict:
    """Run (or resume) the loop; `pick_temperature` chooses each iteration's sampling temperature and
    `learn` turns its verified samples into a model update."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tok, task = CharTokenizer(), get_task(cfg.task)
    model = build_model(cfg, tok)
    optimizer = make_optimizer(model, cfg.sft())
    seed_set = task.sample(cfg.num_labelled, cfg.difficulty, np.random.default_rng([cfg.seed, 0]), mixed=True)
    labelled = Examples.encode(tok, [p.prompt for p in seed_set], [p.answer for p in seed_set])
    kept: list[Examples] = []
    base = None  # the round-0 weights, for restart (ReST-EM)

    done = store.completed_rounds()
    first = 0
    if done:
        ckpt = load_checkpoint(store.checkpoint_dir(done[-1]))
        model_from_checkpoint(ckpt, into=model)
        optimizer.load_state_dict(ckpt["optimizer"])
        first = done[-1] + 1
        if cfg.restart:
            base = model_from_checkpoint(load_checkpoint(store.checkpoint_dir(0)))
        kept = [Examples.kept(tok, store.read_samples(r).to_pydict()) for r in range(1, first)]
        store.event("resumed", f"from round {first - 1}")
    records = [r for r in store.rounds() if r["round"] < first]

    for r in range(first, cfg.iterations + 1):
        t0 = time.time()
        rng, gen = np.random.default_rng([cfg.seed, r, 1]), torch.Generator().manual_seed(cfg.seed * 1_000_003 + r)
        record: dict = {"round": r}
        if r == 0:
            loss = train_on_pools(model, optimizer, cfg.sft(), [labelled], [1.0], cfg.round0_steps, gen, progress,
                                  f"round 0: train on {len(labelled)} labelled problems")
            base = copy.deepcopy(model) if cfg.restart else None
            record.update(kept=len(labelled), temperature=None)
        else:
            problems = task.sample(cfg.problems_per_iteration, cfg.difficulty, rng, mixed=True)
            temperature, probe = pick_temperature(model, tok, task, cfg, problems, gen, progress)
            with progress.task(f"round {r}: sample {cfg.samples_per_problem} answers x {len(problems)}", total=None):
                texts, correct = sample_and_verify(model, tok, task, problems, cfg.samples_per_problem,
                                                   temperature, gen)
            samples = sample_table(problems, texts, correct)
            store.write_samples(r, samples)
            kept.append(Examples.kept(tok, samples))
            optimizer, loss = learn(model, optimizer, cfg, labelled, kept, base, samples, gen, progress, r)
            record.update(kept=int(sum(samples["kept"])), temperature=temperature, probe=probe,
                          **exploration_metrics(correct, texts, cfg.balance_target))
        with progress.task(f"round {r}: evaluate", total=None):
            record.update(evaluate(model, tok, task, cfg, torch.Generator().manual_seed(cfg.seed + 77)))
        record.update(loss=loss, wall_seconds=time.time() - t0)
        records.append(record)
        store.record_round(r, record, {"eval/pass1": record["pass1"], "eval/passk": record["passk"]})
        store.save_checkpoint(r, model, model.cfg.to_dict(), optimizer, {"round": r, "seed": cfg.seed})
        progress.log(f"[bold]round {r}[/] pass@1 {record['pass1']:.3f}  pass@{cfg.samples_per_problem} "
                     f"{record['passk']:.3f}  kept {record['kept']}  {record['wall_seconds']:.0f}s")

    summary = {"recipe": store.recipe, "task": cfg.task, "seed": cfg.seed, "round0_pass1": records[0]["pass1"],
               "final_pass1": records[-1]["pass1"], "best_pass1": max(r["pass1"] for r in records),
               "samples_drawn": cfg.iterations * cfg.problems_per_iteration * cfg.samples_per_problem,
               "rounds": records, "wall_seconds": round(sum(r["wall_seconds"] for r in records), 2)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def sample_table(problems: list[Problem], texts: list[list[str]], correct: np.ndarray) -> dict[str, list]:
    """Every sample with its verdict; `kept` marks the first copy of each distinct correct answer."""
    cols: dict[str, list] = {"prompt": [], "answer": [], "correct": [], "kept": []}
    for p, row, ok in zip(problems, texts, correct, strict=True):
        seen: set[str] = set()
        for t, c in zip(row, ok, strict=True):
            cols["prompt"].append(p.prompt)
            cols["answer"].append(t)
            cols["correct"].append(bool(c))
            cols["kept"].append(bool(c) and t not in seen)
            seen.add(t)
    return cols


def headline(summary: dict) -> str:
    return (f"{summary['task']}: held-out pass@1 {summary['round0_pass1']:.3f} after round 0 -> "
            f"{summary['final_pass1']:.3f} after {len(summary['rounds']) - 1} iterations "
            f"(best {summary['best_pass1']:.3f}), {summary['wall_seconds']:.0f} s")


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_lines

    rounds = summary["rounds"]
    xs = [r["round"] for r in rounds]
    later = rounds[1:]
    out = [plot_lines(xs, {"pass@1 (greedy)": [r["pass1"] for r in rounds],
                           "pass@k (sampled)": [r["passk"] for r in rounds]},
                      f"{summary['task']}: held-out accuracy per iteration", "iteration", "share solved",
                      plot_dir / "accuracy.png")]
    if later:
        out.append(plot_lines([r["round"] for r in later],
                              {name: [r[name] for r in later]
                               for name in ("pass_at_k", "sample_accuracy", "balance", "temperature")},
                              "B-STaR monitors on each iteration's own samples", "iteration", "value",
                              plot_dir / "exploration.png"))
    return out
