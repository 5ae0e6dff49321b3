"""Inference settings: everything the pipeline needs besides the weights.

These are the numbers and strings the C++ engine must not hard-code; the bundle's manifest
carries them (see docs/bundle-format.md), and :func:`InferenceSettings.from_manifest` reads
them back so that the Python pipeline can run on a bundle exactly as the engine does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Sequence, Tuple

from unibiomed_ref.prompt import ChatSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class LanguageShape:
    """The decoder's sizes the host needs to allocate the KV cache and read the logits."""

    num_layers: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """Preprocessing, prompting, decoding and mask settings of one model."""

    chat: ChatSettings
    language: LanguageShape
    eos_token_ids: Tuple[int, ...]
    tile_size: int = 448
    min_tiles: int = 1
    max_tiles: int = 12
    use_thumbnail: bool = True
    tokens_per_tile: int = 256
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    sam_image_size: int = 1024
    sam_low_res_size: int = 256
    #: Threshold on the upsampled mask logits: sigmoid(x) > 0.5 is x > 0.
    mask_threshold: float = 0.0
    language_embed_dim: int = 256
    #: Video (volume) mode: the language model sees this many frames, one tile each.
    video_llm_frames: int = 5
    # The frames a [SEG] prompts in video mode by default: "seen" (as the release) or "every".
    video_prompt_frames: str = "seen"
    num_maskmem: int = 7
    max_obj_ptrs: int = 16

    def to_manifest(self) -> Dict[str, Any]:
        """The manifest tables this object fills (``chat``, ``tasks``, ``vision_input``, ...)."""
        chat = self.chat
        return {
            "chat": {
                "template": chat.template,
                "system": chat.system,
                "stop_words": list(chat.stop_words),
                "image_placeholder": chat.image_placeholder,
                "max_new_tokens": chat.max_new_tokens,
                "eos_token_ids": list(self.eos_token_ids),
            },
            "tasks": dict(chat.tasks),
            "vision_input": {
                "tile_size": self.tile_size,
                "min_tiles": self.min_tiles,
                "max_tiles": self.max_tiles,
                "use_thumbnail": self.use_thumbnail,
                "tokens_per_tile": self.tokens_per_tile,
                "resample": "bicubic",
                "mean": list(self.mean),
                "std": list(self.std),
            },
            "language": dataclasses.asdict(self.language),
            "sam": {
                "image_size": self.sam_image_size,
                "low_res_size": self.sam_low_res_size,
                "resample": "bicubic",
                "mean": list(self.mean),
                "std": list(self.std),
                "mask_threshold": self.mask_threshold,
                "language_embed_dim": self.language_embed_dim,
                "num_maskmem": self.num_maskmem,
                "max_obj_ptrs": self.max_obj_ptrs,
            },
            # prompt_frames only when not the release's "seen" (older manifests lack it)
            "video": {"llm_frames": self.video_llm_frames, "llm_frame_tiles": 1,
                      **({"prompt_frames": self.video_prompt_frames}
                         if self.video_prompt_frames != "seen" else {})},
        }

    @staticmethod
    def from_manifest(m: Dict[str, Any]) -> "InferenceSettings":
        chat = m["chat"]
        vision = m["vision_input"]
        sam = m["sam"]
        return InferenceSettings(
            chat=ChatSettings(
                template=chat["template"],
                system=chat["system"],
                stop_words=tuple(chat["stop_words"]),
                image_placeholder=chat["image_placeholder"],
                max_new_tokens=int(chat["max_new_tokens"]),
                tasks=tuple(m["tasks"].items()),
            ),
            language=LanguageShape(**m["language"]),
            eos_token_ids=tuple(int(i) for i in chat["eos_token_ids"]),
            tile_size=int(vision["tile_size"]),
            min_tiles=int(vision["min_tiles"]),
            max_tiles=int(vision["max_tiles"]),
            use_thumbnail=bool(vision["use_thumbnail"]),
            tokens_per_tile=int(vision["tokens_per_tile"]),
            mean=tuple(vision["mean"]),
            std=tuple(vision["std"]),
            sam_image_size=int(sam["image_size"]),
            sam_low_res_size=int(sam["low_res_size"]),
            mask_threshold=float(sam["mask_threshold"]),
            language_embed_dim=int(sam["language_embed_dim"]),
            video_llm_frames=int(m["video"]["llm_frames"]),
            video_prompt_frames=str(m["video"].get("prompt_frames", "seen")),
            num_maskmem=int(sam["num_maskmem"]),
            max_obj_ptrs=int(sam["max_obj_ptrs"]),
        )


def settings_for_config(config: Any, eos_ids: Sequence[int], **overrides: Any) -> InferenceSettings:
    """The release's settings for a model of ``config`` (a :class:`config.ModelConfig`): image
    sizes, tokens per tile and SAM2 sizes follow the architecture; ``overrides`` replace any
    other field (e.g. ``chat``, ``max_tiles``)."""
    lang = config.language
    values: Dict[str, Any] = dict(
        chat=ChatSettings(),
        language=LanguageShape(lang.num_hidden_layers, lang.num_key_value_heads, lang.head_dim,
                               lang.hidden_size, lang.vocab_size),
        eos_token_ids=tuple(eos_ids), tile_size=config.vision.image_size,
        tokens_per_tile=config.vision.tokens_per_tile, sam_image_size=config.sam.image_size,
        sam_low_res_size=config.sam.image_size // 4, language_embed_dim=config.sam.hidden_dim,
        num_maskmem=config.sam.num_maskmem, max_obj_ptrs=config.sam.max_obj_ptrs_in_encoder)
    values.update(overrides)
    return InferenceSettings(**values)
