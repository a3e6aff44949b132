"""The self-training loop: propose -> judge -> select -> learn, round after round.

    round 0: supervised fine-tuning on a small labelled seed set (or the round-0 model of another run)
    round r: judge    the task's exact verifier, or an outcome reward model trained on the policy's
                      own verified answers to the seed problems (judge=orm)
             propose  k answers to each of this round's new problems (a recipe's `Propose` hook
                      chooses how: one temperature, or a probe of several)
             select   the first copy of each distinct accepted answer; every sample is written to
                      samples/round-NNN.parquet with its score and verdicts
             learn    a recipe's `Learn` hook turns the sample table into a model update (SFT on the
                      kept answers, DPO on pairs, ...)
             then held-out pass@1 (greedy) and pass@k, B-STaR's monitors, a checkpoint

Recipes (STaR, ReST-EM, B-STaR, iterative DPO, UPO) are the two hooks and a config; an on-policy
recipe (GRPO) gives one `Act` hook instead, which samples and learns in turn, step after step. Each
hook gets a `Step`: the policy (model *and its tokenizer*), the optimizer, the round's random
streams and what the loop has learned so far.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch

from selfevolve.config import build_config, check_min, check_one_of
from selfevolve.errors import SelfEvolveError
from selfevolve.judge.outcome import train_outcome_judge
from selfevolve.metrics import exploration_metrics
from selfevolve.models.policy import ModelChoice, Policy
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.search.answers import Answers, Judge, kept_rows, sample_and_judge, sample_table, verifier_judge
from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint, restore_checkpoint
from selfevolve.tasks import TASKS, Problem, Task, get_task, read_problems
from selfevolve.tasks.base import SPLITS, held_out_split, sample_unseen, unseen
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

JUDGES = ("verifier", "orm")


@dataclass
class SelfTrainConfig(ModelChoice, TrainingConfig):
    LATER_ROUNDS: ClassVar[tuple[str, ...]] = (
        "init_from", "iterations", "problems_per_iteration", "iteration_steps", "restart", "labelled_fraction",
        "balance_target", "judge", "reward_threshold", "orm_samples", "orm_steps")
    """Settings that only rounds after round 0 read: two runs that differ only in these evaluate the same
    round-0 model the same way, so a run started from the other (`init_from`) takes its round-0 record."""

    seed: int = 0
    """Seeds model init, problems and sampling; same seed + same machine = same result."""
    task: str = "countdown"
    """Task with a verifier: countdown, wordmath, addition or multiplication."""
    difficulty: int = 4
    """Problem size: numbers given (countdown), steps (wordmath) or digits (arithmetic); training mixes
    easier ones in."""
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
    judge: str = "verifier"
    """What picks the answers to learn from: `verifier` (the task's exact check) or `orm` (an outcome
    reward model trained each iteration on the policy's answers to the labelled seed problems; the
    verifier then only reports how often it was wrong)."""
    reward_threshold: float = 0.5
    """Keep an answer whose judge score is at least this (orm: P(correct); the verifier gives 0 or 1)."""
    orm_samples: int = 4
    """judge=orm: answers per labelled seed problem the reward model is trained on each iteration."""
    orm_steps: int = 300
    """judge=orm: reward-model optimizer steps per iteration."""
    eval_file: str = ""
    """JSONL file of held-out problems in the task's fields (default: generated ones)."""
    eval_split: str = "test"
    """Generated held-out split: test (what results report) or dev (none of them test, labelled or
    self-training problems: for choosing settings without touching test)."""
    init_from: str = ""
    """A finished run of this family whose round-0 model this run starts from instead of training one."""

    round0_steps: int = 1500
    """Optimizer steps on the labelled seed set."""
    iteration_steps: int = 300
    """Optimizer steps per self-training iteration."""
    eval_problems: int = 300
    """Held-out problems (the same every iteration)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in TASKS:
            raise ValueError(f"task: unknown task {self.task!r}; valid: {', '.join(sorted(TASKS))}")
        if self.judge not in JUDGES:
            raise ValueError(f"judge: unknown judge {self.judge!r}; valid: {', '.join(JUDGES)}")
        check_min(self, 1, "difficulty", "num_labelled", "problems_per_iteration", "samples_per_problem",
                  "balance_target", "eval_problems", "orm_samples")
        check_min(self, 0, "iterations", "round0_steps", "iteration_steps", "orm_steps")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.labelled_fraction <= 1:
            raise ValueError(f"labelled_fraction must be in [0, 1], got {self.labelled_fraction}")
        if not 0 < self.reward_threshold <= 1:
            raise ValueError(f"reward_threshold must be in (0, 1], got {self.reward_threshold}")
        check_one_of(self, "eval_split", SPLITS)
        if self.eval_file and self.eval_split == "dev":
            raise ValueError("eval_split=dev draws its own problems; it cannot be combined with eval_file")
        if self.eval_file:
            read_problems(self.eval_file, self.make_task())  # a bad file fails before the run starts
        if self.init_from and not (Path(self.init_from) / "checkpoints" / "round-000").is_dir():
            raise ValueError(f"init_from: {self.init_from} holds no round-0 checkpoint (checkpoints/round-000)")

    def make_task(self) -> Task:
        """The task the run learns (a recipe may give it another answer format: priming traces)."""
        return get_task(self.task)

    def policy(self, task: Task) -> Policy:
        return self.load_policy(task.max_seq_len)

    def keeps_base(self) -> bool:
        """Whether the hooks need the round-0 model (`Step.base`): ReST-EM restarts from it."""
        return self.restart

    def seed_set(self, task: Task) -> list[Problem]:
        """Round 0's labelled problems, which every held-out set (here and in benches) leaves out."""
        return task.sample(self.num_labelled, self.difficulty, rngs(self.seed, 0).np, mixed=True)

    def round0_examples(self, tok, seed_set: list[Problem], rng: np.random.Generator) -> Examples:
        """What round 0 and the labelled share of later batches train on: each seed problem's answer."""
        return Examples.of_problems(tok, seed_set)

    def evaluate_more(self, policy: Policy, task: Task, problems: list[Problem], greedy: list[str]) -> dict:
        """More held-out measures for the round's record, given the greedy answers (SCoRe: a second attempt)."""
        return {}


