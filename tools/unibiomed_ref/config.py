"""One config for the whole model: the parts' configs composed, with the real and tiny presets.

``full_config()`` is the released UniBiomed model's architecture (InternViT-300M, Qwen2.5-0.5B,
SAM2 Hiera-L); ``tiny_config()`` is the same architecture at toy sizes, for the committed test
bundle; ``from_hf_config()`` reads a released checkpoint folder's ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

from unibiomed_ref.grounding import GroundingConfig
from unibiomed_ref.language import Qwen2Config
from unibiomed_ref.sam2.config import Sam2Config
from unibiomed_ref.vision import InternVitConfig


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The architecture of every part. ``grounding.out_dim`` must equal SAM2's hidden size."""

    vision: InternVitConfig
    language: Qwen2Config
    grounding: GroundingConfig
    sam: Sam2Config

    def validate(self) -> None:
        if self.vision.llm_hidden_size != self.language.hidden_size:
            raise ValueError(f"vision projector width {self.vision.llm_hidden_size} != language "
                             f"hidden size {self.language.hidden_size}")
        if self.grounding.in_dim != self.language.hidden_size:
            raise ValueError(f"grounding input {self.grounding.in_dim} != language hidden size "
                             f"{self.language.hidden_size}")
        if self.grounding.out_dim != self.sam.hidden_dim:
            raise ValueError(f"grounding output {self.grounding.out_dim} != SAM2 prompt width "
                             f"{self.sam.hidden_dim}")
        self.sam.validate()

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "ModelConfig":
        def make(cls, values: Dict[str, Any]):
            fields = {f.name: f for f in dataclasses.fields(cls)}
            unknown = sorted(set(values) - set(fields))
            if unknown:
                raise ValueError(f"{cls.__name__}: unknown fields {', '.join(unknown)}")
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

        return ModelConfig(make(InternVitConfig, d["vision"]), make(Qwen2Config, d["language"]),
                           make(GroundingConfig, d["grounding"]), make(Sam2Config, d["sam"]))


def full_config(vocab_size: Optional[int] = 151679) -> ModelConfig:
    """The released model's sizes. 151679 rows: InternVL2.5-1B's 151674 + the five tokens the
    release adds (tools/unibiomed_ref/data/README.md); a checkpoint's header decides."""
    language = Qwen2Config()
    if vocab_size is not None:
        language = dataclasses.replace(language, vocab_size=vocab_size)
    return ModelConfig(InternVitConfig(), language, GroundingConfig(), Sam2Config())


def tiny_config(vocab_size: int = 512) -> ModelConfig:
    """Toy sizes of the same architecture: 224 tiles of 64 tokens, SAM2 at 256 pixels.

    Tiles keep the patch size 14 (16 x 16 patches -> 64 tokens after the pixel shuffle); SAM2
    keeps every Hiera/FPN constraint (4 stages, q-pooling, windows, global blocks).
    """
    vision = dataclasses.replace(
        InternVitConfig(), image_size=224, patch_size=14, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, llm_hidden_size=64)
    language = dataclasses.replace(
        Qwen2Config(), vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
        rope_theta=10000.0, max_position_embeddings=4096)
    sam = dataclasses.replace(
        Sam2Config(), image_size=256, trunk_embed_dim=8, trunk_num_heads=1,
        trunk_stages=(1, 2, 2, 1), trunk_global_att_blocks=(4,), trunk_window_spec=(8, 4, 8, 4),
        trunk_window_pos_embed_bkg_spatial_size=(5, 5), neck_d_model=32,
        neck_backbone_channel_list=(64, 32, 16, 8), neck_pos_num_pos_feats=32,
        memory_attention_d_model=32, memory_attention_dim_feedforward=64,
        memory_attention_cross_kv_in_dim=16, memory_attention_num_layers=2,
        memory_attention_rope_feat_sizes=(16, 16), memory_encoder_in_dim=32,
        memory_encoder_out_dim=16, memory_encoder_pos_num_pos_feats=16,
        memory_encoder_downsampler_embed_dim=32, memory_encoder_cx_dim=32,
        decoder_transformer_mlp_dim=64, decoder_transformer_num_heads=2,
        decoder_iou_head_hidden_dim=32)
    grounding = GroundingConfig(in_dim=64, out_dim=32)
    config = ModelConfig(vision, language, grounding, sam)
    config.validate()
    return config


