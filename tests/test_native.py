"""The forward and backward in C (models/native.py): close to the torch path's values and gradients, its
sampler's tokens and draws, and a clear error for what it cannot run."""

import pytest
import torch

from selfevolve.models import native
from selfevolve.models.lora import LoraSpec, add_lora
from selfevolve.models.native import NativeForward
from selfevolve.models.sampler import generate
from selfevolve.models.transformer import KVCache, Transformer, TransformerConfig


def tiny(tok, pos_encoding="rope", n_kv_head=0, seed=0) -> Transformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(tok.vocab_size, n_layer=2, n_head=4, n_kv_head=n_kv_head, n_embd=64,
                            pos_encoding=pos_encoding, max_seq_len=64)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # sharper logits than at init: errors in the attention would show
        for p in model.parameters():
            p.mul_(10)
    return model


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding of the same sums in another order (over activations in the tens here:
    a wrong mask, position or head moves values by whole units)."""
    return bool(((a - b).abs() <= 1e-3 * (1 + b.abs())).all())


CASES = [("rope", 0), ("rope", 2), ("nope", 0), ("nope", 1)]  # n_kv_head 0: one kv head per query head


@pytest.mark.parametrize(("pos_encoding", "n_kv_head"), CASES)
def test_native_features_are_the_modules_values(tok, pos_encoding, n_kv_head):
    model = tiny(tok, pos_encoding, n_kv_head)
    fast = NativeForward(model)
    ids = torch.randint(tok.vocab_size, (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = fast.features(ids), model.features(ids)  # whole sequences, causal
        exact = tiny(tok, pos_encoding, n_kv_head).double().features(ids)
        assert close(got, want)
        assert (got - exact).abs().max() <= 2 * (want - exact).abs().max()  # as near float64 as the torch path
        # a left-padded prefill into a cache, then tokens one at a time, as the sampler runs them
        valid = torch.ones(3, 12, dtype=torch.bool)
        valid[0, :2] = valid[2, :4] = False
        positions = (valid.long().cumsum(1) - 1).clamp(min=0) if pos_encoding == "rope" else None
        at = (lambda a, b: None) if positions is None else (lambda a, b: positions[:, a:b])
        causal = torch.ones(6, 6, dtype=torch.bool).tril()
        mask = (causal & valid[:, None, None, :6]) | torch.eye(6, dtype=torch.bool)
        caches = [KVCache(model.cfg, 3, 12, torch.float32, torch.device("cpu")) for _ in range(2)]
        got = fast.features(ids[:, :6], at(0, 6), mask, caches[0])
        want = model.features(ids[:, :6], positions=at(0, 6), mask=mask, cache=caches[1])
        assert close(got, want) and caches[0].length == caches[1].length == 6
        for t in range(6, 9):
            step_mask = valid[:, None, None, : t + 1]
            got = fast.features(ids[:, t:t + 1], at(t, t + 1), step_mask, caches[0])
            want = model.features(ids[:, t:t + 1], positions=at(t, t + 1), mask=step_mask, cache=caches[1])
            assert close(got, want)


@pytest.mark.parametrize(("pos_encoding", "n_kv_head"), CASES)
def test_native_gradients_are_the_modules_and_the_same_every_time(tok, pos_encoding, n_kv_head):
    """The backward in C against autograd through the modules, both against float64: as near as the torch
    path (a wrong term is off by its whole size); and bit for bit the same on a second pass (resume after
    kill -9 relies on it)."""
    model, exact = tiny(tok, pos_encoding, n_kv_head), tiny(tok, pos_encoding, n_kv_head).double()
    ids = torch.randint(tok.vocab_size, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 1, 9, 9, dtype=torch.bool).tril()
    mask[1, :, :, :3] = False  # keys hidden as a packed batch hides them; each query still sees itself
    mask |= torch.eye(9, dtype=torch.bool)
    positions = torch.arange(9).expand(3, 9) if pos_encoding == "rope" else None
    weight = torch.randn(3, 9, 64, generator=torch.Generator().manual_seed(2))

    def grads(m, x):
        return torch.autograd.grad((x * weight.to(x.dtype)).sum(), list(m.parameters()))

    want = grads(model, model.features(ids, positions=positions, mask=mask))
    best = grads(exact, exact.features(ids, positions=positions, mask=mask))
    got = grads(model, NativeForward(model).features(ids, positions, mask))
    for g, w, b in zip(got, want, best, strict=True):
        error = float((g.double() - b).norm() / b.norm())
        assert error <= max(4 * float((w.double() - b).norm() / b.norm()), 1e-5), error
    again = grads(model, NativeForward(model).features(ids, positions, mask))
    assert all(torch.equal(g, a) for g, a in zip(got, again, strict=True))


def test_native_sampling_gives_the_torch_paths_greedy_tokens(tok):
    model = tiny(tok)
    prompts = [tok.encode(p) for p in ("3,4>7:", "12,5,9>26:", "8>8:")]
    torch_out = generate(model, prompts, 10, stop_id=tok.eos_id, num_samples=2)
    native_out = generate(model, prompts, 10, stop_id=tok.eos_id, num_samples=2, native=True)
    assert torch.equal(native_out.tokens, torch_out.tokens) and torch.equal(native_out.lengths, torch_out.lengths)
    assert close(native_out.logprobs, torch_out.logprobs)


def test_native_draws_follow_the_softmax_and_skip_filtered_tokens(tok):
    """Inverse-CDF draws: each token's frequency over 4000 draws lies within 5 standard errors of its
    probability; with top_k, only the top k tokens are ever drawn."""
    model = tiny(tok)
    prompt = [tok.encode("3,4>7:")]
    with torch.no_grad():
        probs = (model(torch.tensor(prompt))[0, -1] / 2.0).softmax(-1)
    n = 4000
    draws = generate(model, prompt, 1, stop_id=tok.eos_id, num_samples=n, temperature=2.0, native=True,
                     generator=torch.Generator().manual_seed(0)).tokens[:, 0]
    freq = torch.bincount(draws, minlength=tok.vocab_size).float() / n
    assert ((freq - probs).abs() <= 5 * (probs * (1 - probs) / n).sqrt() + 1e-3).all()
    assert (probs > 0.05).sum() >= 3  # a test of a spread distribution, not of one token
    top = generate(model, prompt, 1, stop_id=tok.eos_id, num_samples=500, temperature=2.0, top_k=3, native=True,
                   generator=torch.Generator().manual_seed(1)).tokens[:, 0]
    assert set(top.tolist()) <= set(probs.topk(3).indices.tolist())


def test_native_reference_pass_is_the_torch_one(tok):
    from selfevolve.models.policy import Policy
    from selfevolve.train.rl import sample_batch
    from selfevolve.train.shared_prompts import share_prompts, shared_logprobs

    model = tiny(tok, n_kv_head=2)
    prompts = [f"{i},{i + 3},2>{2 * i}:" for i in range(8, 12)]
    batch = sample_batch(Policy(model, tok), prompts, {}, lambda p, c, **_: [0.0] * len(c), 4, 8, 1.0,
                         torch.Generator().manual_seed(0), native=True)
    shared = share_prompts(model, batch.examples, 4)
    with torch.no_grad():
        want, mask, _ = shared_logprobs(model, shared, 0.7)
        got, mask_native, _ = shared_logprobs(model, shared, 0.7, native=True)
    assert torch.equal(mask, mask_native) and close(got, want)


def test_loading_the_library_leaves_the_processes_floats_alone(tok):
    """-ffast-math at link time would add a constructor that flushes subnormal numbers to zero in the whole
    process (tests/test_trees.py's hypothesis strategies then refuse to run)."""
    NativeForward(tiny(tok))
    assert 5e-324 * 1.0 > 0 and bool(torch.tensor(1e-40) * 1.0 > 0)


def test_native_refuses_what_it_cannot_run(tok, monkeypatch):
    with pytest.raises(ValueError, match="our own Transformer"):
        NativeForward(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="rope or nope"):
        NativeForward(Transformer(TransformerConfig(tok.vocab_size, digit_token_ids=tuple(tok.digit_ids))))
    adapted = tiny(tok)
    add_lora(adapted, LoraSpec(r=2))
    with pytest.raises(ValueError, match="merge LoRA"):
        NativeForward(adapted)
    with pytest.raises(ValueError, match="float32"):
        NativeForward(tiny(tok).double())
    fast = NativeForward(tiny(tok))
    with pytest.raises(ValueError, match="token ids"):
        fast.features(torch.tensor([[tok.vocab_size]]))
    with pytest.raises(ValueError, match="mask must be boolean"):
        fast.features(torch.tensor([[1, 2]]), mask=torch.ones(1, 1, 2, 3, dtype=torch.bool))
    with torch.no_grad(), pytest.raises(ValueError, match="exceed the cache"):
        fast.features(torch.tensor([[1, 2, 3]]), cache=KVCache(fast.cfg, 1, 2, torch.float32, torch.device("cpu")))
    with pytest.raises(ValueError, match="whole sequences"):  # gradients: no cache
        fast.features(torch.tensor([[1, 2]]), cache=KVCache(fast.cfg, 1, 4, torch.float32, torch.device("cpu")))
    from selfevolve.on_policy import OnPolicyConfig

    with pytest.raises(ValueError, match="not LoRA"):  # a run that would fail at its first sample fails at once
        OnPolicyConfig(native=True, lora_r=4)
    monkeypatch.setenv("PATH", "")  # no compiler: one clear error, before anything runs
    native.library.cache_clear()
    with pytest.raises(RuntimeError, match="C compiler"):
        NativeForward(tiny(tok))
    monkeypatch.undo()
    native.library.cache_clear()
