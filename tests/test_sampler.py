import pytest
import torch

from selfevolve.models.sampler import filter_logits, generate
from selfevolve.models.transformer import POS_ENCODINGS, Transformer, TransformerConfig, digit_positions, token_kinds


def tiny_model(tok, pos_encoding, seed=0):
    torch.manual_seed(seed)
    cfg = TransformerConfig(tok.vocab_size, n_layer=2, n_head=2, n_embd=32, pos_encoding=pos_encoding,
                            digit_token_ids=tuple(tok.digit_ids), run_start_token_ids=tuple(tok.encode("=")))
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
        if nxt == stop:
            break
        x = torch.cat([x, torch.tensor([[nxt]])], 1)
    return out


def test_digit_positions(tok):
    cfg = TransformerConfig(tok.vocab_size, digit_token_ids=tuple(tok.digit_ids),
                            run_start_token_ids=tuple(tok.encode("=")))
    ids = torch.tensor([tok.encode("123+45=678") + [tok.eos_id]])
    assert digit_positions(ids, token_kinds(cfg)).tolist() == [[1, 2, 3, 0, 1, 2, 1, 2, 3, 4, 0]]


@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
def test_batched_cached_greedy_equals_one_prompt_at_a_time(tok, pos_encoding):
    """Left padding, the KV cache and incremental digit indices must not change any token."""
    model = tiny_model(tok, pos_encoding)
    texts = ["12+345=", "9+1=", "123456+7=", "5*5=", "00=9"]
    prompts = [tok.encode(t) for t in texts]
    out = generate(model, prompts, 10, stop_id=tok.eos_id)
    for i, p in enumerate(prompts):
        ref = naive_greedy(model, p, 10, tok.eos_id)
        assert out.tokens[i, : len(ref)].tolist() == ref
        assert int(out.lengths[i]) == (len(ref) if ref[-1] == tok.eos_id else 10)


def test_digit_tokens_follow_the_incremental_index(tok):
    """Force digit continuations so the decode-time index update is exercised on digits."""
    model = tiny_model(tok, "abacus-both", seed=1)
    digit_mask = torch.full((tok.vocab_size,), float("-inf"))
    digit_mask[tok.digit_ids] = 0
    original = model.forward

    def digits_only(*args, **kwargs):
        return original(*args, **kwargs) + digit_mask

    model.forward = digits_only
    prompts = [tok.encode("31+4="), tok.encode("999+1=")]
    out = generate(model, prompts, 6, stop_id=tok.eos_id)
    for i, p in enumerate(prompts):
        ref, x = [], torch.tensor([p])
        for _ in range(6):
            nxt = int(digits_only(x)[0, -1].argmax())
            ref.append(nxt)
            x = torch.cat([x, torch.tensor([[nxt]])], 1)
        assert out.tokens[i].tolist() == ref


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
