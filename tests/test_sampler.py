import pytest
import torch

from selfevolve.judge.uncertainty import mc_dropout
from selfevolve.models.lora import LoraSpec, add_lora
from selfevolve.models.sampler import filter_logits, generate, run_to_end, sample_steps
from selfevolve.models.transformer import (
    POS_ENCODINGS,
    KVCache,
    Transformer,
    TransformerConfig,
    digit_positions,
    line_positions,
    token_kinds,
)


def lines_coupling(tok) -> dict:
    return {"coupling": "lines", "sentence_end_ids": tuple(tok.encode(".?")), "line_end_ids": tuple(tok.encode("\n"))}


def tiny_model(tok, pos_encoding, seed=0, **coupling):
    torch.manual_seed(seed)
    cfg = TransformerConfig(tok.vocab_size, n_layer=2, n_head=2, n_embd=32, pos_encoding=pos_encoding,
                            digit_token_ids=tuple(tok.digit_ids), run_start_token_ids=tuple(tok.encode("=")),
                            **coupling)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # sharper logits than at init, so greedy paths differ between prompts
        for p in model.parameters():
            p.mul_(15)
    return model


def naive_greedy(model, prompt, n, stop):
    x, out = torch.tensor([prompt]), []
    for _ in range(n):
        nxt = int(model(x)[0, -1].argmax())
        out.append(nxt)
        if nxt in (stop if isinstance(stop, tuple) else (stop,)):
            break
        x = torch.cat([x, torch.tensor([[nxt]])], 1)
    return out


def test_digit_positions(tok):
    cfg = TransformerConfig(tok.vocab_size, digit_token_ids=tuple(tok.digit_ids),
                            run_start_token_ids=tuple(tok.encode("=")))
    ids = torch.tensor([tok.encode("123+45=678") + [tok.eos_id]])
    assert digit_positions(ids, token_kinds(cfg)).tolist() == [[1, 2, 3, 0, 1, 2, 1, 2, 3, 4, 0]]


def test_line_positions_couple_sentence_k_with_line_k(tok):
    """Sentence k of the question and line k of the answer share index k; place counts within each;
    left padding counts for nothing."""
    cfg = TransformerConfig(tok.vocab_size, pos_encoding="abacus", **lines_coupling(tok))
    text = "Ab. C?\nx=1\ny."
    ids = torch.tensor([[tok.pad_id, tok.pad_id] + tok.encode(text)])
    valid = ids != tok.pad_id
    index, place = line_positions(ids, token_kinds(cfg), valid)
    #                                 A  b  .  _  C  ?  \n  x  =  1  \n  y  .
    assert index[0, 2:].tolist() == [1, 1, 1, 2, 2, 2, 3, 1, 1, 1, 1, 2, 2]
    assert place[0, 2:].tolist() == [0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 3, 0, 1]


CASES = [(e, None) for e in POS_ENCODINGS] + [(e, "lines") for e in ("abacus", "abacus-both", "abacus-all")]


