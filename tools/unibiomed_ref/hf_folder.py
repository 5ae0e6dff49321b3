"""Synthetic checkpoint folders in the released Hugging Face layout, to test conversion.

A released UniBiomed folder holds ``config.json`` (InternVL/Sa2VA style: ``vision_config``,
``llm_config``, ``downsample_ratio``, ``template`` ...), the weights as ``model.safetensors`` or
shards with ``model.safetensors.index.json``, and the tokenizer files. The real one cannot be
downloaded here, so conversion is tested on folders of the same format made by this module:
at full size from the layout table (random bf16 weights), or from a reference model's own
weights (to check that conversion reproduces them exactly).

``sam2_config`` in ``config.json`` is this project's optional extension for SAM2 sizes other
than Hiera-L (the release hard-codes Hiera-L); real checkpoints do not have it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

import torch

from unibiomed_ref import safetensors as st
from unibiomed_ref.checkpoint import module_to_checkpoint_name, write_synthetic_checkpoint
from unibiomed_ref.config import ModelConfig
from unibiomed_ref.layout import LAYOUT_TSV, read_tsv


def hf_config(config: ModelConfig, with_sam: bool = False) -> Dict[str, Any]:
    """``config.json`` content for a model of ``config`` (the keys InternVL/Sa2VA write)."""
    v, l = config.vision, config.language
    out: Dict[str, Any] = {
        "architectures": ["Sa2VAChatModel"],
        "model_type": "sa2va_chat",
        "template": "phi3_chat",
        "downsample_ratio": v.downsample_ratio,
        "ps_version": v.ps_version,
        "select_layer": v.select_layer,
        "force_image_size": v.image_size,
        "vision_config": {
            "architectures": ["InternVisionModel"], "image_size": v.image_size,
            "patch_size": v.patch_size, "hidden_size": v.hidden_size,
            "num_hidden_layers": v.num_hidden_layers,
            "num_attention_heads": v.num_attention_heads,
            "intermediate_size": v.intermediate_size, "qkv_bias": v.qkv_bias,
            "qk_normalization": v.qk_normalization, "norm_type": v.norm_type,
            "layer_norm_eps": v.layer_norm_eps, "hidden_act": "gelu"},
        "llm_config": {
            "architectures": ["Qwen2ForCausalLM"], "vocab_size": l.vocab_size,
            "hidden_size": l.hidden_size, "num_hidden_layers": l.num_hidden_layers,
            "num_attention_heads": l.num_attention_heads,
            "num_key_value_heads": l.num_key_value_heads, "intermediate_size": l.intermediate_size,
            "rope_theta": l.rope_theta, "rms_norm_eps": l.rms_norm_eps,
            "max_position_embeddings": l.max_position_embeddings, "tie_word_embeddings": False,
            "hidden_act": "silu"},
    }
    if with_sam:
        out["sam2_config"] = dataclasses.asdict(config.sam)
    return out


def write_folder(folder: str, config: ModelConfig, tokenizer_json: str,
                 model: Optional[torch.nn.Module] = None, seed: int = 0,
                 max_shard_bytes: Optional[int] = 1 << 30) -> None:
    """Write ``config.json``, ``tokenizer.json`` and the weights into ``folder``.

    With ``model``, its state_dict is written under the checkpoint's names (bf16 and sharded as
    asked); without, random bf16 weights of the layout table (the real sizes).
    """
    os.makedirs(folder, exist_ok=True)
    full = model is None
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(config, with_sam=not full), f, indent=2)
    with open(tokenizer_json, encoding="utf-8") as f:
        tok = f.read()
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok)
    if full:
        write_synthetic_checkpoint(read_tsv(LAYOUT_TSV), folder, seed,
                                   max_shard_bytes=max_shard_bytes)
        return
    tensors = {module_to_checkpoint_name(k): v.detach().to(torch.bfloat16).contiguous()
               for k, v in model.state_dict().items()}
    sizes = {k: t.numel() * t.element_size() for k, t in tensors.items()}
    if max_shard_bytes is None or sum(sizes.values()) <= max_shard_bytes:
        st.save_file(tensors, os.path.join(folder, st.SINGLE_NAME), {"format": "pt"})
        return
    weight_map = {}
    groups = st.plan_shards(sizes, max_shard_bytes)
    for i, names in enumerate(groups):
        name = st.shard_file_name(i, len(groups))
        st.save_file({k: tensors[k] for k in names}, os.path.join(folder, name), {"format": "pt"})
        weight_map.update({k: name for k in names})
    st.write_index(folder, weight_map, sum(sizes.values()))