@dataclass
class ProbeConfig:
    """A temperature probe before each iteration (B-STaR, M-STaR), mixed into a SelfTrainConfig."""

    temperature_grid: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2)
    """Temperatures tried on the probe before each iteration."""
    probe_problems: int = 200
    """Problems of the iteration sampled at each grid temperature to choose one."""

    def probes(self) -> bool:
        return True

    def __post_init__(self) -> None:
        getattr(super(), "__post_init__", lambda: None)()
        if not self.temperature_grid or min(self.temperature_grid) <= 0:
            raise ValueError(f"temperature_grid must be positive temperatures, got {self.temperature_grid}")
        probed = self.probe_problems * len(self.temperature_grid)
        if self.probes() and not 1 <= probed < self.problems_per_iteration:  # type: ignore[attr-defined]
            raise ValueError(f"probe_problems x temperatures ({probed}) must be >= 1 and below "
                             f"problems_per_iteration ({self.problems_per_iteration})")  # type: ignore[attr-defined]


@dataclass
class Step:
    """What a hook sees in round r: the policy and its optimizer, the round's random streams, the
    judge, the labelled problems and their examples, every round's kept examples, the round-0 model (when the config
    keeps it) and the records of the rounds before."""

    r: int
    cfg: SelfTrainConfig
    task: Task
    policy: Policy
    optimizer: torch.optim.Optimizer
    gen: torch.Generator
    progress: Progress
    judge: Judge
    seed_set: list[Problem]
    labelled: Examples
    kept: list[Examples]
    base: torch.nn.Module | None
    history: list[dict]


@dataclass
class Proposal:
    """A round's judged answers, the temperature and threshold chosen, and what chose them."""

    answers: Answers
    temperature: float
    threshold: float
    probe: dict
    keep_top: int = 0  # keep only each problem's keep_top best-scored accepted answers (0: all)


