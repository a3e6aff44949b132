"""STaR / ReST-EM: rejection-sampling fine-tuning on the model's own verified answers.

Zelikman et al. (2022), "STaR: Bootstrapping Reasoning With Reasoning", arXiv:2203.14465;
Singh et al. (2023), "Beyond Human Data: Scaling Self-Training ... (ReST-EM)", arXiv:2312.06585

    round 0: supervised fine-tuning on a small labelled seed set
    iteration i: sample `samples_per_problem` answers to each of `problems_per_iteration` new
             problems (only the target is known), keep the distinct answers the judge accepts
             (the exact verifier, or with judge=orm an outcome reward model), fine-tune on them
             (continuing, or from the round-0 model again with restart=true: ReST-EM), then score
             held-out pass@1 (greedy) and pass@k
    every iteration also records B-STaR's exploration and exploitation monitors on its own samples

    selfevolve run star --set restart=true
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from selfevolve.config import check_min
from selfevolve.errors import SelfEvolveError
from selfevolve.judge.reward import RewardModel, train_pointwise
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.progress import Progress
from selfevolve.search.sampling import answer
from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint, restore_checkpoint
from selfevolve.tasks import TASKS, Problem, Task, get_task, read_problems
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, round_rngs, train_on_pools

JUDGES = ("verifier", "orm")


@dataclass
class Config(TrainingConfig):
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
    init_from: str = ""
    """A finished run of this family whose round-0 model this run starts from instead of training one."""
    model: str = "tiny"
    """tiny (a transformer trained from scratch with n_layer/n_head/n_embd), smollm2, or a local HF
    Llama directory (fine-tuned from its pretrained weights; see lora_r)."""
    lora_r: int = 0
    """Train LoRA adapters of this rank instead of every weight (0 = full fine-tuning)."""
    lora_alpha: int = 16
    """LoRA scale numerator (updates are scaled by alpha / r)."""

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
        check_min(self, 0, "iterations", "round0_steps", "iteration_steps", "orm_steps", "lora_r")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 <= self.labelled_fraction <= 1:
            raise ValueError(f"labelled_fraction must be in [0, 1], got {self.labelled_fraction}")
        if not 0 < self.reward_threshold <= 1:
            raise ValueError(f"reward_threshold must be in (0, 1], got {self.reward_threshold}")
        if self.eval_file:
            read_problems(self.eval_file, get_task(self.task))  # a bad file fails before the run starts
        if self.init_from and not (Path(self.init_from) / "checkpoints" / "round-000").is_dir():
            raise ValueError(f"init_from: {self.init_from} holds no round-0 checkpoint (checkpoints/round-000)")


@dataclass
class Answers:
    """k sampled answers per problem: the gold verdict (for reports, and for selection only when the
    judge is the verifier), the judge's score and the temperature each was drawn at. (P, k) arrays."""

    problems: list[Problem]
    texts: list[list[str]]
    correct: np.ndarray
    reward: np.ndarray
    temperature: np.ndarray
    ARRAYS = ("correct", "reward", "temperature")  # the (P, k) fields, in field order

    @staticmethod
    def concat(parts: list[Answers]) -> Answers:
        return Answers([p for a in parts for p in a.problems], [t for a in parts for t in a.texts],
                       *(np.concatenate([getattr(a, f) for a in parts]) for f in Answers.ARRAYS))

    def drawn_at(self, temperature: float) -> Answers:
        """The problems sampled at this temperature: what B-STaR's monitors describe is the configuration
        an iteration chose, not the probe of the others that chose it."""
        rows = np.flatnonzero(self.temperature[:, 0] == temperature)
        return Answers([self.problems[i] for i in rows], [self.texts[i] for i in rows],
                       *(getattr(self, f)[rows] for f in Answers.ARRAYS))


Judge = Callable[[list[Problem], list[list[str]], np.ndarray], np.ndarray]


def verifier_judge(problems: list[Problem], texts: list[list[str]], correct: np.ndarray) -> np.ndarray:
    return correct.astype(np.float32)


def policy(cfg: Config, task: Task) -> tuple[Transformer, CharTokenizer]:
    """The model to train and its tokenizer: a fresh tiny transformer or a pretrained HF model, with
    LoRA adapters (the only trained weights) when lora_r > 0."""
    if cfg.model == "tiny":
        tok = CharTokenizer()
        mcfg = TransformerConfig(vocab_size=tok.vocab_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                 n_embd=cfg.n_embd, max_seq_len=task.max_seq_len, pos_encoding="rope")
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            model = Transformer(mcfg)
    else:
        from selfevolve.models.hf import load

        model, tok = load(cfg.model)
    if cfg.lora_r:
        from selfevolve.models.lora import LoraSpec, add_lora

        model = add_lora(model, LoraSpec(r=cfg.lora_r, alpha=cfg.lora_alpha), seed=cfg.seed)
    return model, tok


