import pytest
import torch

from selfevolve.models.sampler import generate
from selfevolve.models.transformer import Transformer, TransformerConfig
from selfevolve.store import RunStore, load_checkpoint
from selfevolve.train.sft import SFTConfig, make_optimizer

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("pos_encoding", ["rope", "abacus-alibi", "abacus-all", "abacus-both", "abacus", "nope"])
def test_exported_model_gives_the_same_greedy_tokens(tmp_path, tok, pos_encoding):
    from selfevolve.models.hf_export import export_hf

    torch.manual_seed(0)
    model = Transformer(TransformerConfig(
        tok.vocab_size, n_layer=2, n_head=2, n_embd=32, pos_encoding=pos_encoding,
        digit_token_ids=tuple(tok.digit_ids), run_start_token_ids=tuple(tok.encode("="))))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(15)
    store = RunStore.create(tmp_path / "run", "length-gen", "")
    ckpt_dir = store.save_checkpoint(0, model, model.cfg.to_dict(), make_optimizer(model, SFTConfig()), {"round": 0})
    out = export_hf(load_checkpoint(ckpt_dir), tmp_path / "hf")

    hf = transformers.AutoModelForCausalLM.from_pretrained(out, trust_remote_code=pos_encoding != "rope").eval()
    assert type(hf).__name__ == ("LlamaForCausalLM" if pos_encoding == "rope" else "SelfEvolveForCausalLM")
    prompts = [tok.encode(t) for t in ["123+456=", "900+111=", "7+0=5555"]]  # equal lengths: no padding
    x = torch.tensor(prompts)
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x), rtol=1e-4, atol=1e-4)
        ref = hf.generate(x, max_new_tokens=8, do_sample=False, use_cache=True, eos_token_id=None,
                          pad_token_id=tok.pad_id)[:, x.shape[1]:]
    ours = generate(model, prompts, 8, stop_id=-1)
    assert torch.equal(ours.tokens, ref)
    # in float64 too, over a longer sequence: HF's RMSNorm computes in float32, so the two agree to float32
    # rounding, which these sharp weights amplify (0.1% of the logits' scale); a misread mask moves them more
    hf64 = transformers.AutoModelForCausalLM.from_pretrained(out, trust_remote_code=pos_encoding != "rope",
                                                             dtype=torch.float64).eval()
    x = torch.tensor([tok.encode(t) for t in ["123456789+987654321=1234567890123", "5+5=" * 8 + "1"]])
    with torch.no_grad():
        logits = model.double()(x)
        gap = (hf64(x).logits - logits).abs().max()
    assert gap < 1e-3 * logits.abs().max(), gap
    auto = transformers.AutoTokenizer.from_pretrained(out)  # the character tokenizer ships with the weights
    text = tok.alphabet + "\n12 + 7 = 19\n"
    assert auto.encode(text, add_special_tokens=False) == tok.encode(text)
    assert auto.decode(tok.encode(text)) == text


def test_export_refuses_to_overwrite(tmp_path, tok):
    from selfevolve.errors import RunDirError
    from selfevolve.models.hf_export import export_hf

    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("x")
    with pytest.raises(RunDirError, match="did not write"):
        export_hf({"model_config": {}, "tensors": {}}, tmp_path / "hf", overwrite=True)
    assert (tmp_path / "hf" / "keep.txt").read_text() == "x"
