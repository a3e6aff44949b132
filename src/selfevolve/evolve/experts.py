"""The population adapter evolution starts from, and the task it is evolved for: a base model, one LoRA
expert per skill, all sharing one frozen A (so a merge of their B matrices is exactly that merge of their
weight updates, Zhang et al. 2025), and a target mixture of skills with its dev and test splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from selfevolve.config import check_min
from selfevolve.evolve.adapters import AdapterEval, split_shared
from selfevolve.evolve.ops import Flat
from selfevolve.models.lm import chat_prompt
from selfevolve.models.lora import LoraSpec, adapter_state, add_lora, read_adapter, save_adapter, set_adapter_state
from selfevolve.models.policy import load_policy
from selfevolve.progress import Progress
from selfevolve.rng import rngs
from selfevolve.store import RunStore
from selfevolve.tasks.base import HeldOutSplit, Problem
from selfevolve.tasks.skills import SKILLS, check_skills, skill_problems, with_examples
from selfevolve.train.sft import Examples, SFTConfig, TrainingConfig, make_optimizer, train_on_pools

Replay = Callable[[str], Examples]  # skill -> what its expert replays
DEV, TEST, BASE, REPLAY = 1, 2, 3, 4  # random streams of the splits, the base model's data, replay prompts


@dataclass
class ExpertsConfig(TrainingConfig):
    """The base model, its experts and the target task; a mixin of the genome recipe's config."""

    seed: int = 0
    """Seeds the base model, experts, splits and evolution; same seed = same run."""
    model: str = "tiny"
    """tiny (a small transformer trained in the run), smollm2, or a local HF Llama directory."""
    skills: tuple[str, ...] = ("reverse", "upper", "shift", "rotate", "swap")
    """Source skills: one expert each (see tasks/skills.py)."""
    shots: int = 0
    """Solved problems of the skill before each problem, as chat turns (a pretrained model only): the model
    then partly does skills it was never trained on. 0 = the bare `skill:word=` prompt."""
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
    base_share: float = 1.0
    """Share of the tiny base model's training problems from the source and target skills (at 1, an even mixture
    of them and copying); below 1 the rest come from every other skill, copying among them: a broadly trained
    base that does these skills partly."""
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
    dev_size: int = 200
    """Dev problems: the only data that selection and every other choice see (at most 200)."""
    test_size: int = 500
    """Test problems, read once at the end."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min(self, 1, "base_steps", "expert_steps", "lora_r", "lora_alpha", "dev_size", "test_size")
        check_skills(self.skills, "skills")
        check_skills(self.target, "target")
        if self.shots and self.model == "tiny":
            raise ValueError("shots needs a pretrained model (model=smollm2 or an HF directory)")
        if self.dev_size > 200:
            raise ValueError(f"dev_size must be at most 200 (GENOME adapts from ~200 examples), got {self.dev_size}")
        if not 0 < self.base_share <= 1:
            raise ValueError(f"need base_share in (0, 1], got {self.base_share}")
        if not 0 <= self.expert_replay < 1:
            raise ValueError(f"need expert_replay in [0, 1), got {self.expert_replay}")
        if len(self.adapters or self.skills) < 2:
            raise ValueError("need at least 2 experts")

    def lora(self) -> LoraSpec:
        return LoraSpec(r=self.lora_r, alpha=self.lora_alpha)


def train_experts(model, data: dict[str, Examples], sft: SFTConfig, steps: int, spec: LoraSpec, out: Path,
                  seed: int, progress: Progress, replay_share: float = 0.0,
                  make_replay: Callable[[], Replay] | None = None, base: str = "") -> dict[str, dict]:
    """Adapter weights per skill, each trained `steps` steps on its data from the same fresh adapter (A
    random and frozen, B zero), `replay_share` of every batch from `make_replay()(skill)` (made once,
    when first needed). Each is saved as a peft adapter under out/<skill>; a resumed run reads them back."""
    fresh = adapter_state(model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_B" in name)
    experts, replay = {}, None
    for i, (skill, examples) in enumerate(data.items()):
        if (out / skill).exists():
            experts[skill] = read_adapter(out / skill)[1]
            continue
        set_adapter_state(model, fresh)
        pools, shares = [examples], [1.0]
        if replay_share > 0:
            replay = replay or make_replay()
            pools, shares = [examples, replay(skill)], [1 - replay_share, replay_share]
        train_on_pools(model, make_optimizer(model, sft), sft, pools, shares, steps, rngs(seed, "expert", i).torch,
                       progress, f"expert {skill}")
        save_adapter(model, spec, out / skill, base=base)
        experts[skill] = adapter_state(model)
    return experts


def own_writing(model, tok, problems: list[Problem]) -> Replay:
    """Replay for experts on a pretrained base, which knows none of the skills: replaying their answers
    would teach every expert every skill, so each expert replays what the base itself writes (greedy,
    no adapter) after the other skills' prompts. An expert that only ever saw its own skill applies it to
    every prompt, whatever the tag, and a merge of such experts does one skill or the other; with this
    replay the tag keeps deciding, and a merge can hold several skills. The base may write as long as
    the longest answer and its stop, so no answer it gets right is cut."""
    from selfevolve.models.sampler import generate
    from selfevolve.search.sampling import answer_room

    prompts = [tok.encode(p.prompt) for p in problems]
    with torch.no_grad():
        written = generate(model, prompts, answer_room(problems), stop_id=tok.eos_id, pad_id=tok.pad_id)

    def pool(skill: str) -> Examples:
        rows = [i for i, p in enumerate(problems) if p.fields["skill"] != skill]
        return Examples.of_tokens([prompts[i] for i in rows],
                                  [written.tokens[i, : written.lengths[i]].tolist() for i in rows], tok.pad_id)
    return pool


def base_model(cfg: ExpertsConfig, store: RunStore, progress: Progress):
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


def base_mixture(cfg: ExpertsConfig) -> list[Problem]:
    """What the tiny base model learns from: the source and target skills and copying, evenly; with
    base_share < 1 that share from the source and target skills, the rest from every other skill (shuffled in)."""
    rng = rngs(cfg.seed, BASE).np
    if cfg.base_share == 1:
        return skill_problems(tuple(dict.fromkeys(("copy", *cfg.skills, *cfg.target))), 20_000, rng)
    own = tuple(dict.fromkeys((*cfg.skills, *cfg.target)))
    n = round(20_000 * cfg.base_share)
    mixed = skill_problems(own, n, rng) + skill_problems(tuple(s for s in SKILLS if s not in own), 20_000 - n, rng)
    return [mixed[i] for i in rng.permutation(len(mixed))]


def problems(cfg: ExpertsConfig, tok, skills: tuple[str, ...], n: int, stream) -> list[Problem]:
    """n problems of these skills from one random stream, `shots` solved ones before each."""
    rng = rngs(cfg.seed, stream).np
    return with_examples(skill_problems(skills, n, rng), cfg.shots, rng, partial(chat_prompt, tok))


def replay(cfg: ExpertsConfig, model, tok) -> Replay:
    """What each expert replays: the tiny base model's mixture of every skill, or (a pretrained base, or
    `replay_own_writing`) what the base writes after the other skills' prompts."""
    if cfg.model == "tiny" and not cfg.replay_own_writing:
        mixture = Examples.of_problems(tok, base_mixture(cfg))
        return lambda skill: mixture
    return own_writing(model, tok, problems(cfg, tok, cfg.skills, 100 * len(cfg.skills), REPLAY))