@dataclass
class Learned:
    optimizer: torch.optim.Optimizer  # a learning step may start a new one (ReST-EM's restart)
    loss: float
    tokens: int
    info: dict = field(default_factory=dict)  # more for the round's record


class Propose(Protocol):
    def __call__(self, step: Step, problems: list[Problem]) -> Proposal: ...


class Learn(Protocol):
    def __call__(self, step: Step, samples: dict[str, list]) -> Learned: ...


class Act(Protocol):
    """On-policy: sample and learn in turn over the round's problems; returns every sample drawn."""

    def __call__(self, step: Step, problems: list[Problem]) -> tuple[Proposal, Learned]: ...


def sample_at_temperature(step: Step, problems: list[Problem]) -> Proposal:
    """STaR's proposal: every problem at the configured temperature."""
    cfg = step.cfg
    with step.progress.task(f"sample {cfg.samples_per_problem} answers x {len(problems)}", len(problems)) as advance:
        answers = sample_and_judge(step.policy, step.task, problems, cfg.samples_per_problem, cfg.temperature,
                                   step.gen, step.judge, advance)
    return Proposal(answers, cfg.temperature, cfg.reward_threshold, {})


def probe_temperatures(step: Step, problems: list[Problem], grid: tuple[float, ...], probe: int,
                       score: Callable[[Answers], dict[str, float]]) -> tuple[Answers, float, str, dict]:
    """Sample the first `probe` problems at every temperature of `grid` (the same problems for all, so
    the temperatures compare on equal problems), score each temperature's answers by `score` (one value
    per key: B-STaR's thresholds), then sample the problems after the probe's share of the budget at
    the best (temperature, key). Returns every answer drawn, the best temperature and key, the scores."""
    cfg = step.cfg
    probes, scores = [], {}
    with step.progress.task(f"probe {len(grid)} temperatures on the same {probe} problems",
                            probe * len(grid)) as advance:
        for t in grid:
            probes.append(sample_and_judge(step.policy, step.task, problems[:probe], cfg.samples_per_problem, t,
                                           step.gen, step.judge, advance))
            scores[str(t)] = score(probes[-1])
    best_t, best_key = max(((t, key) for t in grid for key in scores[str(t)]),
                           key=lambda pair: scores[str(pair[0])][pair[1]])
    rest = problems[len(probes) * probe:]
    with step.progress.task(f"sample {cfg.samples_per_problem} answers x {len(rest)} at T={best_t}",
                            len(rest)) as advance:
        probes.append(sample_and_judge(step.policy, step.task, rest, cfg.samples_per_problem, best_t, step.gen,
                                       step.judge, advance))
    return Answers.concat(probes), best_t, best_key, scores


def finetune_on_kept(step: Step, samples: dict[str, list]) -> Learned:
    """STaR's learning step: fine-tune on the kept answers of every round so far, or with restart
    (ReST-EM) on this round's only, from the round-0 weights; each batch mixes in
    `labelled_fraction` of labelled examples."""
    cfg, model, optimizer = step.cfg, step.policy.model, step.optimizer
    if cfg.restart:
        model.load_state_dict(step.base.state_dict())
        optimizer = make_optimizer(model, cfg.sft())
    pool = [k for k in (step.kept[-1:] if cfg.restart else step.kept) if len(k)]
    if not pool:
        step.progress.log(f"[yellow]round {step.r}: no accepted answer to learn from")
        return Learned(optimizer, float("nan"), 0)
    loss, tokens = train_on_pools(model, optimizer, cfg.sft(), [step.labelled, Examples.concat(pool)],
                                  [cfg.labelled_fraction, 1 - cfg.labelled_fraction], cfg.iteration_steps, step.gen,
                                  step.progress, f"round {step.r}: fine-tune on {len(step.kept[-1])} kept answers")
    return Learned(optimizer, loss, tokens)


