"""Self-improving transformers: length generalisation by training on their own filtered answers.

Lee, Kazemnejad, Mitra et al. (2025), "Self-Improving Transformers Overcome Easy-to-Hard and
Length Generalization Challenges", https://arxiv.org/abs/2502.01612

    round 0: train a tiny transformer on labelled problems with 1..labelled_max_digits digits
    round r: make unlabelled problems `digits_per_round` digits longer, answer them with the
             current model, keep the answers that pass unsupervised filters (length check,
             agreement of a+b with b+a, of several digit offsets, of samples), fine-tune on them
    the ground-truth checker only reports held-out accuracy and pseudo-label error

    selfevolve run length-gen --set seed=1 --set target_digits=20
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfevolve.config import check_min, check_one_of
from selfevolve.errors import SelfEvolveError
from selfevolve.judge.consistency import ConsistencyConfig, self_labels
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import POS_ENCODINGS, Transformer, TransformerConfig
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs, seeded
from selfevolve.search.answers import kept_rows
from selfevolve.search.sampling import exact_match_by_group
from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint
from selfevolve.tasks import TASKS, Task, get_task
from selfevolve.tasks.arithmetic import ArithmeticTask
from selfevolve.tasks.base import SPLITS, held_out_split, sample_unseen
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools


@dataclass
class Config(ConsistencyConfig, TrainingConfig):
    seed: int = 0
    """Seeds model init, data and sampling; same seed + same machine = same result."""
    task: str = "addition"
    """Arithmetic task: addition or multiplication (reversed digits)."""
    labelled_max_digits: int = 5
    """Labels exist for operands of 1..labelled_max_digits digits (round 0 data)."""
    target_digits: int = 10
    """Self-improve until unlabelled problems reach this many digits."""
    digits_per_round: int = 1
    """How many digits longer the unlabelled problems get when the model is ready to move on."""
    advance_at: float = 0.6
    """Move to longer problems once this share of a round's self-labels passes the filters
    (an unsupervised sign the model masters the length); otherwise repeat the length."""
    max_rounds: int = 20
    """Stop after this many self-improvement rounds even if target_digits is not reached."""
    num_labelled: int = 100_000
    """Labelled round-0 problems, equally many per length 1..labelled_max_digits."""

    # TrainingConfig defaults this recipe changes
    n_embd: int = 64
    learning_rate: float = 3e-3
    pos_encoding: str = "abacus-all"
    """abacus-all (learned digit-index embedding + RoPE and ALiBi over digit indices), abacus-alibi,
    abacus-rope, abacus-both, abacus, rope or nope (see models/transformer.py)."""
    max_digit_offset: int = 20
    """Training shifts digit indices by a random offset in [0, max_digit_offset) per sequence."""

    round0_steps: int = 1500
    """Optimizer steps on labelled data in round 0."""
    round_steps: int = 400
    """Optimizer steps per self-improvement round."""
    self_data_fraction: float = 0.5
    """Share of each self-improvement batch drawn from self-labelled data (rest: labelled)."""

    num_unlabelled: int = 5000
    """Unlabelled problems the model answers each round."""

    eval_problems: int = 200
    """Held-out problems per length (both operands of that many digits)."""
    eval_extra_digits: int = 2
    """Evaluate up to target_digits + this many digits."""
    eval_split: str = "test"
    """Held-out split: test (what results report) or dev (none of them test, labelled or
    self-labelled problems: for choosing settings without touching test)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; valid: {', '.join(sorted(TASKS))}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"pos_encoding must be one of {', '.join(POS_ENCODINGS)}, got {self.pos_encoding!r}")
        check_min(self, 1, "labelled_max_digits", "digits_per_round", "num_labelled", "num_unlabelled", "max_rounds",
                  "eval_problems")
        if self.target_digits < self.labelled_max_digits:
            raise ValueError(f"target_digits ({self.target_digits}) must be >= labelled_max_digits "
                             f"({self.labelled_max_digits})")
        check_min(self, 0, "round0_steps", "round_steps", "max_digit_offset", "eval_extra_digits")
        check_one_of(self, "eval_split", SPLITS)
        for name in ("self_data_fraction", "advance_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def build_model(cfg: Config, tok: CharTokenizer) -> Transformer:
    max_digits = cfg.target_digits + cfg.eval_extra_digits + 2
    mcfg = TransformerConfig(
        vocab_size=tok.vocab_size, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
        max_seq_len=4 * max_digits + 8, pos_encoding=cfg.pos_encoding,
        digit_pos_size=max_digits + cfg.max_digit_offset + 2,
        digit_token_ids=tuple(tok.digit_ids), run_start_token_ids=tuple(tok.encode("=")),
    )
    return seeded(lambda: Transformer(mcfg), cfg.seed, "init")


def labelled_set(cfg: Config, task: Task) -> list:
    """The labelled problems of round 0: `num_labelled` spread over 1..labelled_max_digits digits."""
    rng0, per_length = rngs(cfg.seed, 0).np, cfg.num_labelled // cfg.labelled_max_digits
    return [p for d in range(1, cfg.labelled_max_digits + 1) for p in task.sample(per_length, d, rng0, mixed=True)]


def held_out_sets(cfg: Config, task: Task, labelled: set[str], max_digits: int | None = None) -> dict[str, list]:
    """Held-out problems of the eval split per length, none of them a labelled one (the same every
    round). Short lengths can run out of unseen problems (all 100 one-digit sums are labelled):
    those sets are smaller, or empty."""
    return {str(d): held_out_split(task, cfg.eval_problems, d, cfg.seed, cfg.eval_split, labelled, d)[0]
            for d in range(1, (max_digits or cfg.target_digits + cfg.eval_extra_digits) + 1)}


def self_label(model: Transformer, tok: CharTokenizer, task: ArithmeticTask, cfg: Config, digits: int,
               rng: np.random.Generator, gen: torch.Generator, held_out: set[str], progress: Progress,
               title: str) -> dict[str, list]:
    """Answer unlabelled problems (none of them held out) and decide, without labels, which answers to keep."""
    half = cfg.num_unlabelled // 2  # half with both operands this long (like the held-out set), half mixed
    problems = (sample_unseen(task, half, digits, rng, held_out)[0]
                + sample_unseen(task, cfg.num_unlabelled - half, digits, rng, held_out, mixed=True)[0])
    labels = self_labels(model, tok, task, problems, cfg, digits, cfg.max_digit_offset, gen, progress, title)
    return {"prompt": [p.prompt for p in problems], "digits": [p.difficulty for p in problems], **labels,
            "correct": [task.verify(p, a) for p, a in zip(problems, labels["answer"], strict=True)]}  # reporting


def next_digits(cfg: Config, records: list[dict]) -> int | None:
    """Length of the next round's unlabelled problems, or None when the target is mastered.

    Decided from unsupervised signals only: a length is mastered once the share of self-labels
    that passed the filters reaches `advance_at`.
    """
    if not records:
        return None
    last = records[-1]
    if last["round"] > 0 and last["kept_share"] < cfg.advance_at:
        return last["digits_labelled"]  # not yet reliable at this length: label it again
    if last["digits_labelled"] >= cfg.target_digits:
        return None
    return min(cfg.target_digits, last["digits_labelled"] + cfg.digits_per_round)


def round_record(r: int, digits: int, kept: int, kept_share: float, error: float | None, acc: dict, loss: float,
                 t0: float) -> dict:
    return {"round": r, "digits_labelled": digits, "kept": kept, "kept_share": round(kept_share, 4),
            "pseudo_label_error": error, "accuracy_by_digits": acc, "train_loss": loss,
            "wall_seconds": round(time.time() - t0, 2)}


def round_line(record: dict) -> str:
    shown = " ".join(f"{d}:{a:.2f}" for d, a in record["accuracy_by_digits"].items() if a is not None)
    error = "-" if record["pseudo_label_error"] is None else f"{record['pseudo_label_error']:.3f}"
    return (f"[bold]round {record['round']}[/] digits {record['digits_labelled']}  kept {record['kept']}  "
            f"label error {error}  {record['wall_seconds']:.0f}s  acc {shown}")


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    """Run (or resume) the recipe in `store`; returns the summary it writes to summary.json."""
    cfg.use_threads()
    tok, task = CharTokenizer(), get_task(cfg.task)
    model = build_model(cfg, tok)
    optimizer = make_optimizer(model, cfg.sft())
    # ---- resume: the last finished round's checkpoint (checked before any data is made) and the
    # self-labels kept up to it
    first, records = store.resume_rounds(model, optimizer)
    labelled_problems = labelled_set(cfg, task)
    labelled = Examples.of_problems(tok, labelled_problems)
    held_out = held_out_sets(cfg, task, {p.prompt for p in labelled_problems})
    unseen_by = {p.prompt for problems in held_out.values() for p in problems}  # no self-labelled one is held out
    self_data: list[Examples] = []
    for r in range(1, first):
        self_data.append(Examples.encode(tok, *kept_rows(store.read_samples(r).to_pydict())))
    digits = next_digits(cfg, records)

    for r in range(first, cfg.max_rounds + 1):
        if r > 0 and digits is None:
            break
        t0 = time.time()
        rng, gen, _ = rngs(cfg.seed, r)
        if r == 0:
            # ---- LEARN from labels
            loss, _ = train_on_pools(model, optimizer, cfg.sft(), [labelled], [1.0], cfg.round0_steps, gen, progress,
                                  f"round 0: train on 1-{cfg.labelled_max_digits} digits", cfg.max_digit_offset)
            digits, kept, error = cfg.labelled_max_digits, len(labelled), 0.0
        else:
            # ---- PROPOSE and SELECT: the model labels longer problems, filters keep the reliable ones
            samples = self_label(model, tok, task, cfg, digits, rng, gen, unseen_by, progress,
                                 f"round {r}: self-label {digits}-digit problems")
            store.write_samples(r, samples)
            kept = sum(samples["kept"])
            wrong = sum(k and not c for k, c in zip(samples["kept"], samples["correct"], strict=True))
            error = wrong / kept if kept else None
            self_data.append(Examples.encode(tok, *kept_rows(samples)))
            # ---- LEARN from labels and self-labels
            pools = [p for p in self_data if len(p)]
            if pools:
                loss, _ = train_on_pools(model, optimizer, cfg.sft(), [labelled, Examples.concat(pools)],
                                      [1 - cfg.self_data_fraction, cfg.self_data_fraction], cfg.round_steps, gen,
                                      progress, f"round {r}: fine-tune ({kept} kept)", cfg.max_digit_offset)
            else:
                loss = float("nan")
                progress.log(f"[yellow]round {r}: no self-label passed the filters; nothing to learn")
        acc = exact_match_by_group(model, tok, task, held_out, progress, f"round {r}: evaluate")
        record = round_record(r, digits, kept, kept / (cfg.num_labelled if r == 0 else cfg.num_unlabelled),
                              error, acc, loss, t0)
        records.append(record)
        store.record_round(r, record, {"eval/accuracy_at_target": acc[str(cfg.target_digits)],
                                        "select/kept": kept, "train/loss": loss})
        store.save_checkpoint(r, model, model.cfg.to_dict(), optimizer,
                              {"round": r, "digits_labelled": digits, "seed": cfg.seed})
        progress.log(round_line(record))
        digits = next_digits(cfg, records)

    summary = summarize(cfg, records)
    summary["held_out_problems"] = {d: len(problems) for d, problems in held_out.items()}
    store.write_summary(summary)
    store.event("finished")
    return summary


def summarize(cfg: Config, records: list[dict]) -> dict:
    final = records[-1]["accuracy_by_digits"]
    reached = max((int(d) for d, a in final.items() if a is not None and a >= 0.9), default=0)
    return {"recipe": "length-gen", "task": cfg.task, "seed": cfg.seed, "trained_max_digits": cfg.labelled_max_digits,
            "target_digits": cfg.target_digits, "reached_digits": reached, "accuracy_by_digits": final,
            "pseudo_label_error_by_round": [r["pseudo_label_error"] for r in records], "rounds": records,
            "wall_seconds": round(sum(r["wall_seconds"] for r in records), 2)}


def headline(summary: dict) -> str:
    return (f"reached {summary['reached_digits']} digits at >= 90% exact match (labels up to "
            f"{summary['trained_max_digits']}) in {summary['wall_seconds']:.0f} s")


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_accuracy_heatmap, plot_pseudo_labels

    rounds = summary["rounds"]
    out = [plot_accuracy_heatmap(rounds, plot_dir / "accuracy_by_digits.png")]
    if len(rounds) > 1:
        out.append(plot_pseudo_labels(rounds, plot_dir / "pseudo_labels.png"))
    return out


def table(summary: dict):
    from selfevolve.report import accuracy_by_length_table

    return accuracy_by_length_table(summary["rounds"])


def evaluate_run(store: RunStore, cfg: Config, max_digits: int | None = None,
                 problems: int | None = None) -> tuple[str, dict[str, float]]:
    """`selfevolve eval DIR`: the latest checkpoint's held-out exact match per number of digits."""
    if max_digits is not None and max_digits < 1:
        raise SelfEvolveError(f"--max-digits must be >= 1, got {max_digits}")
    if problems is not None:
        cfg = dataclasses.replace(cfg, eval_problems=problems)
    last, task = store.last_checkpoint(), get_task(cfg.task)
    model = model_from_checkpoint(load_checkpoint(last))
    sets = held_out_sets(cfg, task, {p.prompt for p in labelled_set(cfg, task)}, max_digits)
    return f"{last.name}: held-out exact match", exact_match_by_group(model, CharTokenizer(), task, sets)


def export(store: RunStore, cfg: Config, out: Path, overwrite: bool) -> Path:
    """`selfevolve export DIR --hf OUT`: the latest checkpoint as a Hugging Face model directory."""
    from selfevolve.models.hf_export import export_hf

    return export_hf(load_checkpoint(store.finished_checkpoint()), out, overwrite=overwrite)


RECIPE = Recipe(Config, run, headline, plots, run_name=lambda cfg: cfg.task, table=table, evaluate=evaluate_run,
                export=export)
