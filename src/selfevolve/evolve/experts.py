"""The population adapter evolution starts from: one LoRA expert per skill, all sharing one frozen A,
so a merge of their B matrices is exactly that merge of their weight updates (Zhang et al. 2025)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from selfevolve.models.lora import LoraSpec, adapter_state, read_adapter, save_adapter, set_adapter_state
from selfevolve.progress import Progress
from selfevolve.rng import rngs
from selfevolve.tasks.base import Problem
from selfevolve.train.sft import Examples, SFTConfig, make_optimizer, train_on_pools

Replay = Callable[[str], Examples]  # skill -> what its expert replays


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


def own_writing(model, tok, problems: list[Problem], new_tokens: int) -> Replay:
    """Replay for experts on a pretrained base, which knows none of the skills: replaying their answers
    would teach every expert every skill, so each expert replays what the base itself writes (greedy,
    no adapter) after the other skills' prompts. An expert that only ever saw its own skill applies it to
    every prompt, whatever the tag, and a merge of such experts does one skill or the other; with this
    replay the tag keeps deciding, and a merge can hold several skills."""
    from selfevolve.models.sampler import generate

    prompts = [tok.encode(p.prompt) for p in problems]
    with torch.no_grad():
        written = generate(model, prompts, new_tokens, stop_id=tok.eos_id, pad_id=tok.pad_id)

    def pool(skill: str) -> Examples:
        rows = [i for i, p in enumerate(problems) if p.fields["skill"] != skill]
        return Examples.of_tokens([prompts[i] for i in rows],
                                  [written.tokens[i, : written.lengths[i]].tolist() for i in rows], tok.pad_id)
    return pool