def held_out(cfg: SelfTrainConfig, task: Task, labelled: set[str]) -> tuple[list[Problem], int]:
    """The held-out problems (the user's file, or generated ones of the test or dev split) that are not
    labelled problems of this run, and how many were left out (a file's are dropped, generated ones
    drawn again)."""
    if cfg.eval_file:
        problems, dropped = unseen(read_problems(cfg.eval_file, task), labelled)
        if not problems:
            raise SelfEvolveError(f"eval_file: every problem of {cfg.eval_file} is among the labelled seed problems; "
                                  "held-out problems must be unseen")
        return problems, dropped
    problems, redrawn = held_out_split(task, cfg.eval_problems, cfg.difficulty, cfg.seed, cfg.eval_split, labelled)
    if not problems:
        raise SelfEvolveError(f"no held-out {cfg.task} problem of difficulty {cfg.difficulty} is left that is not a "
                              "labelled one: raise difficulty or lower num_labelled")
    return problems, redrawn


def evaluate(policy: Policy, task: Task, cfg: SelfTrainConfig, problems: list[Problem],
             progress: Progress | None = None, title: str = "evaluate") -> dict:
    """pass@1 (greedy) and pass@k (k samples at the configured temperature), and per-problem verdicts."""
    from selfevolve.search.sampling import answer

    with (progress or Progress(enabled=False)).task(title, 2 * len(problems)) as advance:
        greedy, _ = answer(policy.model, policy.tok, problems, max_new=task.max_answer_tokens, advance=advance)
        sampled = sample_and_judge(policy, task, problems, cfg.samples_per_problem, cfg.temperature,
                                   rngs(cfg.seed, "evaluate").torch, advance=advance)
    correct = [task.verify(p, t) for p, t in zip(problems, greedy, strict=True)]
    out = {"pass1": float(np.mean(correct)), "passk": float(sampled.correct.any(axis=1).mean()),
           "verdicts": {"prompt": [p.prompt for p in problems], "greedy": greedy, "correct": correct,
                        "correct_of_k": sampled.correct.sum(axis=1).tolist()}}
    out.update(cfg.evaluate_more(policy, task, problems, greedy))
    if hasattr(task, "score"):  # a graded task (translation: chrF), by group (seen / unseen languages)
        scores = [task.score(p, t) for p, t in zip(problems, greedy, strict=True)]
        groups = [task.group(p) for p in problems]
        out["score"] = float(np.mean(scores))
        out["score_by_group"] = {g: float(np.mean([s for s, h in zip(scores, groups, strict=True) if h == g]))
                                 for g in sorted(set(groups))}
        out["verdicts"]["score"] = scores
    return out


def evaluated_round0(cfg: SelfTrainConfig, recipe: str) -> dict | None:
    """The held-out results of `init_from`'s round 0 when that run is of the same recipe and differs from
    this one only in LATER_ROUNDS settings (so it evaluated the same model on the same problems the
    same way), else None (evaluate again)."""
    source = RunStore.open(Path(cfg.init_from))
    source_recipe, rounds, values = source.recipe, source.rounds(), source.config_values()
    source.db.close()  # read once: the other run's database is not held open through this one
    if source_recipe != recipe or not rounds or rounds[0]["round"] != 0:
        return None
    theirs = build_config(type(cfg), values)

    def round0_settings(c: SelfTrainConfig) -> dict:
        return {k: v for k, v in asdict(c).items() if k not in c.LATER_ROUNDS}

    if round0_settings(theirs) != round0_settings(cfg):
        return None
    skip = {"round", "kept", "samples", "temperature", "threshold", "loss", "tokens_trained", "wall_seconds"}
    return {k: v for k, v in rounds[0].items() if k not in skip} | {"evaluated_in": cfg.init_from}