def experts(cfg: ExpertsConfig, model, tok, store: RunStore, progress: Progress) -> dict[str, dict[str, torch.Tensor]]:
    """Adapter weights per expert: the user's adapters, or one trained per source skill with a replay."""
    if cfg.adapters:
        return {Path(a).name: read_adapter(Path(a))[1] for a in cfg.adapters}
    data = {skill: Examples.of_problems(tok, problems(cfg, tok, (skill,), 5_000, 10 + i))
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


def merge_space(cfg: ExpertsConfig, store: RunStore, progress: Progress) -> MergeSpace:
    """The base model and the experts (trained once; a resumed run, or a bench reading a finished one,
    loads them), and the splits."""
    base, tok = base_model(cfg, store, progress)
    spec = read_adapter(Path(cfg.adapters[0]))[0] if cfg.adapters else cfg.lora()
    model = add_lora(base.eval(), spec, seed=cfg.seed)
    shared, pool = split_shared(experts(cfg, model, tok, store, progress))
    set_adapter_state(model.eval(), shared)  # held fixed (our experts' one A): the merges are of the rest
    names = list(pool)
    flat = Flat.of(pool[names[0]])
    dev = problems(cfg, tok, cfg.target, cfg.dev_size, DEV)
    test = HeldOutSplit(problems(cfg, tok, cfg.target, cfg.test_size, TEST))
    return MergeSpace(names, torch.stack([flat.flatten(pool[n]) for n in names]), AdapterEval(model, tok, flat, dev),
                      spec, test)
