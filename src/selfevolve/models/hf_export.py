"""Export a model and its tokenizer as a Hugging Face model directory.

A RoPE model is a plain `LlamaForCausalLM` (same weight names, same math). Other position
encodings get `modeling_selfevolve.py` saved alongside, loaded with `trust_remote_code=True`.
LoRA adapters are merged into full weights. The tokenizer files go alongside: a pretrained
model's own, or for our character tokenizer a `tokenizers` WordLevel model with the same ids, so
`AutoTokenizer.from_pretrained` and `AutoModelForCausalLM.from_pretrained` alone reproduce our
tokenization and greedy outputs.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from selfevolve.errors import CheckpointError
from selfevolve.models.policy import Policy, Tokenizer
from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.models.transformer import Transformer
from selfevolve.store import (
    RunStore,
    atomic_json,
    build_beside,
    check_replaceable,
    checkpoint_tensors,
    model_from_checkpoint,
    write_marker,
)

MODELING_FILE = Path(__file__).with_name("hf_modeling.py")


def hf_config(model_config: dict[str, Any], tok: Tokenizer) -> dict[str, Any]:
    c = model_config
    if c.get("coupling") == "lines" and c["pos_encoding"] != "rope":
        raise CheckpointError(f"export writes Llama models and digit-coupled ones; this model couples positions by "
                              f"sentences and lines ({c['pos_encoding']}), which modeling_selfevolve.py does not "
                              "compute yet: train it with --set pos_encoding=rope to export it")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c["vocab_size"],
        "hidden_size": c["n_embd"],
        "intermediate_size": c["intermediate_size"],
        "num_hidden_layers": c["n_layer"],
        "num_attention_heads": c["n_head"],
        "num_key_value_heads": c.get("n_kv_head") or c["n_head"],
        "head_dim": c["n_embd"] // c["n_head"],
        "max_position_embeddings": c["max_seq_len"],
        "rms_norm_eps": c["norm_eps"],
        "rope_theta": c["rope_theta"],
        "rope_parameters": {"rope_type": "default", "rope_theta": c["rope_theta"]},
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": c["tie_embeddings"],
        "pad_token_id": tok.pad_id,
        "eos_token_id": tok.eos_id,
        "bos_token_id": None,
        "torch_dtype": "float32",
    }
    if c["pos_encoding"] != "rope":
        config.update({
            "architectures": ["SelfEvolveForCausalLM"],
            "model_type": "selfevolve",
            "auto_map": {"AutoConfig": "modeling_selfevolve.SelfEvolveConfig",
                         "AutoModelForCausalLM": "modeling_selfevolve.SelfEvolveForCausalLM"},
            "pos_encoding": c["pos_encoding"],
            "digit_pos_size": c["digit_pos_size"],
            "digit_token_ids": c["digit_token_ids"],
            "run_start_token_ids": c["run_start_token_ids"],
        })
    return config


def char_tokenizer_files(tok: CharTokenizer, out: Path) -> None:
    """Our character tokenizer as a `tokenizers` WordLevel model (one word per character, same ids,
    no spaces added on decoding), saved with save_pretrained."""
    from selfevolve.models.hf import require

    require("transformers")
    import transformers
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    word_level = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tok.tokens)}, unk_token=tok.tokens[0]))
    word_level.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # newlines too
    word_level.decoder = decoders.Fuse()
    transformers.PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token=tok.tokens[tok.pad_id],
                                         eos_token=tok.tokens[tok.eos_id]).save_pretrained(out)


def export_hf(ckpt: dict[str, Any], out: Path, overwrite: bool = False) -> Path:
    """A character-level checkpoint (as length-gen writes) as an HF directory, after checking its
    weights against its config; `overwrite` replaces only an earlier export."""
    check_replaceable(out, "export", overwrite, "--hf directory")
    model = model_from_checkpoint(ckpt)  # names, shapes and dtypes fit the config, or CheckpointError
    return export_model(model, CharTokenizer(), out, overwrite)


def export_run(store: RunStore, policy: Policy, out: Path, overwrite: bool = False) -> Path:
    """A run's latest checkpoint, loaded into `policy` (the run's model as its config builds it), with
    the policy's tokenizer."""
    store.load_last(policy.model)
    return export_model(policy.model, policy.tok, out, overwrite)


def export_model(model: Transformer, tok: Tokenizer, out: Path, overwrite: bool = False,
                 scorers: dict | None = None) -> Path:
    """Write config.json, model.safetensors, the tokenizer files (and the modeling file where needed);
    `scorers` ({name: RewardModel}) go beside it in out/<name> as LlamaForSequenceClassification."""
    out = Path(out)
    check_replaceable(out, "export", overwrite, "--hf directory")
    with build_beside(out) as tmp:
        _write(_merged(model), tok, tmp)
        for name, rm in (scorers or {}).items():
            (tmp / name).mkdir()
            _write(_merged(rm.body), tok, tmp / name, score=rm.head.weight)
    return out


def _merged(model: Transformer) -> Transformer:
    """The model with any LoRA adapters folded into its weights (a copy; the model is left as it is)."""
    if all(p.requires_grad for p in model.parameters()):
        return model
    from selfevolve.models.lora import merge_lora

    return merge_lora(copy.deepcopy(model))


def _write(model: Transformer, tok: Tokenizer, tmp: Path, score: torch.Tensor | None = None) -> None:
    config = hf_config(model.cfg.to_dict(), tok)
    tensors = {(k if k.startswith("lm_head") else f"model.{k}"): v.detach().contiguous()
               for k, v in checkpoint_tensors(model).items()}
    if score is not None:  # a reward model: the body and a one-label head instead of lm_head
        if config["model_type"] != "llama":
            raise CheckpointError("reward models export as LlamaForSequenceClassification, which has RoPE positions "
                                  f"only; this one has {model.cfg.pos_encoding}")
        tensors = {k: v for k, v in tensors.items() if not k.startswith("lm_head")}
        tensors["score.weight"] = score.detach().contiguous()
        config.update(architectures=["LlamaForSequenceClassification"], num_labels=1, id2label={"0": "LABEL_0"},
                      label2id={"LABEL_0": 0}, tie_word_embeddings=False)
    save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
    atomic_json(tmp / "config.json", config)
    atomic_json(tmp / "generation_config.json", {"eos_token_id": config["eos_token_id"],
                                                  "pad_token_id": config["pad_token_id"]})
    if config["model_type"] == "selfevolve":
        shutil.copyfile(MODELING_FILE, tmp / "modeling_selfevolve.py")
    if isinstance(tok, CharTokenizer):
        char_tokenizer_files(tok, tmp)
    else:
        tok.hf.save_pretrained(tmp)
    (tmp / "README.md").write_text("Exported by selfevolve: load with transformers' AutoTokenizer and "
                                   "AutoModelForCausalLM from this directory.\n")
    write_marker(tmp, "export")