def self_train(cfg: SelfTrainConfig, store: RunStore, progress: Progress, propose: Propose | None = None,
               learn: Learn | None = None, act: Act | None = None) -> dict:
    """Run (or resume from its last finished round) the loop with a recipe's two hooks, or its one `act`."""
    cfg.use_threads()
    task = cfg.make_task()
    policy = cfg.policy(task)
    optimizer = make_optimizer(policy.model, cfg.sft())
    seed_set = cfg.seed_set(task)
    labelled = cfg.round0_examples(policy.tok, seed_set, rngs(cfg.seed, "round0-examples").np)
    test, test_redrawn = held_out(cfg, task, {p.prompt for p in seed_set})
    unseen_by = {p.prompt for p in test}  # no self-training (or probe) problem may be a held-out one
    base = None  # the round-0 weights, for restart (ReST-EM)
    first, records = store.resume_rounds(policy.model, optimizer)
    if first and cfg.keeps_base():
        base = model_from_checkpoint(load_checkpoint(store.checkpoint_dir(0)), into=cfg.policy(task).model)
    kept = [Examples.encode(policy.tok, *kept_rows(store.read_samples(r).to_pydict())) for r in range(1, first)]

    for r in range(first, cfg.iterations + 1):
        t0 = time.time()
        rng, gen, _ = rngs(cfg.seed, r, 1)
        record: dict = {"round": r}
        evaluated = None  # round 0's results, when init_from's run already has them
        judges: dict = {}  # reward models this round trained, saved beside its checkpoint
        if r == 0:
            if cfg.init_from:  # the same round-0 model as another run: recipes compared from one start
                restore_checkpoint(Path(cfg.init_from) / "checkpoints" / "round-000", policy.model, optimizer)
                loss, tokens = float("nan"), 0
                evaluated = evaluated_round0(cfg, store.recipe)
            else:
                loss, tokens = train_on_pools(policy.model, optimizer, cfg.sft(), [labelled], [1.0], cfg.round0_steps,
                                              gen, progress, f"round 0: train on {len(labelled)} labelled problems")
            base = copy.deepcopy(policy.model) if cfg.keeps_base() else None
            record.update(kept=len(labelled), samples=0, temperature=None, threshold=None)
        else:
            # ---- JUDGE: the exact verifier, or a reward model trained on verified answers to seed problems
            judge, judge_info = verifier_judge, {}
            if cfg.judge == "orm":
                judge, judge_info, judges["orm"] = train_outcome_judge(
                    policy, task, seed_set, cfg.orm_samples, cfg.temperature, cfg.orm_steps, cfg.sft(), gen, progress,
                    f"round {r}")
            step = Step(r, cfg, task, policy, optimizer, gen, progress, judge, seed_set, labelled, kept, base, records)
            # ---- PROPOSE: sample answers to new problems (only their targets are known)
            problems, redrawn = sample_unseen(task, cfg.problems_per_iteration, cfg.difficulty, rng, unseen_by,
                                              mixed=True)
            if act is not None:  # on-policy: sampling and learning interleaved, step after step
                proposal, learned = act(step, problems)
            else:
                proposal = propose(step, problems)
            # ---- SELECT: the first copy of each distinct accepted answer
            samples = sample_table(proposal.answers, proposal.threshold, proposal.keep_top)
            store.write_samples(r, samples)
            kept.append(Examples.encode(policy.tok, *kept_rows(samples)))
            # ---- LEARN
            if act is None:
                learned = learn(step, samples)
            optimizer, loss, tokens = learned.optimizer, learned.loss, learned.tokens
            chosen = proposal.answers.drawn_at(proposal.temperature)
            record.update(kept=int(sum(samples["kept"])), samples=int(proposal.answers.correct.size),
                          held_out_redrawn=redrawn,
                          temperature=proposal.temperature, threshold=proposal.threshold, probe=proposal.probe,
                          **judge_info, **learned.info,
                          **exploration_metrics(chosen.correct, chosen.texts, cfg.balance_target, chosen.reward,
                                                proposal.threshold))
        result = evaluated or evaluate(policy, task, cfg, test, progress, f"round {r}: evaluate")
        record.update(pass1=result["pass1"], passk=result["passk"], loss=loss, tokens_trained=tokens,
                      **{k: v for k, v in result.items() if k not in ("pass1", "passk", "verdicts")},
                      wall_seconds=time.time() - t0)
        records.append(record)
        store.record_round(r, record, {"eval/pass1": record["pass1"], "eval/passk": record["passk"]})
        store.save_checkpoint(r, policy.model, policy.model.cfg.to_dict(), optimizer, {"round": r, "seed": cfg.seed},
                              extra=judges)
        progress.log(f"[bold]round {r}[/] pass@1 {record['pass1']:.3f}  pass@{cfg.samples_per_problem} "
                     f"{record['passk']:.3f}  kept {record['kept']}  {record['wall_seconds']:.0f}s")

    summary = {"recipe": store.recipe, "task": cfg.task, "seed": cfg.seed, "judge": cfg.judge,
               "round0_pass1": records[0]["pass1"], "final_pass1": records[-1]["pass1"],
               "best_pass1": max(r["pass1"] for r in records), "samples_drawn": sum(r["samples"] for r in records),
               "tokens_trained": sum(r["tokens_trained"] for r in records),
               "held_out": {"problems": len(test), "labelled_left_out": test_redrawn,
                            "self_training_redrawn": sum(r.get("held_out_redrawn", 0) for r in records)},
               "rounds": records, "wall_seconds": round(sum(r["wall_seconds"] for r in records), 2)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def load_latest(store: RunStore, cfg: SelfTrainConfig, task: Task) -> Policy:
    """The policy of a run's last finished round."""
    policy = cfg.policy(task)
    store.load_last(policy.model)
    return policy


def evaluate_file(store: RunStore, cfg: SelfTrainConfig, problems: list[Problem], strategy: str | None = None,
                  n: int | None = None) -> dict:
    """The run's latest model on a user's problems: pass@1, pass@k and a verdict per problem."""
    if strategy is not None or n is not None:
        raise SelfEvolveError(f"--strategy and --n are for rstar runs; a {store.recipe} run is scored by greedy "
                              f"pass@1 and pass@{cfg.samples_per_problem} (samples_per_problem)")
    task = cfg.make_task()
    result = evaluate(load_latest(store, cfg, task), task, cfg, problems)
    return {"metrics": {"pass@1 (greedy)": result["pass1"], f"pass@{cfg.samples_per_problem}": result["passk"]},
            "verdicts": result["verdicts"]}


def export(store: RunStore, cfg: SelfTrainConfig, out: Path, overwrite: bool) -> Path:
    """The latest policy (LoRA merged into full weights) and its tokenizer as an HF model directory."""
    from selfevolve.models.hf_export import export_run

    return export_run(store, cfg.policy(cfg.make_task()), out, overwrite)


def headline(summary: dict) -> str:
    return (f"{summary['task']}: held-out pass@1 {summary['round0_pass1']:.3f} after round 0 -> "
            f"{summary['final_pass1']:.3f} after {len(summary['rounds']) - 1} iterations "
            f"(best {summary['best_pass1']:.3f}), {summary['wall_seconds']:.0f} s")


def compare_row(summary: dict) -> tuple[dict[str, str], list[float]]:
    """`selfevolve compare`: one table row and the held-out pass@1 curve of a finished run."""
    return ({"round 0": f"{summary['round0_pass1']:.3f}", "final": f"{summary['final_pass1']:.3f}",
             "best": f"{summary['best_pass1']:.3f}", "samples drawn": str(summary["samples_drawn"]),
             "tokens trained": str(summary["tokens_trained"]), "seconds": f"{summary['wall_seconds']:.0f}"},
            [r["pass1"] for r in summary["rounds"]])


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
                               for name in ("pass_at_k", "reward_at_k", "precision", "balance", "temperature",
                                            "threshold")},
                              "B-STaR monitors on each iteration's own samples", "iteration", "value",
                              plot_dir / "exploration.png"))
    return out


def family(config: type, run, more_plots=None) -> Recipe:
    """A self-training recipe's interface: its own config and run, the family's report (and the recipe's
    `more_plots(summary, plot_dir)`), eval and compare."""
    def all_plots(summary: dict, plot_dir: Path) -> list[Path]:
        return plots(summary, plot_dir) + (more_plots(summary, plot_dir) if more_plots else [])

    return Recipe(config, run, headline, all_plots, run_name=lambda cfg: cfg.task, evaluate_file=evaluate_file,
                  export=export, compare=compare_row, policy=lambda cfg: cfg.policy(cfg.make_task()))
