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

from selfevolve.config import check_min
from selfevolve.errors import SelfEvolveError
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import POS_ENCODINGS, Transformer, TransformerConfig
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs, seeded
from selfevolve.search.answers import kept_rows
from selfevolve.search.sampling import answer, majority_vote
from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint
from selfevolve.tasks import TASKS, Task, get_task
from selfevolve.tasks.arithmetic import ArithmeticTask
from selfevolve.tasks.base import sample_unseen
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

FILTERS = ("length", "commute", "split", "offsets", "vote", "confidence")


@dataclass
class Config(TrainingConfig):
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
    filters: tuple[str, ...] = ("length", "commute", "split")
    """Unsupervised filters a self-label must pass: length, commute, split, offsets, vote, confidence."""
    split_checks: int = 9
    """split filter: the answer must agree with the model's answers to the problem split into its
    k lowest digits and the rest, for k = d-1, d-2, ... (this many values): easier problems."""
    num_offsets: int = 3
    """offsets filter: greedy answers under this many digit-index offsets must agree."""
    num_votes: int = 8
    """vote filter: samples per problem at vote_temperature."""
    vote_temperature: float = 0.7
    """vote filter: sampling temperature."""
    agreement_threshold: float = 0.8
    """vote filter: the greedy answer must have at least this share of the votes."""
    min_confidence: float = 0.9
    """confidence filter: every answer token must have at least this probability."""

    eval_problems: int = 200
    """Held-out problems per length (both operands of that many digits)."""
    eval_extra_digits: int = 2
    """Evaluate up to target_digits + this many digits."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; valid: {', '.join(sorted(TASKS))}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"pos_encoding must be one of {', '.join(POS_ENCODINGS)}, got {self.pos_encoding!r}")
        bad = [f for f in self.filters if f not in FILTERS]
        if bad:
            raise ValueError(f"filters: unknown filter {bad[0]!r}; valid: {', '.join(FILTERS)}")
        check_min(self, 1, "labelled_max_digits", "digits_per_round", "num_labelled", "num_unlabelled", "max_rounds",
                  "split_checks", "num_offsets", "num_votes", "eval_problems")
        if self.target_digits < self.labelled_max_digits:
            raise ValueError(f"target_digits ({self.target_digits}) must be >= labelled_max_digits "
                             f"({self.labelled_max_digits})")
        check_min(self, 0, "round0_steps", "round_steps", "max_digit_offset", "eval_extra_digits")
        for name in ("self_data_fraction", "agreement_threshold", "min_confidence", "advance_at"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.vote_temperature <= 0:
            raise ValueError(f"vote_temperature must be > 0, got {self.vote_temperature}")


# ---------------------------------------------------------------------------- helpers

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
    """Held-out problems per length, none of them a labelled one (their own seed stream, the same
    every round). Short lengths can run out of unseen problems (all 100 one-digit sums are labelled):
    those sets are smaller, or empty."""
    return {str(d): sample_unseen(task, cfg.eval_problems, d, rngs(cfg.seed, 10_000, d).np, labelled)[0]
            for d in range(1, (max_digits or cfg.target_digits + cfg.eval_extra_digits) + 1)}


def evaluate(model: Transformer, tok: CharTokenizer, task: Task, sets: dict[str, list]) -> dict[str, float | None]:
    """Held-out exact match per length (None where no unseen problem of that length exists)."""
    acc: dict[str, float | None] = {}
    for d, problems in sets.items():
        if not problems:
            acc[d] = None
            continue
        texts, _ = answer(model, tok, problems)
        acc[d] = sum(task.verify(p, t) for p, t in zip(problems, texts, strict=True)) / len(problems)
    return acc


def self_label(model: Transformer, tok: CharTokenizer, task: ArithmeticTask, cfg: Config, digits: int,
               rng: np.random.Generator, gen: torch.Generator, held_out: set[str]) -> dict[str, list]:
    """Answer unlabelled problems (none of them held out) and decide, without labels, which answers to keep."""
    half = cfg.num_unlabelled // 2  # half with both operands this long (like the held-out set), half mixed
    problems = (sample_unseen(task, half, digits, rng, held_out)[0]
                + sample_unseen(task, cfg.num_unlabelled - half, digits, rng, held_out, mixed=True)[0])
    labels, confidence = answer(model, tok, problems)
    keep = np.ones(len(problems), dtype=bool)
    cols: dict[str, list] = {}
    if "length" in cfg.filters:
        cols["well_formed"] = [task.well_formed(p, a) for p, a in zip(problems, labels, strict=True)]
        keep &= cols["well_formed"]
    if "commute" in cfg.filters:
        swapped, _ = answer(model, tok, [task.variants(p)[0] for p in problems])
        cols["commute_agrees"] = [a == b for a, b in zip(labels, swapped, strict=True)]
        keep &= cols["commute_agrees"]
    if "split" in cfg.filters:
        agree = np.ones(len(problems), dtype=bool)
        for k in range(max(1, digits - cfg.split_checks), digits):
            low, high = zip(*(task.split(p, k) for p in problems), strict=True)
            low_answers, _ = answer(model, tok, list(low))
            high_answers, _ = answer(model, tok, list(high))
            agree &= [task.agrees_with_split(*v, k) for v in zip(labels, low_answers, high_answers, strict=True)]
        cols["split_agrees"] = agree.tolist()
        keep &= agree
    if "offsets" in cfg.filters:
        agree = np.ones(len(problems), dtype=bool)
        for k in range(1, cfg.num_offsets):
            offset = round(k * cfg.max_digit_offset / cfg.num_offsets)
            shifted, _ = answer(model, tok, problems, digit_offset=offset)
            agree &= [a == b for a, b in zip(labels, shifted, strict=True)]
        cols["offsets_agree"] = agree.tolist()
        keep &= agree
    if "vote" in cfg.filters:
        votes, _ = answer(model, tok, problems, num_samples=cfg.num_votes, temperature=cfg.vote_temperature,
                          generator=gen)
        groups = [[labels[i], *votes[i * cfg.num_votes:(i + 1) * cfg.num_votes]] for i in range(len(problems))]
        shares = [share if best == labels[i] else 0.0 for i, (best, share) in enumerate(majority_vote(groups))]
        cols["vote_share"] = shares
        keep &= np.array(shares) >= cfg.agreement_threshold
    if "confidence" in cfg.filters:
        keep &= (confidence >= cfg.min_confidence).numpy()
    return {
        "prompt": [p.prompt for p in problems],
        "answer": labels,
        "digits": [p.difficulty for p in problems],
        "min_token_prob": confidence.tolist(),
        **cols,
        "kept": keep.tolist(),
        "correct": [task.verify(p, a) for p, a in zip(problems, labels, strict=True)],  # reporting only
    }


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
            "pseudo_label_error": error,
            "accuracy_by_digits": acc, "train_loss": loss, "wall_seconds": round(time.time() - t0, 2)}


# ---------------------------------------------------------------------------- the loop
def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    """Run (or resume) the recipe in `store`; returns the summary it writes to summary.json."""
    cfg.use_threads()
    tok, task = CharTokenizer(), get_task(cfg.task)
    model = build_model(cfg, tok)
    optimizer = make_optimizer(model, cfg.sft())
    labelled_problems = labelled_set(cfg, task)
    labelled = Examples.encode(tok, [p.prompt for p in labelled_problems], [p.answer for p in labelled_problems])
    held_out = held_out_sets(cfg, task, {p.prompt for p in labelled_problems})
    unseen_by = {p.prompt for problems in held_out.values() for p in problems}  # no self-labelled one is held out
    self_data: list[Examples] = []

    # ---- resume: the last finished round's checkpoint and the self-labels kept up to it
    first, records = store.resume_rounds(model, optimizer)
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
            with progress.task(f"round {r}: self-label {digits}-digit problems", total=None):
                samples = self_label(model, tok, task, cfg, digits, rng, gen, unseen_by)
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
        with progress.task(f"round {r}: evaluate", total=None):
            acc = evaluate(model, tok, task, held_out)
        record = round_record(r, digits, kept, kept / (cfg.num_labelled if r == 0 else cfg.num_unlabelled),
                              error, acc, loss, t0)
        records.append(record)
        store.record_round(r, record, {"eval/accuracy_at_target": acc[str(cfg.target_digits)],
                                        "select/kept": kept, "train/loss": loss})
        store.save_checkpoint(r, model, model.cfg.to_dict(), optimizer,
                              {"round": r, "digits_labelled": digits, "seed": cfg.seed})
        progress.round_done(record)
        digits = next_digits(cfg, records)

    summary = summarize(cfg, records)
    summary["held_out_problems"] = {d: len(problems) for d, problems in held_out.items()}
    store.write_summary(summary)
    store.event("finished")
    return summary


def summarize(cfg: Config, records: list[dict]) -> dict:
    final = records[-1]["accuracy_by_digits"]
    reached = max((int(d) for d, a in final.items() if a is not None and a >= 0.9), default=0)
    return {
        "recipe": "length-gen",
        "task": cfg.task,
        "seed": cfg.seed,
        "trained_max_digits": cfg.labelled_max_digits,
        "target_digits": cfg.target_digits,
        "reached_digits": reached,
        "accuracy_by_digits": final,
        "pseudo_label_error_by_round": [r["pseudo_label_error"] for r in records],
        "rounds": records,
        "wall_seconds": round(sum(r["wall_seconds"] for r in records), 2),
    }


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
    from rich.table import Table

    rounds = summary["rounds"]
    digits = list(rounds[-1]["accuracy_by_digits"])
    out = Table(title="Held-out exact match by digits, after each round")
    for name in ("round", "kept", "label err"):
        out.add_column(name)
    for d in digits:
        out.add_column(d, justify="right")
    for r in rounds:
        err = "-" if r["pseudo_label_error"] is None else f"{r['pseudo_label_error']:.3f}"
        out.add_row(str(r["round"]), str(r["kept"]), err, *["-" if (a := r["accuracy_by_digits"][d]) is None
                                                           else f"{a:.2f}" for d in digits])
    return out


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
    return f"{last.name}: held-out exact match", evaluate(model, CharTokenizer(), task, sets)


def export(store: RunStore, cfg: Config, out: Path, overwrite: bool) -> Path:
    """`selfevolve export DIR --hf OUT`: the latest checkpoint as a Hugging Face model directory."""
    from selfevolve.models.hf_export import export_hf

    return export_hf(load_checkpoint(store.last_checkpoint()), out, overwrite=overwrite)


RECIPE = Recipe(Config, run, headline, plots, run_name=lambda cfg: cfg.task, table=table, evaluate=evaluate_run,
                export=export)
