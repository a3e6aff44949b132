"""GENOME: evolve a population of LoRA experts, without gradients, into a model for a new task.

Zhang et al. (2025), "Nature-Inspired Population-Based Evolution of Large Language Models",
arXiv:2503.01155

    experts    one LoRA adapter per source skill, trained here from one shared frozen A (so a merge
               of their B matrices is exactly that merge of their weight updates) with a replay of
               the rest (`replay_pool`), or the user's peft adapter directories (`adapters=dir1,...`)
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

import numpy as np
import torch

from selfevolve.config import check_min
from selfevolve.evolve.genome import Genome, GenomeConfig, GenomeState
from selfevolve.evolve.ops import Flat, linear_merge, majority_vote, ties_merge
from selfevolve.evolve.runner import Evaluator
from selfevolve.models.lora import LoraSpec, adapter_state, add_lora, read_adapter, save_adapter, set_adapter_state
from selfevolve.progress import Progress
from selfevolve.recipe import Recipe
from selfevolve.rng import rngs, seeded
from selfevolve.search.sampling import answer
from selfevolve.store import RunStore, load_checkpoint, model_from_checkpoint
from selfevolve.tasks.base import Problem
from selfevolve.tasks.skills import check_skills, skill_problems
from selfevolve.train.sft import Examples, SFTConfig, TrainingConfig, make_optimizer, train_on_pools

DEV, TEST, BASE, REPLAY = 1, 2, 3, 4  # random streams of the splits, the base model's data, replay prompts
REPLAY_TOKENS = 8  # of a pretrained base's writing an expert replays: longer than any answer


@dataclass
class Config(TrainingConfig):
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
    mixture of all skills, or a pretrained base model's own writing (see `replay_pool`)."""
    pop_size: int = 10
    """Individuals per generation (the experts are generation 0)."""
    generations: int = 12
    """Generations of evolution."""
    elites: int = 2
    """The best this many survive each generation unchanged."""
    selection: str = "roulette"
    """Parent selection: roulette, tournament or rank."""
    crossover_rate: float = 0.8
    """Share of children made by crossover (the rest copy one parent)."""
    crossover_scale: float = 1.2
    """A crossover child is this times its parents' fitness-weighted average (1.2 in the GENOME code)."""
    mutation_rate: float = 0.1
    """Fraction of a child's weights that get Gaussian noise."""
    mutation_sigma: float = 0.05
    """Noise std as a fraction of the population's weight std."""
    succession: bool = True
    """GENOME+: move each child towards its line's best and the best ever, away from the worst."""
    ensemble_k: int = 3
    """Members of the final ensemble (the best on dev), majority vote."""
    ties_density: float = 0.5
    """Fraction of each expert's weights that TIES keeps."""
    dev_size: int = 200
    """Dev problems: the only data that selection and every other choice see (at most 200)."""
    test_size: int = 500
    """Test problems, read once at the end."""
    backend: str = "serial"
    """serial (this process) or ray (local cluster, or ray_address)."""
    ray_address: str = ""
    """Address of a running Ray cluster; empty = start a local one."""
    workers: int = 0
    """CPUs for a local Ray cluster; 0 = all."""
    chunk_size: int = 4
    """Individuals per fitness task (the unit of parallel work)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "base_steps", "expert_steps", "lora_r", "lora_alpha", "generations", "ensemble_k",
                  "dev_size", "test_size", "chunk_size")
        check_skills(self.skills, "skills")
        check_skills(self.target, "target")
        if self.dev_size > 200:
            raise ValueError(f"dev_size must be at most 200 (GENOME adapts from ~200 examples), got {self.dev_size}")
        if self.backend not in ("serial", "ray"):
            raise ValueError(f"backend must be serial or ray, got {self.backend!r}")
        if not 0 <= self.expert_replay < 1:
            raise ValueError(f"expert_replay must be in [0, 1), got {self.expert_replay}")
        if not 0 < self.ties_density <= 1:
            raise ValueError(f"ties_density must be in (0, 1], got {self.ties_density}")
        n_experts = len(self.adapters) or len(self.skills)
        if n_experts < 2 or self.ensemble_k > self.pop_size:
            raise ValueError("need at least 2 experts and ensemble_k <= pop_size")
        self.genome()

    def genome(self) -> GenomeConfig:
        return GenomeConfig(self.pop_size, self.elites, self.selection, 3, self.crossover_rate, self.crossover_scale,
                            self.mutation_rate, self.mutation_sigma, self.succession)

    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha)


class HeldOutSplit:
    """The test problems behind an accessor that allows one read: nothing can be selected on them."""

    def __init__(self, problems: list[Problem]) -> None:
        self._problems, self.reads = problems, 0

    def read(self) -> list[Problem]:
        if self.reads:
            raise RuntimeError("the test split was already read; every choice must be made on dev")
        self.reads += 1
        return self._problems


# -- the base model and the experts ------------------------------------------------------------
def base_model(cfg: Config, store: RunStore, progress: Progress):
    """(model, tokenizer): the tiny model trained here (once; a resumed run loads it), or an HF model."""
    if cfg.model != "tiny":
        from selfevolve.models.hf import load

        return load(cfg.model)
    from selfevolve.models.tokenizer import CharTokenizer
    from selfevolve.models.transformer import Transformer, TransformerConfig

    tok = CharTokenizer()
    if 0 in store.completed_rounds():
        return model_from_checkpoint(load_checkpoint(store.checkpoint_dir(0))), tok
    mcfg = TransformerConfig(tok.vocab_size, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                             pos_encoding="rope", max_seq_len=32)
    model = seeded(lambda: Transformer(mcfg), cfg.seed, "init")
    sft = cfg.sft()
    optimizer = make_optimizer(model, sft)
    train_on_pools(model, optimizer, sft, [examples(tok, base_mixture(cfg))], [1.0], cfg.base_steps,
                   rngs(cfg.seed, "base").torch, progress, "base model: all skills")
    store.save_checkpoint(0, model, model.cfg.to_dict(), optimizer, {"round": 0})
    return model, tok


def base_mixture(cfg: Config) -> list[Problem]:
    """What the tiny base model learns from: every skill (and copying), evenly."""
    skills = tuple(dict.fromkeys(("copy", *cfg.skills, *cfg.target)))
    return skill_problems(skills, 20_000, rngs(cfg.seed, BASE).np)


def examples(tok, problems: list[Problem]) -> Examples:
    return Examples.encode(tok, [p.prompt for p in problems], [p.answer for p in problems])


def experts(cfg: Config, model, tok, store: RunStore, progress: Progress) -> dict[str, dict[str, torch.Tensor]]:
    """Adapter weights per expert. Trained ones share the frozen A that `add_lora` drew and are
    saved as peft adapters under experts/ (a resumed run reads them back)."""
    if cfg.adapters:
        return {Path(a).name: read_adapter(Path(a))[1] for a in cfg.adapters}
    fresh = adapter_state(model)  # A random, B zero
    for name, p in model.named_parameters():
        p.requires_grad_("lora_B" in name)
    out, replay = {}, None
    for i, skill in enumerate(cfg.skills):
        path = store.path / "experts" / skill
        if path.exists():
            out[skill] = read_adapter(path)[1]
            continue
        set_adapter_state(model, fresh)
        if cfg.expert_replay > 0 and replay is None:
            replay = replay_pool(cfg, model, tok)
        sft = SFTConfig(learning_rate=cfg.expert_learning_rate, batch_size=cfg.batch_size, weight_decay=0.0,
                        warmup_steps=min(50, cfg.expert_steps // 4))
        data = [examples(tok, skill_problems((skill,), 5_000, rngs(cfg.seed, 10 + i).np))]
        shares = [1.0]
        if cfg.expert_replay > 0:
            data.append(replay(skill))
            shares = [1 - cfg.expert_replay, cfg.expert_replay]
        train_on_pools(model, make_optimizer(model, sft), sft, data, shares, cfg.expert_steps,
                       rngs(cfg.seed, "expert", i).torch, progress, f"expert {skill}")
        save_adapter(model, cfg.lora(), path, base=cfg.model)
        out[skill] = adapter_state(model)
    return out


def replay_pool(cfg: Config, model, tok):
    """skill -> what its expert replays. The tiny base model was trained on every skill: its experts
    replay that mixture. A pretrained base knows none of them, so replaying their answers would teach
    every expert every skill; its expert replays instead what the base itself writes (greedy, no
    adapter) after the other skills' prompts. An expert that only ever saw its own skill applies it
    to every prompt, whatever the tag, and a merge of such experts does one skill or the other;
    with this replay the tag keeps deciding, and a merge can hold several skills."""
    if cfg.model == "tiny":
        mixture = examples(tok, base_mixture(cfg))
        return lambda skill: mixture
    from selfevolve.models.sampler import generate

    problems = skill_problems(cfg.skills, 100 * len(cfg.skills), rngs(cfg.seed, REPLAY).np)
    prompts = [tok.encode(p.prompt) for p in problems]
    with torch.no_grad():
        written = generate(model, prompts, REPLAY_TOKENS, stop_id=tok.eos_id, pad_id=tok.pad_id)

    def pool(skill: str) -> Examples:
        rows = [i for i, p in enumerate(problems) if p.fields["skill"] != skill]
        return Examples.of_tokens([prompts[i] for i in rows],
                                  [written.tokens[i, : written.lengths[i]].tolist() for i in rows], tok.pad_id)
    return pool


# -- fitness -----------------------------------------------------------------------------------
def accuracy(predicted: list[str], problems: list[Problem]) -> float:
    return float(np.mean([a == p.answer for a, p in zip(predicted, problems, strict=True)]))


class AdapterEval:
    """Answers of an adapted model for flat adapter vectors; picklable (the model travels with it), so
    each Ray worker evaluates on its own copy."""

    def __init__(self, model, tok, flat: Flat, problems: list[Problem]) -> None:
        self.model, self.tok, self.flat, self.problems = model, tok, flat, problems

    def answers(self, vector: torch.Tensor, problems: list[Problem] | None = None) -> list[str]:
        set_adapter_state(self.model, self.flat.unflatten(vector))
        return [a.strip() for a in answer(self.model, self.tok, problems or self.problems)[0]]

    def __call__(self, rows: np.ndarray, seed: int) -> np.ndarray:  # the runner's (rows, seed) -> fitness
        return np.array([accuracy(self.answers(torch.from_numpy(r)), self.problems) for r in rows])


# -- the run -----------------------------------------------------------------------------------
def run(cfg: Config, store: RunStore, progress: Progress) -> dict:
    cfg.use_threads()
    saved = store.read_state("GENOME state")
    start = time.perf_counter() - (saved["wall_seconds"] if saved else 0.0)
    base, tok = base_model(cfg, store, progress)
    spec = read_adapter(Path(cfg.adapters[0]))[0] if cfg.adapters else cfg.lora()
    model = add_lora(base.eval(), spec, seed=cfg.seed)
    pool = experts(cfg, model, tok, store, progress)
    model.eval()
    names = list(pool)
    flat = Flat.of(pool[names[0]])
    X = torch.stack([flat.flatten(pool[n]) for n in names])
    dev = skill_problems(cfg.target, cfg.dev_size, rngs(cfg.seed, DEV).np)
    test = HeldOutSplit(skill_problems(cfg.target, cfg.test_size, rngs(cfg.seed, TEST).np))
    fitness = AdapterEval(model, tok, flat, dev)
    evaluate = Evaluator(fitness, cfg.chunk_size, cfg.backend, cfg.ray_address, cfg.workers)

    def dev_fitness(rows: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(evaluate(rows.numpy(), cfg.seed)).float()

    if saved:
        from safetensors.torch import load_file

        expert_dev = torch.tensor(saved["expert_dev"])
        evo = Genome(cfg.genome(), X, expert_dev)
        state = GenomeState.restore(load_file(store.path / saved["tensors"]), saved["genome"])
        progress.log(f"resuming at generation {state.generation}")
    else:
        expert_dev = dev_fitness(X)
        evo = Genome(cfg.genome(), X, expert_dev)
        state = evo.init(cfg.seed)
        record_generation(store, state, expert_dev, len(X))
        save_state(store, state, expert_dev, time.perf_counter() - start)
    with progress.task("GENOME: evolve", total=cfg.generations) as advance:
        for _ in range(state.generation):
            advance()
        while state.generation < cfg.generations:
            children, state = evo.ask(state)
            f = dev_fitness(children)
            state = evo.tell(state, children, f)
            record_generation(store, state, f, len(X) + state.generation * len(children))
            save_state(store, state, expert_dev, time.perf_counter() - start)
            advance(best=state.best_fitness, mean=float(f.mean()))
    log = store.rounds()
    budget = log[-1]["evaluations"]

    # every candidate is fixed on dev before the test split is read
    rng = rngs(cfg.seed, "random-search").torch
    with progress.task("random search over merge weights", total=budget) as advance:
        best_random, best_random_dev = None, -1.0
        for _ in range(budget):
            w = torch.rand(len(X), generator=rng)
            candidate = linear_merge(X, w)
            score = float(dev_fitness(candidate[None])[0])
            if score > best_random_dev:
                best_random, best_random_dev = candidate, score
            advance(best=best_random_dev)
    order = state.fitness.argsort(descending=True)
    members = [state.population[i] for i in order[: cfg.ensemble_k]]
    best_expert = int(expert_dev.argmax())
    candidates = {**{f"expert:{n}": X[i] for i, n in enumerate(names)}, "best_expert": X[best_expert],
                  "uniform_merge": linear_merge(X), "ties_merge": ties_merge(X, cfg.ties_density),
                  "random_search": best_random, "genome_best": state.best}
    dev_accuracy = {k: accuracy(fitness.answers(v), dev) for k, v in candidates.items()}
    dev_accuracy["genome_ensemble"] = accuracy(majority_vote([fitness.answers(m) for m in members]), dev)

    problems = test.read()
    test_answers = {k: fitness.answers(v, problems) for k, v in candidates.items()}
    test_answers["genome_ensemble"] = majority_vote([fitness.answers(m, problems) for m in members])
    test_accuracy = {k: accuracy(a, problems) for k, a in test_answers.items()}
    save_adapter(load_into(model, flat, state.best), spec, store.path / "genome_best", base=cfg.model)
    summary = {"recipe": "genome", "model": cfg.model, "seed": cfg.seed, "experts": names,
               "target": list(cfg.target), "test_accuracy": test_accuracy, "dev_accuracy": dev_accuracy,
               "dev_accuracy_by_generation": [r["best_dev"] for r in log], "generations_log": log,
               "evaluations": budget, "random_search_evaluations": budget, "test_reads": test.reads,
               "dev_size": len(dev), "test_size": len(problems), "wall_seconds": time.perf_counter() - start}
    store.write_summary(summary)
    store.event("finished")
    return summary


def load_into(model, flat: Flat, vector: torch.Tensor):
    set_adapter_state(model, flat.unflatten(vector))
    return model


def record_generation(store: RunStore, state: GenomeState, evaluated: torch.Tensor, evaluations: int) -> None:
    """One row of the generations log: the best on dev so far, and the mean of those just evaluated."""
    row = {"generation": state.generation, "best_dev": state.best_fitness, "mean_dev": float(evaluated.mean()),
           "evaluations": evaluations}
    store.record_round(state.generation, row, {"dev/best": row["best_dev"], "dev/mean": row["mean_dev"]})


def save_state(store: RunStore, state: GenomeState, expert_dev: torch.Tensor, wall: float) -> None:
    """The population after a generation: a new tensor file, then the JSON that points at it, then
    the old tensor file goes; a kill at any moment leaves a JSON and the tensors it names."""
    from safetensors.torch import save

    from selfevolve.store import atomic_write

    name = f"state-{state.generation:04d}.safetensors"
    atomic_write(store.path / name, save({k: v.contiguous() for k, v in state.tensors().items()}))
    store.write_state({"genome": state.scalars(), "tensors": name, "expert_dev": expert_dev.tolist(),
                       "wall_seconds": wall})
    for old in store.path.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink()


# -- reporting ---------------------------------------------------------------------------------
ROWS = ("best_expert", "uniform_merge", "ties_merge", "random_search", "genome_best", "genome_ensemble")


def headline(summary: dict) -> str:
    t = summary["test_accuracy"]
    return (f"GENOME on {'+'.join(summary['target'])} ({summary['model']}): test accuracy genome_best "
            f"{t['genome_best']:.3f}, ensemble {t['genome_ensemble']:.3f} vs best expert {t['best_expert']:.3f}, "
            f"uniform merge {t['uniform_merge']:.3f} ({summary['evaluations']} dev evaluations, "
            f"{summary['wall_seconds']:.0f} s)")


def table(summary: dict):
    from rich.table import Table

    out = Table(title=f"Accuracy on {'+'.join(summary['target'])}: dev (chooses) and test (read once)")
    for col in ("candidate", "dev", "test"):
        out.add_column(col, justify="left" if col == "candidate" else "right")
    experts_first = [k for k in summary["test_accuracy"] if k.startswith("expert:")] + list(ROWS)
    for k in experts_first:
        out.add_row(k, f"{summary['dev_accuracy'][k]:.3f}", f"{summary['test_accuracy'][k]:.3f}")
    return out


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


RECIPE = Recipe(Config, run, headline, plots, table=table)