def demo_config(vocab_size: int = 3000) -> ModelConfig:
    """The shipped demonstration model (tools/make_demo_model.py): small enough to train on
    two CPU cores in about two hours and to commit (~12 M parameters, bf16), large enough to
    segment: 224 tiles of 64 tokens, a 4-layer Qwen2 decoder of width 384, SAM2 at 384 pixels
    (96 x 96 mask logits)."""
    vision = dataclasses.replace(
        InternVitConfig(), image_size=224, patch_size=14, hidden_size=192, num_hidden_layers=4,
        num_attention_heads=3, intermediate_size=768, llm_hidden_size=384)
    language = dataclasses.replace(
        Qwen2Config(), vocab_size=vocab_size, hidden_size=384, num_hidden_layers=4,
        num_attention_heads=6, num_key_value_heads=2, head_dim=64, intermediate_size=768,
        rope_theta=10000.0, max_position_embeddings=4096)
    sam = dataclasses.replace(
        Sam2Config(), image_size=384, trunk_embed_dim=16, trunk_num_heads=1,
        trunk_stages=(1, 2, 4, 1), trunk_global_att_blocks=(5,), trunk_window_spec=(8, 4, 8, 4),
        trunk_window_pos_embed_bkg_spatial_size=(6, 6), neck_d_model=128,
        neck_backbone_channel_list=(128, 64, 32, 16), neck_pos_num_pos_feats=128,
        memory_attention_d_model=128, memory_attention_dim_feedforward=512,
        memory_attention_cross_kv_in_dim=32, memory_attention_num_layers=2,
        memory_attention_rope_feat_sizes=(24, 24), memory_encoder_in_dim=128,
        memory_encoder_out_dim=32, memory_encoder_pos_num_pos_feats=32,
        memory_encoder_downsampler_embed_dim=128, memory_encoder_cx_dim=128,
        decoder_transformer_mlp_dim=512, decoder_transformer_num_heads=4,
        decoder_iou_head_hidden_dim=128)
    grounding = GroundingConfig(in_dim=384, out_dim=128)
    config = ModelConfig(vision, language, grounding, sam)
    config.validate()
    return config


def from_hf_config(folder: str) -> ModelConfig:
    """Architecture of a released checkpoint folder from its ``config.json``.

    The vision and language sizes are read from ``vision_config`` and ``llm_config`` (as in
    InternVL/Sa2VA ``config.json``); SAM2 is not described there (the release hard-codes Hiera-L),
    so it takes :class:`Sam2Config`'s real defaults unless the file has this project's
    ``sam2_config`` extension (see hf_folder.py).
    """
    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    try:
        v = cfg["vision_config"]
        llm = cfg["llm_config"]
    except KeyError as err:
        raise ValueError(f"{path}: no {err.args[0]} (not an InternVL/Sa2VA style config)") from None
    vision = dataclasses.replace(
        InternVitConfig(),
        image_size=int(v.get("image_size", 448)), patch_size=int(v.get("patch_size", 14)),
        hidden_size=int(v["hidden_size"]), num_hidden_layers=int(v["num_hidden_layers"]),
        num_attention_heads=int(v["num_attention_heads"]),
        intermediate_size=int(v["intermediate_size"]), qkv_bias=bool(v.get("qkv_bias", True)),
        qk_normalization=bool(v.get("qk_normalization", False)),
        norm_type=str(v.get("norm_type", "layer_norm")),
        layer_norm_eps=float(v.get("layer_norm_eps", 1e-6)),
        select_layer=int(cfg.get("select_layer", -1)),
        downsample_ratio=float(cfg.get("downsample_ratio", 0.5)),
        ps_version=str(cfg.get("ps_version", "v2")), llm_hidden_size=int(llm["hidden_size"]))
    heads = int(llm["num_attention_heads"])
    language = dataclasses.replace(
        Qwen2Config(), vocab_size=int(llm["vocab_size"]), hidden_size=int(llm["hidden_size"]),
        num_hidden_layers=int(llm["num_hidden_layers"]), num_attention_heads=heads,
        num_key_value_heads=int(llm.get("num_key_value_heads", heads)),
        head_dim=int(llm.get("head_dim", int(llm["hidden_size"]) // heads)),
        intermediate_size=int(llm["intermediate_size"]),
        rope_theta=float(llm.get("rope_theta", 1e6)),
        rms_norm_eps=float(llm.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(llm.get("max_position_embeddings", 32768)))
    arch = llm.get("architectures", ["Qwen2ForCausalLM"])
    if arch and "Qwen2" not in arch[0]:
        raise ValueError(f"{path}: language model {arch[0]} is not supported yet (Qwen2 only)")
    sam = Sam2Config()
    if "sam2_config" in cfg:  # this project's extension (hf_folder.py); releases use Hiera-L
        sam = ModelConfig.from_dict({"vision": {}, "language": {}, "grounding": {},
                                     "sam": cfg["sam2_config"]}).sam
    config = ModelConfig(vision, language,
                         GroundingConfig(in_dim=language.hidden_size, out_dim=sam.hidden_dim), sam)
    config.validate()
    return config