@pytest.mark.parametrize(("pos_encoding", "coupling"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_cached_greedy_equals_one_prompt_at_a_time(tok, pos_encoding, coupling, dtype):
    """Left padding, the KV cache, incremental digit (or line) indices and a prefill read in chunks of three
    positions must not change any token, nor any log-probability beyond rounding: in float64 they agree to
    the float32 they are returned in; in float32 the chunks' attention rounds differently, and with these
    logits near 80 the log-probabilities move by up to 1.1e-3 on some CPUs."""
    model = tiny_model(tok, pos_encoding, **(lines_coupling(tok) if coupling else {})).to(dtype)
    texts = ["12+345=", "9+1=", "123456+7=", "5*5=", "00=9"]
    if coupling:
        texts = ["Ann has 4. She buys 3. How many?\n", "Bob has 2?\nbuys: x = 2\n", "A. B. C. D?\na\nb\n", "Z?\n"]
    prompts = [tok.encode(t) for t in texts]
    n = 30 if coupling else 10  # long enough for sampled line and sentence ends
    out = generate(model, prompts, n, stop_id=tok.eos_id)
    chunked = run_to_end(sample_steps(model, prompts, n, stop_id=tok.eos_id, prefill_chunk=3))
    gap = (chunked.logprobs - out.logprobs).abs().max()
    assert torch.equal(chunked.tokens, out.tokens) and gap < (1e-6 if dtype == torch.float64 else 1e-2), gap
    for i, p in enumerate(prompts):
        ref = naive_greedy(model, p, n, tok.eos_id)
        assert out.tokens[i, : len(ref)].tolist() == ref
        assert int(out.lengths[i]) == (len(ref) if ref[-1] == tok.eos_id else n)


@pytest.mark.parametrize(("pos_encoding", "coupling"), CASES)
def test_plain_blocks_give_the_modules_values_bit_for_bit(tok, pos_encoding, coupling):
    """The sampler runs the blocks as plain functions of their weights: a prefill, a cached token after it
    and a training forward with its gradients must equal the modules' exactly, grouped kv heads included."""
    torch.manual_seed(0)
    cfg = TransformerConfig(tok.vocab_size, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, pos_encoding=pos_encoding,
                            digit_token_ids=tuple(tok.digit_ids), run_start_token_ids=tuple(tok.encode("=")),
                            **(lines_coupling(tok) if coupling else {}))
    model = Transformer(cfg)
    ids = torch.tensor([tok.encode("12+345=67. 8?\n9"), tok.encode("9+1=10.\n23+4=56")])
    positions, digit_pos = model.positions(ids)

    def run(blocks):
        cache = KVCache(cfg, 2, ids.shape[1], torch.float32, torch.device("cpu"))
        with torch.no_grad():
            prefill = model(ids[:, :-1], cache=cache, blocks=blocks)
            last = model(ids[:, -1:], positions=None if positions is None else positions[:, -1:],
                         digit_pos=None if digit_pos is None else digit_pos[:, -1:],
                         mask=torch.ones(2, 1, 1, ids.shape[1], dtype=torch.bool), cache=cache, blocks=blocks)
        model.zero_grad()
        logits = model(ids, blocks=blocks)
        logits.square().mean().backward()
        return prefill, last, logits, [p.grad.clone() for p in model.parameters()]

    plain, modules = run(model.plain_blocks()), run(None)
    for a, b in zip(plain[:3], modules[:3], strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(plain[3], modules[3], strict=True))


def test_adapted_or_hooked_models_keep_their_modules(tok):
    """LoRA layers and hooks (MC dropout's, or a backward one) live in the modules: no plain path for them."""
    model = tiny_model(tok, "rope")
    assert model.plain_blocks() is not None
    with mc_dropout(model, 0.5):
        assert model.plain_blocks() is None
    assert model.plain_blocks() is not None
    handle = model.layers[1].mlp.down_proj.register_full_backward_hook(lambda *_: None)
    assert model.plain_blocks() is None
    handle.remove()
    assert add_lora(model, LoraSpec(r=2, targets=("v_proj",))).plain_blocks() is None


@pytest.mark.parametrize("pos_encoding", ["rope", "abacus-all"])
def test_rows_that_finish_leave_the_batch_without_changing_the_others(tok, pos_encoding):
    """Many stop tokens, so rows finish at different steps and the batch shrinks several times."""
    model = tiny_model(tok, pos_encoding)
    prompts = [tok.encode(f"{i}+{i * 7}=") for i in range(24)]
    stops = tuple(tok.encode("aeiouAEIOU0123456789=+"))
    out = generate(model, prompts, 30, stop_id=stops)
    assert (out.lengths < 10).sum() >= 12 and (out.lengths > 20).any()  # it did shrink, and went on
    for i, p in enumerate(prompts):
        ref = naive_greedy(model, p, 30, stops)
        assert out.tokens[i, : len(ref)].tolist() == ref and int(out.lengths[i]) == len(ref)
        assert (out.tokens[i, len(ref):] == tok.pad_id).all() and (out.logprobs[i, len(ref):] == 0).all()


@pytest.mark.parametrize("coupling", [None, "lines"])
def test_forced_tokens_follow_the_incremental_index(tok, coupling):
    """Force continuations made of the tokens that move the index (digits; or line and sentence
    ends), so the decode-time index is exercised where it changes."""
    model = tiny_model(tok, "abacus-both", seed=0 if coupling else 1, **(lines_coupling(tok) if coupling else {}))
    allowed = tok.encode("a.?\n") if coupling else tok.digit_ids
    mask = torch.full((tok.vocab_size,), float("-inf"))
    mask[allowed] = 0
    original = model.forward

    def forced(*args, **kwargs):
        return original(*args, **kwargs) + mask

    model.forward = forced
    prompts = [tok.encode(t) for t in (["Ab. C", "D.\nx"] if coupling else ["31+4=", "999+1="])]
    out = generate(model, prompts, 12, stop_id=tok.eos_id)
    for i, p in enumerate(prompts):
        ref, x = [], torch.tensor([p])
        for _ in range(12):
            nxt = int(forced(x)[0, -1].argmax())
            ref.append(nxt)
            x = torch.cat([x, torch.tensor([[nxt]])], 1)
        assert out.tokens[i].tolist() == ref
    if coupling:  # the forced text really does end sentences, the question and lines
        made = tok.decode(out.tokens.flatten().tolist())
        assert "?" in made and made.count("\n") >= 2


def test_num_samples_and_seeded_sampling(tok):
    model = tiny_model(tok, "rope")
    prompts = [tok.encode("1+1="), tok.encode("22+3=")]
    a = generate(model, prompts, 8, stop_id=tok.eos_id, num_samples=4, temperature=1.0,
                 generator=torch.Generator().manual_seed(0))
    b = generate(model, prompts, 8, stop_id=tok.eos_id, num_samples=4, temperature=1.0,
                 generator=torch.Generator().manual_seed(0))
    assert a.tokens.shape[0] == 8 and torch.equal(a.tokens, b.tokens)
    assert len({tuple(r) for r in a.tokens.tolist()}) > 1  # samples differ
    assert (a.logprobs <= 0).all()


def test_filter_logits_keeps_top_k_and_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, 2, 1.0)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, 0, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, 0, 0.4)).tolist() == [[True, False, False, False]]


def test_bad_arguments(tok):
    model = tiny_model(tok, "nope")
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, [[3]], 0, stop_id=1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [[3]], 2, stop_id=1, temperature=-1)
