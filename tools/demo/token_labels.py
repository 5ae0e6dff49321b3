"""Labels of the image tokens and patches for the training-only heads: the share of each cell of
a picture that a mask covers, and the lesion locations a report may name."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from demo.anatomy import REGION_NAMES
from demo.samples import Case

#: The lesion locations the token labels' location term tells apart: none, then each side of
#: each region a report may name (CT lesions are named by hemisphere).
LOCATIONS: Tuple[str, ...] = ("none",) + tuple(
    f"{side} {region}" for side in ("left", "right")
    for region in REGION_NAMES[1:] + ("cerebral hemisphere",))


def location_index(case: Case) -> int:
    """The index in LOCATIONS of a slice case's lesion location (0: no lesion)."""
    lesion = case.facts.get("lesion")
    if not lesion:
        return 0
    return LOCATIONS.index(f"{lesion['side']} {lesion['region']}")


def cell_shares(mask: np.ndarray, grid: int) -> torch.Tensor:
    """The share of each cell of a grid x grid division of ``mask`` that it covers, row-major."""
    cells = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None],
                          size=(grid, grid), mode="area")
    return cells.flatten()


def token_positions(grid: int) -> torch.Tensor:
    """Each token's place in a grid x grid tile, row-major: [grid * grid, 2] of (column, row),
    0 at the left and top edge, 1 at the right and bottom."""
    at = torch.arange(grid, dtype=torch.float32) / max(grid - 1, 1)
    rows, cols = torch.meshgrid(at, at, indexing="ij")
    return torch.stack([cols.flatten(), rows.flatten()], 1)
