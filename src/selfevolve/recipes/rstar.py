"""rStar-Math / MedS3: MCTS over code-executed steps, a process preference model, rounds of self-evolution.

Guan et al. (2025), "rStar-Math: Small LLMs Can Master Math Reasoning with Self-Evolved Deep
Thinking", arXiv:2501.04519; Jiang et al. (2025), "MedS3: Towards Medical Small Language Models
with Self-Evolved Slow Thinking", arXiv:2501.12051

    round 0: supervised fine-tuning of the policy on a few hundred solved easy wordmath problems
    round r: MCTS on new problems that carry only their final answer, one step longer each round
             (round 1 guided by terminal rewards alone, later rounds also by the previous
             round's PPM, or PRM with reward_model=prm); SFT the policy on the best correct
             trajectories per problem (by mean Q); train the PPM (pairwise, on sibling steps), a
             PRM (regressed on Q) and an ORM (on outcomes) on the trees; evaluate greedy, majority
             vote, best-of-N by each reward model, and PPM-guided MCTS on held-out problems at
             N = 1, 4, 16, 64

    selfevolve run rstar --set reward_model=prm
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from selfevolve.config import check_min, check_one_of
from selfevolve.errors import SelfEvolveError
from selfevolve.judge.reward import load_process_models, pair_accuracy, train_from_trees, value_fn
from selfevolve.models.hf_export import export_model
from selfevolve.models.policy import ModelChoice, Policy
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.progress import Progress, timed
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.search.best_of_n import answer_by
from selfevolve.search.mcts import MCTSConfig, search, solved
from selfevolve.search.strategies import STRATEGIES, compare_all, guided_search
from selfevolve.search.tree_data import pick, tree_data
from selfevolve.store import RunStore
from selfevolve.tasks import get_task
from selfevolve.tasks.base import SPLITS, Problem, held_out_split, sample_unseen
from selfevolve.tasks.wordmath import WordMathSteps, WordMathTask
from selfevolve.train.sft import Examples, TrainingConfig, make_optimizer, train_on_pools

WORDMATH = ("wordmath", "wordmath-hard")
POLICY_ENCODINGS = ("abacus-all", "abacus-alibi", "abacus-both", "abacus", "rope")


@dataclass
class Config(ModelChoice, MCTSConfig, TrainingConfig):
    PRESETS: ClassVar[dict[str, dict]] = {
        "default": {},
        "long": {"task": "wordmath-hard", "train_problems": 400, "eval_problems": 200, "reward_epochs": 4.0,
                 "reward_max_steps": 800}}
    preset: str = "default"
    """default (at most 20 minutes on 2 cores) or long (the PPM against majority vote, at most 60 minutes:
    task=wordmath-hard, 400 search problems a round, 200 held-out problems, reward_epochs=4,
    reward_max_steps=800); a value given with --set overrides the preset's."""
    task: str = "wordmath"
    """wordmath, or wordmath-hard (larger numbers, things not to count, purchases of several boxes: more
    room between a best sample and the majority; see tasks/wordmath.py)."""

    seed: int = 0
    """Seeds model init, problems, search and sampling."""
    reward_model: str = "ppm"
    """What guides the search after round 1: ppm (rStar-Math) or prm (MedS3)."""
    rounds: int = 3
    """Rounds of search + training after round 0."""
    seed_problems: int = 300
    """Labelled, solved problems for round 0."""
    seed_difficulty: int = 3
    """The seed problems have 1..seed_difficulty steps."""
    train_problems: int = 200
    """New problems per round, with their final answers only: the search must find the steps."""
    train_difficulty: int = 3
    """Round 1's search problems have 1..train_difficulty steps."""
    difficulty_step: int = 1
    """Each later round's search problems may have this many more steps (an easy-to-hard curriculum)."""
    eval_problems: int = 50
    """Held-out problems (the same every round)."""
    eval_difficulty: int = 5
    """The held-out problems have 1..eval_difficulty steps: harder ones than the seed set too."""
    eval_split: str = "test"
    """Held-out split: test (what results report) or dev (none of them test, seed or search
    problems: for choosing settings without touching test)."""
    eval_n: tuple[int, ...] = (1, 4, 16, 64)
    """Numbers of sampled solutions (and of MCTS rollouts) each strategy is scored at."""
    max_depth: int = WordMathTask.max_steps + 1  # a step per sentence, then the count
    widen: int = 4  # chosen on the dev split (bench/defaults_on_dev.py): best of 1, 2, 4
    trajectories_per_problem: int = 2
    """Correct trajectories per solved problem the policy is fine-tuned on (highest mean Q first)."""
    # TrainingConfig defaults this recipe changes
    n_embd: int = 64
    learning_rate: float = 3e-3
    pos_encoding: str = "abacus-all"
    """Position coupling (sentence k of the question and line k of the solution share index k;
    abacus-all: a learned index embedding, RoPE within a sentence or line, ALiBi over indices),
    abacus-alibi, abacus-both, abacus, or rope (token positions). See models/transformer.py."""
    max_line_offset: int = 8
    """Training shifts the sentence and line indices by a random offset in [0, max_line_offset) per
    sequence, so indices beyond the seed set's solution length are trained too."""

    round0_steps: int = 400
    """Policy steps on the seed set."""
    policy_steps: int = 200
    """Policy steps per round (seed set and search trajectories, half and half)."""
    reward_steps: int = 100
    """Steps per reward model per round (at least)."""
    reward_epochs: float = 0.0
    """If > 0, each reward model trains long enough to see its data (all rounds' so far) this many
    times, when that takes more than reward_steps: more search, more steps."""
    reward_max_steps: int = 0
    """If > 0, the most steps a reward model takes a round (the PRM's rows would take a long run's time)."""
    reward_batch_size: int = 32
    """Examples (PPM: pairs) per reward-model step."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, choices in (("reward_model", ("ppm", "prm")), ("task", WORDMATH), ("preset", tuple(self.PRESETS)),
                              ("eval_split", SPLITS), ("pos_encoding", POLICY_ENCODINGS)):
            check_one_of(self, name, choices)
        check_min(self, 1, "seed_problems", "seed_difficulty", "train_problems", "train_difficulty", "eval_problems",
                  "eval_difficulty", "trajectories_per_problem", "reward_batch_size")
        check_min(self, 0, "difficulty_step", "rounds", "round0_steps", "policy_steps", "reward_steps",
                  "reward_max_steps", "max_line_offset")
        most = WordMathTask.max_steps
        for name in ("seed_difficulty", "train_difficulty", "eval_difficulty"):
            if getattr(self, name) > most:
                raise ValueError(f"{name} must be <= {most} (wordmath steps), got {getattr(self, name)}")
        if not self.eval_n or min(self.eval_n) < 1:
            raise ValueError(f"eval_n must be positive numbers of solutions, got {self.eval_n}")

    def seed_set(self, task: WordMathTask) -> list[Problem]:
        """Round 0's labelled problems, which every held-out set (here and in benches) leaves out."""
        return task.sample(self.seed_problems, self.seed_difficulty, rngs(self.seed, 0).np, mixed=True)

    def held_out(self, task: WordMathTask, seed_set: list[Problem]) -> tuple[list[Problem], int]:
        """The eval split's held-out problems (1..eval_difficulty steps), none a seed problem."""
        return held_out_split(task, self.eval_problems, self.eval_difficulty, self.seed, self.eval_split,
                              {p.prompt for p in seed_set}, mixed=True)

    def search_difficulty(self, r: int) -> int:
        """Most steps of round r's search problems."""
        return min(self.train_difficulty + (r - 1) * self.difficulty_step, WordMathTask.max_steps)

    def mcts(self, rollouts: int | None = None) -> MCTSConfig:
        return replace(self, rollouts=rollouts or self.rollouts)