def exploration_metrics(correct: np.ndarray, texts: list[list[str]], balance_target: int,
                        reward: np.ndarray | None = None, threshold: float = 0.5) -> dict[str, float]:
    """B-STaR's monitors over k samples per problem (Zeng et al. 2024, arXiv:2412.17256).

    correct: (problems, k) gold verdicts; texts: the answers; reward: the judge's scores (default:
    the verdicts, an exact verifier); an answer is selected when its reward >= threshold.
    Exploration: pass_at_k (Pass@K-S, a correct answer among the k), diversity (distinct correct
    answers). Exploitation: reward_at_k (Reward@K-S, the highest-reward answer is correct) and
    precision (share of selected answers that are correct). balance: mean over problems of
    min(n' / n*, 1) * n' / n, with n' distinct correct selected answers and n distinct selected
    answers. Distinct, as in the authors' code, which deduplicates the selected answers before it
    scores them: counting copies would make a temperature that finds a right answer once look better
    than one that finds it every time.
    """
    reward = correct.astype(np.float32) if reward is None else reward
    selected = reward >= threshold

    def distinct(keep: np.ndarray) -> np.ndarray:
        """Distinct answers per problem among those where keep (problems, k) is True."""
        return np.array([len({t for t, k in zip(row, ks, strict=True) if k})
                         for row, ks in zip(texts, keep, strict=True)])

    good, n = distinct(correct & selected), distinct(selected)
    balance = np.where(n > 0, np.minimum(good / balance_target, 1) * good / np.maximum(n, 1), 0)
    best = correct[np.arange(len(correct)), reward.argmax(axis=1)]
    return {"pass_at_k": float(correct.any(axis=1).mean()), "sample_accuracy": float(correct.mean()),
            "diversity": float(distinct(correct).mean()), "reward_at_k": float(best.mean()),
            "precision": float((correct & selected).sum() / max(1, selected.sum())), "balance": float(balance.mean())}


def sample_and_judge(model, tok, task: Task, problems: list[Problem], k: int, temperature: float,
                     gen: torch.Generator, judge: Judge = verifier_judge) -> Answers:
    texts, _ = answer(model, tok, problems, num_samples=k, temperature=temperature, generator=gen,
                      max_new=task.max_answer_tokens)
    rows = [texts[i * k:(i + 1) * k] for i in range(len(problems))]
    correct = np.array([[task.verify(p, t) for t in row] for p, row in zip(problems, rows, strict=True)])
    return Answers(problems, rows, correct, judge(problems, rows, correct), np.full(correct.shape, temperature))


def held_out(cfg: Config, task: Task) -> list[Problem]:
    if cfg.eval_file:
        return read_problems(cfg.eval_file, task)
    return task.sample(cfg.eval_problems, cfg.difficulty, np.random.default_rng([cfg.seed, 10_000]))


def evaluate(model, tok, task: Task, cfg: Config, problems: list[Problem], gen: torch.Generator) -> dict:
    """pass@1 (greedy) and pass@k (k samples at the configured temperature), and per-problem verdicts."""
    greedy, _ = answer(model, tok, problems, max_new=task.max_answer_tokens)
    sampled = sample_and_judge(model, tok, task, problems, cfg.samples_per_problem, cfg.temperature, gen)
    correct = [task.verify(p, t) for p, t in zip(problems, greedy, strict=True)]
    return {"pass1": float(np.mean(correct)), "passk": float(sampled.correct.any(axis=1).mean()),
            "verdicts": {"prompt": [p.prompt for p in problems], "greedy": greedy, "correct": correct,
                         "correct_of_k": sampled.correct.sum(axis=1).tolist()}}


def fixed_sampling(model, tok, task, cfg: Config, problems, gen, progress,
                   judge) -> tuple[Answers, float, float, dict]:
    """STaR's proposal: every problem at the configured temperature.
    Returns (answers, temperature, reward threshold, probe scores)."""
    with progress.task(f"sample {cfg.samples_per_problem} answers x {len(problems)}", total=None):
        answers = sample_and_judge(model, tok, task, problems, cfg.samples_per_problem, cfg.temperature, gen, judge)
    return answers, cfg.temperature, cfg.reward_threshold, {}


