"""GENOME: evolve a population of LoRA experts, without gradients, into a model for a new task.

Zhang et al. (2025), "Nature-Inspired Population-Based Evolution of Large Language Models",
arXiv:2503.01155

    experts    one LoRA adapter per source skill, trained here from one shared frozen A (so a merge
               of their B matrices is exactly that merge of their weight updates) with a replay of
               the rest (`evolve/experts.py`), or the user's peft adapter directories (`adapters=dir1,...`)
    target     an even mixture of skills (`target`): each expert specialises in one skill and
               forgets some of the others, so no single expert covers it
    evolve     generation 0 = the experts; then GENOME's crossover, mutation, selection and
               (GENOME+) succession, fitness = exact match on a dev split of <= 200 problems,
               evaluated through the evolution runner (`backend=ray` spreads it, same result)
    result     the best individual on dev, and the majority vote of the `ensemble_k` best on dev
    baselines  every expert, the expert best on dev, the uniform merge (model soup), the TIES
               merge, and random search over merge weights with as many dev evaluations
    honesty    every choice uses dev only; the test split is read once, at the end, for all

    selfevolve run genome
    selfevolve run genome --set model=smollm2
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from selfevolve.config import check_min
from selfevolve.errors import SelfEvolveError
from selfevolve.evolve.adapters import AdapterEval, split_shared
from selfevolve.evolve.experts import Replay, own_writing, train_experts
from selfevolve.evolve.genome import Genome, GenomeConfig, GenomeState
from selfevolve.evolve.ops import Flat, linear_merge, random_merge_search, ties_merge
from selfevolve.evolve.runner import ParallelConfig
from selfevolve.models.hf_export import export_model
from selfevolve.models.lora import LoraSpec, add_lora, load_adapter, read_adapter, save_adapter, set_adapter_state
from selfevolve.models.policy import load_policy
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore
from selfevolve.tasks.base import HeldOutSplit, Problem
from selfevolve.tasks.skills import check_skills, skill_problems
from selfevolve.train.sft import Examples, SFTConfig, TrainingConfig, make_optimizer, train_on_pools

DEV, TEST, BASE, REPLAY = 1, 2, 3, 4  # random streams of the splits, the base model's data, replay prompts
REPLAY_TOKENS = 8  # of a pretrained base's writing an expert replays: longer than any answer


@dataclass
class Config(GenomeConfig, ParallelConfig, TrainingConfig):
    seed: int = 0
    """Seeds the base model, experts, splits and evolution; same seed = same run."""
    model: str = "tiny"
    """tiny (a small transformer trained in the run), smollm2, or a local HF Llama directory."""
    skills: tuple[str, ...] = ("reverse", "upper", "shift", "rotate", "swap")
    """Source skills: one expert each (see tasks/skills.py)."""
    target: tuple[str, ...] = ("reverse", "upper")
    """The target task: an even mixture of these skills."""
    adapters: tuple[str, ...] = ()
    """peft LoRA adapter directories to use as the experts instead of training them."""
    n_layer: int = 3
    """Layers of the tiny base model."""
    n_embd: int = 96
    """Width of the tiny base model."""
    learning_rate: float = 3e-3
    """Peak learning rate of the tiny base model."""
    threads: int = 2
    """Torch CPU threads."""
    base_steps: int = 700
    """Training steps of the tiny base model on all skills (it learns each one partly)."""
    lora_r: int = 8
    """Rank of the expert adapters."""
    lora_alpha: int = 16
    """LoRA scale numerator (updates are scaled by alpha / r)."""
    expert_steps: int = 300
    """Training steps of each expert on its skill."""
    expert_learning_rate: float = 2e-3
    """Peak learning rate of the experts (small: their updates must stay mergeable)."""
    expert_replay: float = 0.5
    """Share of each expert's batches that replay the rest, so an expert learns its own skill
    without overwriting what the model does on the other skills' prompts: the tiny base model's
    mixture of all skills, or a pretrained base model's own writing (see `evolve/experts.py`)."""
    replay_own_writing: bool = False
    """Tiny base: experts replay what it writes after the other skills' prompts, not its training mixture
    (as on a pretrained base), so each learns only its own skill."""
    generations: int = 12
    """Generations of evolution."""
    ensemble_k: int = 3
    """Members of the final ensemble (the best on dev), majority vote."""
    ties_density: float = 0.5
    """Fraction of each expert's weights that TIES keeps."""
    dev_size: int = 200
    """Dev problems: the only data that selection and every other choice see (at most 200)."""
    test_size: int = 500
    """Test problems, read once at the end."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "base_steps", "expert_steps", "lora_r", "lora_alpha", "generations", "ensemble_k",
                  "dev_size", "test_size")
        check_skills(self.skills, "skills")
        check_skills(self.target, "target")
        if self.dev_size > 200:
            raise ValueError(f"dev_size must be at most 200 (GENOME adapts from ~200 examples), got {self.dev_size}")
        if not (0 <= self.expert_replay < 1 and 0 < self.ties_density <= 1):
            raise ValueError(f"need expert_replay in [0, 1) and ties_density in (0, 1], got {self.expert_replay}, "
                             f"{self.ties_density}")
        n_experts = len(self.adapters) or len(self.skills)
        if n_experts < 2 or self.ensemble_k > self.pop_size:
            raise ValueError("need at least 2 experts and ensemble_k <= pop_size")

    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha)


def base_model(cfg: Config, store: RunStore, progress: Progress):
    """(model, tokenizer): an HF model, or the tiny model trained here on every skill (once; a resumed
    run loads it)."""
    base = load_policy(cfg.model, cfg.seed, 32, cfg.n_layer, cfg.n_head, cfg.n_embd)
    if cfg.model == "tiny" and 0 in store.completed_rounds():
        store.load_last(base.model)
    elif cfg.model == "tiny":
        sft = cfg.sft()
        optimizer = make_optimizer(base.model, sft)
        train_on_pools(base.model, optimizer, sft, [Examples.of_problems(base.tok, base_mixture(cfg))], [1.0],
                       cfg.base_steps, rngs(cfg.seed, "base").torch, progress, "base model: all skills")
        store.save_checkpoint(0, base.model, base.model.cfg.to_dict(), optimizer, {"round": 0})
    return base.model, base.tok


def base_mixture(cfg: Config) -> list[Problem]:
    """What the tiny base model learns from: every skill (and copying), evenly."""
    skills = tuple(dict.fromkeys(("copy", *cfg.skills, *cfg.target)))
    return skill_problems(skills, 20_000, rngs(cfg.seed, BASE).np)


def replay(cfg: Config, model, tok) -> Replay:
    """What each expert replays: the tiny base model's mixture of every skill, or (a pretrained base, or
    `replay_own_writing`) what the base writes after the other skills' prompts."""
    if cfg.model == "tiny" and not cfg.replay_own_writing:
        mixture = Examples.of_problems(tok, base_mixture(cfg))
        return lambda skill: mixture
    return own_writing(model, tok, skill_problems(cfg.skills, 100 * len(cfg.skills), rngs(cfg.seed, REPLAY).np),
                       REPLAY_TOKENS)


