"""LoRA adapters on our Transformer through `peft`, saved in peft's own format.

`peft` injects its LoRA layers into our modules in place, so the sampler and trainer run on an
adapted model unchanged and only adapter weights train. On disk an adapter is what
`PeftModel.save_pretrained` writes for the equivalent `LlamaForCausalLM` (`adapter_config.json`
+ `adapter_model.safetensors`, keys `base_model.model.model.layers...`), so plain `peft` loads
ours onto the HF model, and ours loads adapters trained elsewhere. An adapter's weights as a
dict of tensors (`adapter_state`) is what population methods evolve.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from selfevolve.errors import CheckpointError
from selfevolve.models.hf import require
from selfevolve.models.transformer import Transformer
from selfevolve.rng import seeded

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
HF_PREFIX = "base_model.model.model."  # our `layers.0...` is `model.layers.0...` in LlamaForCausalLM
CONFIG, WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


@dataclass(frozen=True)
class LoraSpec:
    """The adapter's shape: rank, scale (alpha / r) and which linear layers it adapts."""

    r: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ALL_LINEAR
    dropout: float = 0.0

    def peft_config(self, base: str = ""):
        require("peft")
        import peft

        return peft.LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                               target_modules=list(self.targets), task_type="CAUSAL_LM",
                               base_model_name_or_path=base or None)


def add_lora(model: Transformer, spec: LoraSpec, seed: int = 0) -> Transformer:
    """Inject fresh adapters (B = 0, so the model is unchanged) and freeze everything else."""
    import peft

    return seeded(lambda: peft.inject_adapter_in_model(spec.peft_config(), model), seed, "lora")


def adapter_state(model: Transformer) -> dict[str, torch.Tensor]:
    """The adapter weights, keyed as in our modules (`layers.0.self_attn.q_proj.lora_A.weight`)."""
    import peft

    return {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(model).items()}


def set_adapter_state(model: Transformer, state: dict[str, torch.Tensor]) -> None:
    import peft

    result = peft.set_peft_model_state_dict(model, state)
    if result.unexpected_keys:
        raise CheckpointError(f"adapter weights for modules this model has no adapter on: "
                              f"{result.unexpected_keys[:3]}")


def save_adapter(model: Transformer, spec: LoraSpec, out: Path, base: str = "") -> Path:
    """Write the adapter as peft does for the HF model, atomically (a temp dir renamed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        tensors = {HF_PREFIX + k: v.contiguous() for k, v in adapter_state(model).items()}
        save_file(tensors, tmp / WEIGHTS, metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(spec.peft_config(base).to_dict(), indent=2, default=list))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_adapter(path: Path) -> tuple[LoraSpec, dict[str, torch.Tensor]]:
    """An adapter directory in peft's format -> (spec, weights keyed as in our modules)."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG).read_text())
        tensors = load_file(path / WEIGHTS)
    except FileNotFoundError as err:
        missing = Path(err.filename).name
        raise CheckpointError(f"{path} is not a peft adapter directory ({missing} is missing)") from None
    except Exception as err:  # invalid JSON, truncated safetensors
        raise CheckpointError(f"{path}: the adapter cannot be read ({err}); it is truncated or corrupt") from None
    if config.get("peft_type") != "LORA":
        raise CheckpointError(f"{path}: peft_type is {config.get('peft_type')!r}; only LORA adapters are supported")
    targets = config.get("target_modules") or ALL_LINEAR
    spec = LoraSpec(r=config["r"], alpha=config["lora_alpha"], targets=tuple(sorted(targets)),
                    dropout=config.get("lora_dropout", 0.0))
    prefixes = (HF_PREFIX, "base_model.model.")  # HF models, and adapters on a bare module
    state = {}
    for k, v in tensors.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        state[k] = v
    return spec, state


def load_adapter(model: Transformer, path: Path) -> Transformer:
    """Inject an adapter read from disk into a model that has none."""
    spec, state = read_adapter(path)
    model = add_lora(model, spec)
    set_adapter_state(model, state)
    return model


def merge_lora(model: Transformer) -> Transformer:
    """Fold every adapter into its base weight (W + alpha/r * B @ A) and remove the LoRA layers."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())
    for p in model.parameters():
        p.requires_grad_(True)
    return model
