"""Export a checkpoint as a Hugging Face model directory.

A RoPE model is a plain `LlamaForCausalLM` (same weight names, same math). Other position
encodings get `modeling_selfevolve.py` saved alongside, loaded with `trust_remote_code=True`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from selfevolve.models.tokenizer import CharTokenizer
from selfevolve.store import atomic_json, build_beside, check_replaceable, model_from_checkpoint, write_marker

MODELING_FILE = Path(__file__).with_name("hf_modeling.py")


def hf_config(model_config: dict[str, Any]) -> dict[str, Any]:
    tok = CharTokenizer()
    c = model_config
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
        "selfevolve_alphabet": tok.alphabet,
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


def export_hf(ckpt: dict[str, Any], out: Path, overwrite: bool = False) -> Path:
    """Write config.json, model.safetensors (and the modeling file where needed) to `out`, after
    checking the checkpoint's weights against its config; `overwrite` replaces only an earlier export."""
    out = Path(out)
    check_replaceable(out, "export", overwrite, "--hf directory")
    model_from_checkpoint(ckpt)  # names, shapes and dtypes fit the config, or CheckpointError
    with build_beside(out) as tmp:
        _write(ckpt, tmp)
    return out


def _write(ckpt: dict[str, Any], tmp: Path) -> None:
    config = hf_config(ckpt["model_config"])
    tensors = {(k if k.startswith("lm_head") else f"model.{k}"): v.contiguous() for k, v in ckpt["tensors"].items()}
    save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
    atomic_json(tmp / "config.json", config)
    atomic_json(tmp / "generation_config.json", {"eos_token_id": config["eos_token_id"],
                                                  "pad_token_id": config["pad_token_id"]})
    if config["model_type"] == "selfevolve":
        shutil.copyfile(MODELING_FILE, tmp / "modeling_selfevolve.py")
    (tmp / "README.md").write_text(
        "Exported by selfevolve. Character tokenizer: id 0 pad, 1 end of sequence, then the characters of "
        f"{json.dumps(config['selfevolve_alphabet'])} in order.\n")
    write_marker(tmp, "export")