def experts(cfg: Config, model, tok, store: RunStore, progress: Progress) -> dict[str, dict[str, torch.Tensor]]:
    """Adapter weights per expert: the user's adapters, or one trained per source skill with a replay."""
    if cfg.adapters:
        return {Path(a).name: read_adapter(Path(a))[1] for a in cfg.adapters}
    data = {skill: Examples.of_problems(tok, skill_problems((skill,), 5_000, rngs(cfg.seed, 10 + i).np))
            for i, skill in enumerate(cfg.skills)}
    sft = SFTConfig(learning_rate=cfg.expert_learning_rate, batch_size=cfg.batch_size, weight_decay=0.0,
                    warmup_steps=min(50, cfg.expert_steps // 4))
    return train_experts(model, data, sft, cfg.expert_steps, cfg.lora(), store.path / "experts", cfg.seed, progress,
                         cfg.expert_replay, lambda: replay(cfg, model, tok), base=cfg.model)


@dataclass
class MergeSpace:
    """The experts as rows of flat vectors (the adapter weights that differ between them), the model
    that evaluates a merge of them on the dev split (`fitness`), and the test split behind its one read."""

    names: list[str]
    X: torch.Tensor
    fitness: AdapterEval
    spec: LoraSpec
    test: HeldOutSplit


def merge_space(cfg: Config, store: RunStore, progress: Progress) -> MergeSpace:
    """The base model and the experts (trained once; a resumed run, or a bench reading a finished one,
    loads them), and the splits."""
    base, tok = base_model(cfg, store, progress)
    spec = read_adapter(Path(cfg.adapters[0]))[0] if cfg.adapters else cfg.lora()
    model = add_lora(base.eval(), spec, seed=cfg.seed)
    shared, pool = split_shared(experts(cfg, model, tok, store, progress))
    set_adapter_state(model.eval(), shared)  # held fixed (our experts' one A): the merges are of the rest
    names = list(pool)
    flat = Flat.of(pool[names[0]])
    dev = skill_problems(cfg.target, cfg.dev_size, rngs(cfg.seed, DEV).np)
    test = HeldOutSplit(skill_problems(cfg.target, cfg.test_size, rngs(cfg.seed, TEST).np))
    return MergeSpace(names, torch.stack([flat.flatten(pool[n]) for n in names]), AdapterEval(model, tok, flat, dev),
                      spec, test)


def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    saved = store.read_state("GENOME state")
    start = time.perf_counter() - (saved["wall_seconds"] if saved else 0.0)
    space = merge_space(cfg, store, progress)
    names, X, fitness, test, evaluate = space.names, space.X, space.fitness, space.test, cfg.evaluator(space.fitness)

    def dev_fitness(rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(evaluate(rows.numpy(), cfg.seed)).float()

    if saved:
        expert_dev = torch.tensor(saved["expert_dev"])
        evo = Genome(cfg, X, expert_dev)
        state = GenomeState.restore(saved["tensors"], saved["genome"])
        progress.log(f"resuming at generation {state.generation}")
    else:
        expert_dev = dev_fitness(X)
        evo = Genome(cfg, X, expert_dev)
        state = evo.init(cfg.seed)
        checkpoint(store, state, expert_dev, len(X), expert_dev, time.perf_counter() - start)
    with progress.task("GENOME: evolve", cfg.generations, state.generation) as advance:
        while state.generation < cfg.generations:
            children, state = evo.ask(state)
            f = dev_fitness(children)
            state = evo.tell(state, children, f)
            checkpoint(store, state, f, len(X) + state.generation * len(children), expert_dev,
                       time.perf_counter() - start)
            advance(best=state.best_fitness, mean=float(f.mean()))
    log = store.rounds()
    budget = log[-1]["evaluations"]

    # every candidate is fixed on dev before the test split is read
    with progress.task("random search over merge weights", total=budget) as advance:
        best_random, _ = random_merge_search(X, lambda m: float(dev_fitness(m[None])[0]), budget,
                                             rngs(cfg.seed, "random-search").torch, advance)
    ensemble = {"genome_ensemble": [state.population[i] for i in state.fitness.argsort(descending=True)[
        : cfg.ensemble_k]]}
    candidates = {**{f"expert:{n}": X[i] for i, n in enumerate(names)}, "best_expert": X[int(expert_dev.argmax())],
                  "uniform_merge": linear_merge(X), "ties_merge": ties_merge(X, cfg.ties_density),
                  "random_search": best_random, "genome_best": state.best}
    dev_accuracy = fitness.scores(candidates, ensemble)
    problems = test.read()
    test_accuracy = fitness.scores(candidates, ensemble, problems)
    save_adapter(fitness.load(state.best), space.spec, store.path / "genome_best", base=cfg.model)
    summary = {"recipe": "genome", "model": cfg.model, "seed": cfg.seed, "experts": names,
               "target": list(cfg.target), "test_accuracy": test_accuracy, "dev_accuracy": dev_accuracy,
               "dev_accuracy_by_generation": [r["best_dev"] for r in log], "generations_log": log,
               "evaluations": budget, "random_search_evaluations": budget, "test_reads": test.reads,
               "dev_size": len(fitness.problems), "test_size": len(problems),
               "wall_seconds": time.perf_counter() - start}
    store.write_summary(summary)
    store.event("finished")
    return summary


def checkpoint(store: RunStore, state: GenomeState, evaluated: torch.Tensor, evaluations: int,
               expert_dev: torch.Tensor, wall: float) -> None:
    """A generation done: its row of the log (the best on dev so far, the mean of those just evaluated),
    then the population, so a resumed run goes on from it."""
    row = {"generation": state.generation, "best_dev": state.best_fitness, "mean_dev": float(evaluated.mean()),
           "evaluations": evaluations}
    store.record_round(state.generation, row, {"dev/best": row["best_dev"], "dev/mean": row["mean_dev"]})
    store.write_state({"genome": state.scalars(), "expert_dev": expert_dev.tolist(), "wall_seconds": wall},
                      state.tensors())


ROWS = ("best_expert", "uniform_merge", "ties_merge", "random_search", "genome_best", "genome_ensemble")


def headline(summary: dict) -> str:
    t = summary["test_accuracy"]
    return (f"GENOME on {'+'.join(summary['target'])} ({summary['model']}): test accuracy genome_best "
            f"{t['genome_best']:.3f}, ensemble {t['genome_ensemble']:.3f} vs best expert {t['best_expert']:.3f}, "
            f"uniform merge {t['uniform_merge']:.3f} ({summary['evaluations']} dev evaluations, "
            f"{summary['wall_seconds']:.0f} s)")


def table(summary: dict):
    from selfevolve.report import dev_test_table

    experts = [k for k in summary["test_accuracy"] if k.startswith("expert:")]
    return dev_test_table(f"Accuracy on {'+'.join(summary['target'])}: dev (chooses) and test (read once)",
                          summary["dev_accuracy"], summary["test_accuracy"], experts + list(ROWS))


def plots(summary: dict, plot_dir: Path) -> list[Path]:
    from selfevolve.report import plot_bars, plot_lines

    log = summary["generations_log"]
    t, best_expert = summary["test_accuracy"], summary["dev_accuracy"]["best_expert"]
    return [plot_lines([r["generation"] for r in log],
                       {"best on dev so far": [r["best_dev"] for r in log], "mean of the generation's children":
                        [r["mean_dev"] for r in log]},
                       "GENOME: dev accuracy per generation", "generation", "dev accuracy",
                       plot_dir / "dev_by_generation.png", hline=(best_expert, "best expert")),
            plot_bars({k: t[k] for k in ROWS}, f"Test accuracy on {'+'.join(summary['target'])} (read once)",
                      "exact match", plot_dir / "test_accuracy.png")]


def export(store: RunStore, cfg: Config, out: Path, overwrite: bool) -> Path:
    """The best merge on dev (genome_best, folded into the base model's weights) and the tokenizer as an HF
    model directory."""
    if not (store.path / "genome_best").is_dir():
        raise SelfEvolveError(f"{store.path} has no genome_best adapter yet: export needs a finished run")
    model, tok = base_model(cfg, store, Progress(enabled=False))
    return export_model(load_adapter(model, store.path / "genome_best"), tok, out, overwrite)


RECIPE = Recipe(Config, run, headline, plots, table=table, export=export)
