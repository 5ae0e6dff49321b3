"""What the engine shows the model: radiological slices of a RAS volume, and the display map.

``unibiomed interpret`` brings a volume to the canonical orientation and slices it
(docs/volumes.md): axial slices have columns R->L and rows A->P, slice index I->S; coronal
columns R->L, rows S->I, slices A->P; sagittal columns A->P, rows S->I, slices R->L. Grey
values are mapped to 0..255 like the engine's display rule: a CT window in HU, or the 0.5 to
99.5 percentile of the voxels > 0 for MR. The training data is made with these functions so
that the model sees the same pictures at training and at inference time.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

AXES = ("axial", "coronal", "sagittal")
CT_WINDOWS = {"brain": (0.0, 80.0), "subdural": (-20.0, 180.0), "bone": (-450.0, 1050.0),
              "soft tissue": (-160.0, 240.0)}


def num_slices(shape: Tuple[int, int, int], axis: str) -> int:
    return {"axial": shape[2], "coronal": shape[1], "sagittal": shape[0]}[axis]


def take(volume: np.ndarray, axis: str, s: int) -> np.ndarray:
    """Slice ``s`` (in the engine's slice order) of a RAS [i, j, k] volume as a [rows, cols]
    picture in radiological orientation."""
    if axis == "axial":  # columns R->L (i reversed), rows A->P (j reversed)
        return volume[::-1, ::-1, s].T
    if axis == "coronal":  # slice A->P: j reversed; columns R->L, rows S->I
        return volume[::-1, volume.shape[1] - 1 - s, ::-1].T
    if axis == "sagittal":  # slice R->L: i reversed; columns A->P, rows S->I
        return volume[volume.shape[0] - 1 - s, ::-1, ::-1].T
    raise ValueError(f"unknown axis {axis!r} (accepted: {', '.join(AXES)})")


def pixel_spacing(spacing: Tuple[float, float, float], axis: str) -> Tuple[float, float]:
    """(row, column) spacing in mm of a slice along ``axis``."""
    sx, sy, sz = spacing
    return {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}[axis]


def mr_range(volume: np.ndarray) -> Tuple[float, float]:
    """The engine's MR display range: 0.5 and 99.5 percentiles of the voxels > 0."""
    v = volume[volume > 0]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [0.5, 99.5])
    return float(lo), float(max(hi, lo + 1e-6))


def to_uint8(picture: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of [lo, hi] to 0..255, clipped and rounded."""
    out = (picture.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