def build_policy(cfg: Config) -> Policy:
    """The tiny character-level policy, its sentences and solution lines coupled by position (a sentence per
    step and the question, a line per step and the count), or an HF model with its own tokenizer and RoPE
    positions. The reward models are the policy with a scalar head."""
    tok = CharTokenizer()
    return cfg.load_policy(WordMathTask.max_seq_len, pos_encoding=cfg.pos_encoding, coupling="lines",
                           sentence_end_ids=tuple(tok.encode(".?")), line_end_ids=tuple(tok.encode("\n")),
                           digit_pos_size=WordMathTask.max_steps + 3 + cfg.max_line_offset)


def evaluate_file(store: RunStore, cfg: Config, problems: list[Problem], strategy: str | None = None,
                  n: int | None = None) -> dict:
    """The run's latest policy and reward models on a user's problems, by one strategy at N solutions
    (default: best-of-16 by the PPM; greedy is one solution): accuracy, tokens and a verdict per problem."""
    strategy, n = strategy or "ppm", n or (1 if strategy == "greedy" else 16)
    if strategy not in STRATEGIES:
        raise SelfEvolveError(f"--strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if n < 1 or strategy == "greedy" and n != 1:
        raise SelfEvolveError(f"--n must be >= 1 (and 1 for greedy), got {n}")
    task, policy, last = get_task(cfg.task), build_policy(cfg), store.last_checkpoint()
    store.load_last(policy.model)
    needs = {"ppm": "ppm", "prm": "prm", "orm": "orm", "mcts_ppm": "ppm"}.get(strategy)
    rm = load_process_models(last, policy.model).get(needs) if needs else None
    if needs and rm is None:
        raise SelfEvolveError(f"{last.name} has no reward models (round 0 trains only the policy); use "
                              "--strategy greedy or majority, or finish a search round first")
    gen = rngs(cfg.seed, "evaluate").torch
    with Progress() as progress:
        if strategy == "mcts_ppm":
            trees = guided_search(policy, rm, WordMathSteps(), cfg.mcts(n), problems, gen, progress)
            texts, used = [t.answers_after[-1][1] for t in trees], [t.answers_after[-1][2] for t in trees]
        else:
            with progress.task(f"{strategy}: {n} solutions x {len(problems)} problems", len(problems)) as step:
                texts, used = answer_by(strategy, n, policy, task, problems, cfg.temperature, gen, rm, step)
    values = [task.final_answer(t) for t in texts]  # each chosen solution runs once
    correct = [task.answer_matches(p, v) for p, v in zip(problems, values, strict=True)]
    return {"metrics": {f"{strategy} at N={n}": float(np.mean(correct)), "tokens per problem": float(np.mean(used))},
            "verdicts": {"question": [p.fields["question"] for p in problems],
                         "answer": [p.fields["value"] for p in problems], "solution": texts, "value": values,
                         "correct": correct, "tokens": [int(u) for u in used]}}


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    task, policy = get_task(cfg.task), build_policy(cfg)
    tok, model = policy.tok, policy.model
    optimizer = make_optimizer(model, cfg.sft())
    seed_set = cfg.seed_set(task)
    labelled = Examples.of_problems(tok, seed_set)
    test, test_redrawn = cfg.held_out(task, seed_set)
    unseen_by = {p.prompt for p in test}  # held-out means unseen: no search problem is a held-out one
    first, records = store.resume_rounds(model, optimizer)
    rms = load_process_models(store.checkpoint_dir(first - 1), model) if first > 1 else None
    data = [store.read_samples(r).to_pydict() for r in range(1, first)]

    for r in range(first, cfg.rounds + 1):
        t0 = time.time()
        rng, gen, _ = rngs(cfg.seed, r, 1)
        record: dict = {"round": r}
        phases: dict[str, float] = {}
        if r == 0:
            with timed(phases, "policy"):
                train_on_pools(model, optimizer, cfg.sft(), [labelled], [1.0], cfg.round0_steps, gen, progress,
                               f"round 0: train on {len(labelled)} solved problems", cfg.max_line_offset)
            record.update(solved_by_search=None, ppm_pair_accuracy=None, prm_pair_accuracy=None)
        else:
            # ---- SEARCH: problems with final answers only; terminal-guided in round 1, then reward-guided
            problems, redrawn = sample_unseen(task, cfg.train_problems, cfg.search_difficulty(r), rng, unseen_by,
                                              mixed=True)
            guide = value_fn(rms[cfg.reward_model], tok) if rms else None
            with timed(phases, "search"), progress.task(
                    f"round {r}: MCTS, {cfg.rollouts} rollouts x {len(problems)} problems of 1-"
                    f"{cfg.search_difficulty(r)} steps", total=cfg.rollouts) as advance:
                trees = search(model, tok, WordMathSteps(), problems, cfg.mcts(), gen, value_fn=guide,
                               on_rollout=advance)
            rows = tree_data(trees, cfg.trajectories_per_problem)
            store.write_samples(r, rows)
            data.append(rows)
            merged = {name: [v for d in data for v in d[name]] for name in rows}
            # ---- LEARN: the policy on the best trajectories so far, reward models on all trees so far
            sft = pick(merged, "sft")
            with timed(phases, "policy"):
                if sft["prompt"]:
                    pools = [labelled, Examples.encode(tok, sft["prompt"], sft["text"])]
                    train_on_pools(model, optimizer, cfg.sft(), pools, [0.5, 0.5], cfg.policy_steps, gen, progress,
                                   f"round {r}: fine-tune on {len(sft['prompt'])} trajectories", cfg.max_line_offset)
            with timed(phases, "reward_models"):
                rms, reward_steps = train_from_trees(policy, merged, cfg.reward_steps, replace(
                    cfg.sft(), batch_size=cfg.reward_batch_size), gen, progress, f"round {r}: ", cfg.reward_epochs,
                    cfg.reward_max_steps)
            held = pick(merged, "pair", True)
            record.update(search_difficulty=cfg.search_difficulty(r), held_out_redrawn=redrawn,
                          solved_by_search=float(np.mean([solved(t.root) for t in trees])),
                          search_tokens=int(sum(t.tokens for t in trees)),
                          pruned_steps=int(sum(t.pruned for t in trees)), trajectories=len(pick(rows, "sft")["kind"]),
                          pairs=len(pick(rows, "pair")["kind"]), reward_steps=reward_steps,
                          **{f"{name}_pair_accuracy": pair_accuracy(rms[name], tok, held["prompt"], held["text"],
                                                                    held["other"]) for name in ("ppm", "prm")})
        with timed(phases, "evaluate"):
            acc, tokens, by_steps = compare_all(policy, rms, task, WordMathSteps(), cfg.mcts(), test, cfg.eval_n,
                                                cfg.temperature, rngs(cfg.seed, "evaluate").torch, progress)
        record.update(accuracy=acc, tokens=tokens, greedy_by_steps=by_steps, wall_seconds=time.time() - t0,
                      phase_seconds=phases)
        records.append(record)
        store.record_round(r, record, {"eval/greedy": acc["greedy"]["1"]})
        store.save_checkpoint(r, model, model.cfg.to_dict(), optimizer, {"round": r, "seed": cfg.seed},
                              extra=rms)
        progress.log(f"[bold]round {r}[/] greedy {acc['greedy']['1']:.3f}  " + "  ".join(
            f"{s}@{max(cfg.eval_n)} {acc[s][str(max(cfg.eval_n))]:.3f}" for s in STRATEGIES[1:]
            if str(max(cfg.eval_n)) in acc[s]) + f"  {record['wall_seconds']:.0f}s")

    summary = {"recipe": store.recipe, "seed": cfg.seed, "reward_model": cfg.reward_model, "rounds": records,
               "held_out": {"problems": len(test), "labelled_left_out": test_redrawn,
                            "search_redrawn": sum(r.get("held_out_redrawn", 0) for r in records)},
               "wall_seconds": round(sum(r["wall_seconds"] for r in records), 2)}
    store.write_summary(summary)
    store.event("finished")
    return summary


def headline(summary: dict) -> str:
    first, last = summary["rounds"][0]["accuracy"], summary["rounds"][-1]["accuracy"]
    return (f"wordmath: held-out greedy accuracy {first['greedy']['1']:.3f} after round 0 -> "
            f"{last['greedy']['1']:.3f} after {len(summary['rounds']) - 1} rounds, {summary['wall_seconds']:.0f} s")


def table(summary: dict):
    from selfevolve.report import strategy_table

    return strategy_table(summary["rounds"])


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_strategies

    return plot_strategies(summary["rounds"], plot_dir)


def export(store: RunStore, cfg: Config, out: Path, overwrite: bool) -> Path:
    """The latest policy (LoRA merged) and its tokenizer as an HF model directory, and the reward models
    it has beside it (out/ppm, out/prm, out/orm, each a LlamaForSequenceClassification)."""
    policy = build_policy(cfg)
    reward_models = load_process_models(store.last_checkpoint(), store.load_last(policy.model))
    return export_model(policy.model, policy.tok, out, overwrite, reward_models)


RECIPE = Recipe(Config, run, headline, plots, run_name=lambda cfg: cfg.task, table=table, evaluate_file=evaluate_file,
                export=export, policy=build_policy)