def orm_judge(model, tok, task, cfg: Config, seed_set: list[Problem], gen, progress, r: int) -> tuple[Judge, dict]:
    """Train an outcome reward model on the policy's own answers to the labelled seed problems."""
    with progress.task(f"round {r}: sample {cfg.orm_samples} answers x {len(seed_set)} seed problems for the ORM",
                       total=None):
        seen = sample_and_judge(model, tok, task, seed_set, cfg.orm_samples, cfg.temperature, gen)
    prompts = [p.prompt for p, row in zip(seen.problems, seen.texts, strict=True) for _ in row]
    orm = RewardModel.from_policy(model)
    loss = train_pointwise(orm, Examples.encode(tok, prompts, [t for row in seen.texts for t in row]),
                           seen.correct.ravel(), cfg.orm_steps, cfg.sft(), gen, progress, f"round {r}: train the ORM")

    def judge(problems: list[Problem], texts: list[list[str]], correct: np.ndarray) -> np.ndarray:
        flat = [t for row in texts for t in row]
        scores = orm.score(Examples.encode(tok, [p.prompt for p, row in zip(problems, texts, strict=True)
                                                 for _ in row], flat))
        scores[[t == "<no stop>" for t in flat]] = 0.0  # an unfinished answer is no answer
        return scores.reshape(correct.shape)

    return judge, {"orm_loss": loss, "orm_samples": int(seen.correct.size)}


def learn_sft(model, optimizer, cfg: Config, labelled: Examples, kept: list[Examples], base, samples, gen,
              progress, r: int):
    """STaR's learning step: fine-tune on the kept answers (all so far, or with restart only this
    iteration's, from the round-0 weights). Returns the optimizer in use, the last loss, tokens trained."""
    if cfg.restart:
        model.load_state_dict(base.state_dict())
        optimizer = make_optimizer(model, cfg.sft())
    pool = [k for k in (kept[-1:] if cfg.restart else kept) if len(k)]
    if not pool:
        progress.log(f"[yellow]round {r}: no accepted answer to learn from")
        return optimizer, float("nan"), 0
    loss, tokens = train_on_pools(model, optimizer, cfg.sft(), [labelled, Examples.concat(pool)],
                                  [cfg.labelled_fraction, 1 - cfg.labelled_fraction], cfg.iteration_steps, gen,
                                  progress, f"round {r}: fine-tune on {len(kept[-1])} kept answers")
    return optimizer, loss, tokens


