"""LoRA through peft: only adapters train; an adapter saved by us loads in plain peft onto the HF
model with the same logits, loads back into ours, and merges into the base weights exactly."""

import pytest
import torch
import torch.nn.functional as F
from helpers import save_tiny_llama

from selfevolve.errors import CheckpointError
from selfevolve.models.hf import load_model
from selfevolve.models.lora import LoraSpec, adapter_state, add_lora, load_adapter, merge_lora, save_adapter
from selfevolve.train.sft import SFTConfig, apply_loss, make_optimizer

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

SPEC = LoraSpec(r=4, alpha=8)


def train_a_little(model, steps=30):
    """Teach the model to continue 5, 6, 7 with 8: a loss the adapter alone must bring down."""
    opt = make_optimizer(model, SFTConfig(learning_rate=1e-2, weight_decay=0.0))
    x = torch.tensor([[5, 6, 7]] * 4)
    y = torch.tensor([[6, 7, 8]] * 4)
    losses = []
    for _ in range(steps):
        model.train()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        losses.append(apply_loss(model, opt, loss, 1e-2, SFTConfig()))
    return losses


def test_only_the_adapter_trains_and_it_learns(tmp_path):
    save_tiny_llama(tmp_path / "llama")
    model = add_lora(load_model(str(tmp_path / "llama")), SPEC)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert len(trainable) == 2 * len(SPEC.targets) * model.cfg.n_layer  # A and B on every targeted linear
    losses = train_a_little(model)
    assert losses[-1] < 0.5 * losses[0]
    for n, p in model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, base[n]), n


def test_saved_adapter_loads_in_plain_peft_ours_and_merged(tmp_path):
    hf = save_tiny_llama(tmp_path / "llama")
    model = add_lora(load_model(str(tmp_path / "llama")), SPEC)
    train_a_little(model, steps=5)
    model.eval()
    out = save_adapter(model, SPEC, tmp_path / "adapter", base=str(tmp_path / "llama"))
    x = torch.randint(4, 97, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(x)
        theirs = peft.PeftModel.from_pretrained(hf, out).eval()(x).logits
        assert not torch.allclose(ours, load_model(str(tmp_path / "llama"))(x), atol=1e-3)  # the adapter matters
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
        reloaded = load_adapter(load_model(str(tmp_path / "llama")), out).eval()
        torch.testing.assert_close(reloaded(x), ours, rtol=0, atol=0)
        merged = merge_lora(reloaded)
        assert not adapter_state_names(merged)
        torch.testing.assert_close(merged(x), ours, rtol=1e-5, atol=1e-5)


def adapter_state_names(model):
    return [n for n, _ in model.named_parameters() if "lora_" in n]


def test_an_adapter_trained_by_plain_peft_loads_into_ours(tmp_path):
    hf = save_tiny_llama(tmp_path / "llama")
    peft_model = peft.get_peft_model(hf, SPEC.peft_config())
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    peft_model.save_pretrained(tmp_path / "theirs")
    x = torch.randint(4, 97, (2, 9), generator=torch.Generator().manual_seed(0))
    ours = load_adapter(load_model(str(tmp_path / "llama")), tmp_path / "theirs").eval()
    assert len(adapter_state(ours)) == 2 * len(SPEC.targets) * 2
    with torch.no_grad():
        torch.testing.assert_close(ours(x), peft_model.eval()(x).logits, rtol=1e-4, atol=1e-4)


def test_broken_adapter_directories_get_one_clear_error(tmp_path):
    save_tiny_llama(tmp_path / "llama")
    model = add_lora(load_model(str(tmp_path / "llama")), SPEC)
    out = save_adapter(model, SPEC, tmp_path / "adapter")
    with pytest.raises(CheckpointError, match="not a peft adapter"):
        load_adapter(load_model(str(tmp_path / "llama")), tmp_path)
    weights = out / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_adapter(load_model(str(tmp_path / "llama")), out)
