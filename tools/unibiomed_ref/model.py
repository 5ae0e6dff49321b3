"""The whole UniBiomed model as one module tree whose state_dict keys are the checkpoint's names.

    vision_model.*                    InternViT            (vision.py)
    mlp1.{0,1,3}.*                    projector            (vision.py)
    language_model.model.*            Qwen2 decoder        (language.py)
    language_model.lm_head.weight
    text_hidden_fcs.{0,2}.*           grounding projector  (grounding.py)
    grounding_encoder.sam2_model.*    SAM2                 (sam2/)

:meth:`UniBiomedModel.export_parts` gives the six export wrappers (docs/bundle-format.md); the
pipeline runs on them in eager mode exactly as on their TorchScript exports.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from unibiomed_ref.config import ModelConfig
from unibiomed_ref.grounding import GroundingProjector, build_text_hidden_fcs
from unibiomed_ref.language import LanguageDecoder, Qwen2ForCausalLM
from unibiomed_ref.pipeline import ModelParts
from unibiomed_ref.sam2.export_image import SamImageEncoder, SamMaskDecoder
from unibiomed_ref.sam2.export_memory import SamTracker
from unibiomed_ref.sam2.model import Sam2Model
from unibiomed_ref.vision import InternVisionModel, VisionEncoder, build_mlp1


class GroundingEncoder(nn.Module):
    """Holds SAM2 under the name the release uses (``grounding_encoder.sam2_model``)."""

    def __init__(self, sam2_model: Sam2Model) -> None:
        super().__init__()
        self.sam2_model = sam2_model


class UniBiomedModel(nn.Module):
    """All parameters of the model, named as in the released checkpoint."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.vision_model = InternVisionModel(config.vision)
        self.mlp1 = build_mlp1(config.vision)
        self.language_model = Qwen2ForCausalLM(config.language)
        self.text_hidden_fcs = build_text_hidden_fcs(config.grounding)
        self.grounding_encoder = GroundingEncoder(Sam2Model(config.sam))

    def export_parts(self) -> Dict[str, nn.Module]:
        """The export wrappers, keyed as in the bundle manifest (they share this model's weights)."""
        sam = self.grounding_encoder.sam2_model
        return {
            "vision_encoder": VisionEncoder(self.vision_model, self.mlp1, self.config.vision),
            "language_decoder": LanguageDecoder(self.language_model),
            "grounding_projector": GroundingProjector(self.text_hidden_fcs),
            "sam_image_encoder": SamImageEncoder(sam),
            "sam_mask_decoder": SamMaskDecoder(sam),
            "sam_tracker": SamTracker(sam),
        }

    def parts(self) -> ModelParts:
        """The wrappers as the pipeline's :class:`ModelParts` (eager reference)."""
        return model_parts(self.export_parts())


def model_parts(parts: Dict[str, nn.Module]) -> ModelParts:
    return ModelParts(vision=parts["vision_encoder"], language=parts["language_decoder"],
                      grounding=parts["grounding_projector"], sam_image=parts["sam_image_encoder"],
                      sam_decoder=parts["sam_mask_decoder"], sam_tracker=parts["sam_tracker"])


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(config: ModelConfig, seed: int) -> UniBiomedModel:
    """A model with the constructors' default random initialisation, drawn from ``seed``."""
    torch.manual_seed(seed)
    return UniBiomedModel(config).eval()
