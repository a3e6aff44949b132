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
    selfevolve run genome --set model=smollm2 --set shots=1 --set skills=upper,double,title,last
        --set target=upper,double,title      (skills the base does partly once it is shown a solved one)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from selfevolve.config import check_min
from selfevolve.errors import SelfEvolveError
from selfevolve.evolve.experts import ExpertsConfig, base_model, merge_space
from selfevolve.evolve.genome import Genome, GenomeConfig, GenomeState
from selfevolve.evolve.ops import linear_merge, random_merge_search, ties_merge
from selfevolve.evolve.runner import ParallelConfig
from selfevolve.models.hf_export import export_model
from selfevolve.models.lora import load_adapter, save_adapter
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs
from selfevolve.store import RunStore


@dataclass
class Config(GenomeConfig, ParallelConfig, ExpertsConfig):
    generations: int = 12
    """Generations of evolution."""
    ensemble_k: int = 3
    """Members of the final ensemble (the best on dev), majority vote."""
    ties_density: float = 0.5
    """Fraction of each expert's weights that TIES keeps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "generations", "ensemble_k")
        if not 0 < self.ties_density <= 1 or self.ensemble_k > self.pop_size:
            raise ValueError(f"need ties_density in (0, 1] and ensemble_k <= pop_size, got {self.ties_density}, "
                             f"{self.ensemble_k}")


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