def run(cfg: Config, store: RunStore, progress: Progress, propose=fixed_sampling, learn=learn_sft) -> dict:
    """Run (or resume) the loop; `propose` samples and judges each iteration's answers (and may pick
    the temperature and threshold), `learn` turns the kept ones into a model update."""
    cfg.use_threads()
    task = get_task(cfg.task)
    model, tok = policy(cfg, task)
    optimizer = make_optimizer(model, cfg.sft())
    seed_set = task.sample(cfg.num_labelled, cfg.difficulty, np.random.default_rng([cfg.seed, 0]), mixed=True)
    labelled = Examples.encode(tok, [p.prompt for p in seed_set], [p.answer for p in seed_set])
    test = held_out(cfg, task)
    kept: list[Examples] = []
    base = None  # the round-0 weights, for restart (ReST-EM)

    done = store.completed_rounds()
    first = 0
    if done:
        restore_checkpoint(store.checkpoint_dir(done[-1]), model, optimizer)
        first = done[-1] + 1
        if cfg.restart:
            base = model_from_checkpoint(load_checkpoint(store.checkpoint_dir(0)), into=policy(cfg, task)[0])
        kept = [Examples.kept(tok, store.read_samples(r).to_pydict()) for r in range(1, first)]
        store.event("resumed", f"from round {first - 1}")
    records = [r for r in store.rounds() if r["round"] < first]

    for r in range(first, cfg.iterations + 1):
        t0 = time.time()
        rng, gen = round_rngs(cfg.seed, r, 1)
        record: dict = {"round": r}
        if r == 0:
            if cfg.init_from:  # the same round-0 model as another run: recipes compared from one start
                restore_checkpoint(Path(cfg.init_from) / "checkpoints" / "round-000", model, optimizer)
                loss, tokens = float("nan"), 0
            else:
                loss, tokens = train_on_pools(model, optimizer, cfg.sft(), [labelled], [1.0], cfg.round0_steps, gen,
                                              progress, f"round 0: train on {len(labelled)} labelled problems")
            base = copy.deepcopy(model) if cfg.restart else None
            record.update(kept=len(labelled), samples=0, temperature=None, threshold=None)
        else:
            # ---- JUDGE: the exact verifier, or a reward model trained on verified answers to seed problems
            judge, judge_info = verifier_judge, {}
            if cfg.judge == "orm":
                judge, judge_info = orm_judge(model, tok, task, cfg, seed_set, gen, progress, r)
            # ---- PROPOSE: sample answers to new problems (only their targets are known)
            problems = task.sample(cfg.problems_per_iteration, cfg.difficulty, rng, mixed=True)
            answers, temperature, threshold, probe = propose(model, tok, task, cfg, problems, gen, progress, judge)
            # ---- SELECT: the first copy of each distinct accepted answer
            samples = sample_table(answers, threshold)
            store.write_samples(r, samples)
            kept.append(Examples.kept(tok, samples))
            # ---- LEARN
            optimizer, loss, tokens = learn(model, optimizer, cfg, labelled, kept, base, samples, gen, progress, r)
            chosen = answers.drawn_at(temperature)
            record.update(kept=int(sum(samples["kept"])), samples=int(answers.correct.size),
                          temperature=temperature, threshold=threshold, probe=probe,
                          **judge_info, **exploration_metrics(chosen.correct, chosen.texts, cfg.balance_target,
                                                              chosen.reward, threshold))
        with progress.task(f"round {r}: evaluate", total=None):
            result = evaluate(model, tok, task, cfg, test, torch.Generator().manual_seed(cfg.seed + 77))
        record.update(pass1=result["pass1"], passk=result["passk"], loss=loss, tokens_trained=tokens,
                      wall_seconds=time.time() - t0)
        records.append(record)
        store.record_round(r, record, {"eval/pass1": record["pass1"], "eval/passk": record["passk"]})
        store.save_checkpoint(r, model, model.cfg.to_dict(), optimizer, {"round": r, "seed": cfg.seed})
        progress.log(f"[bold]round {r}[/] pass@1 {record['pass1']:.3f}  pass@{cfg.samples_per_problem} "
                     f"{record['passk']:.3f}  kept {record['kept']}  {record['wall_seconds']:.0f}s")

    summary = {"recipe": store.recipe, "task": cfg.task, "seed": cfg.seed, "judge": cfg.judge,
               "round0_pass1": records[0]["pass1"], "final_pass1": records[-1]["pass1"],
               "best_pass1": max(r["pass1"] for r in records), "samples_drawn": sum(r["samples"] for r in records),
               "tokens_trained": sum(r["tokens_trained"] for r in records),
               "rounds": records, "wall_seconds": round(sum(r["wall_seconds"] for r in records), 2)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def sample_table(answers: Answers, threshold: float) -> dict[str, list]:
    """Every sample with its verdict and score; `selected` is the judge's acceptance, `kept` marks the
    first copy of each distinct selected answer of a problem (what is trained on)."""
    cols: dict[str, list] = {"prompt": [], "answer": [], "temperature": [], "reward": [], "correct": [],
                             "selected": [], "kept": []}
    for p, row, ok, score, temp in zip(answers.problems, answers.texts, answers.correct, answers.reward,
                                       answers.temperature, strict=True):
        seen: set[str] = set()
        for t, c, s, tt in zip(row, ok, score, temp, strict=True):
            chosen = bool(s >= threshold) and t != "<no stop>"
            cols["prompt"].append(p.prompt)
            cols["answer"].append(t)
            cols["temperature"].append(float(tt))
            cols["reward"].append(float(s))
            cols["correct"].append(bool(c))
            cols["selected"].append(chosen)
            cols["kept"].append(chosen and t not in seen)
            seen.add(t)
    return cols


def evaluate_file(store: RunStore, cfg: Config, problems: list[Problem], strategy: str | None = None,
                  n: int | None = None) -> dict:
    """The run's latest model on a user's problems: pass@1, pass@k and a verdict per problem."""
    if strategy is not None or n is not None:
        raise SelfEvolveError(f"--strategy and --n are for rstar runs; a {store.recipe} run is scored by greedy "
                              f"pass@1 and pass@{cfg.samples_per_problem} (samples_per_problem)")
    task = get_task(cfg.task)
    model, tok = policy(cfg, task)
    model_from_checkpoint(load_checkpoint(store.last_checkpoint()), into=model)
    result = evaluate(model, tok, task, cfg, problems, torch.Generator().manual_seed(cfg.seed + 77))
    return {"metrics": {"pass@1 (greedy)": result["pass1"], f"pass@{cfg.samples_per_problem}": result["passk"]},
            "verdicts": result["verdicts"]}


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
                               for name in ("pass_at_k", "reward_at_k", "precision", "balance", "temperature",
                                            "threshold")},
                              "B-STaR monitors on each iteration's own samples", "iteration", "value",
                              plot_dir / "exploration.png"))
    return out
