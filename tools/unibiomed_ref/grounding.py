"""The grounding projector ``text_hidden_fcs``: [SEG] hidden state -> SAM2 language embedding.

As built by Sa2VA: ``nn.Sequential(Linear(H, H), ReLU, Linear(H, E), Dropout(0.0))`` with H the
LLM hidden size (896) and E the SAM2 prompt width (256). Checkpoint names::

    text_hidden_fcs.0.{weight,bias}   [H, H], [H]
    text_hidden_fcs.2.{weight,bias}   [E, H], [E]
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List

from torch import Tensor, nn


@dataclasses.dataclass(frozen=True)
class GroundingConfig:
    """Widths of ``text_hidden_fcs`` (real defaults)."""

    in_dim: int = 896  # LLM hidden size
    out_dim: int = 256  # SAM2 hidden dim (prompt-token width)


def build_text_hidden_fcs(config: GroundingConfig) -> nn.Sequential:
    """``text_hidden_fcs``: Linear(in, in) -> ReLU -> Linear(in, out) -> Dropout(0)."""
    return nn.Sequential(
        nn.Linear(config.in_dim, config.in_dim),
        nn.ReLU(),
        nn.Linear(config.in_dim, config.out_dim),
        nn.Dropout(0.0),
    )


class GroundingProjector(nn.Module):
    """Scriptable wrapper: hidden [N, H] (or [..., H]) -> language embedding [N, E].

    Holds a reference to ``text_hidden_fcs``, so its state_dict keys are ``text_hidden_fcs.*``.
    """

    def __init__(self, text_hidden_fcs: nn.Sequential) -> None:
        super().__init__()
        self.text_hidden_fcs = text_hidden_fcs

    def forward(self, hidden: Tensor) -> Tensor:
        return self.text_hidden_fcs(hidden)


def checkpoint_shapes(config: GroundingConfig) -> Dict[str, List[int]]:
    """Expected checkpoint names -> shapes for ``text_hidden_fcs.*``."""
    h, e = config.in_dim, config.out_dim
    return {
        "text_hidden_fcs.0.weight": [h, h], "text_hidden_fcs.0.bias": [h],
        "text_hidden_fcs.2.weight": [e, h], "text_hidden_fcs.2.bias": [e],
    }
