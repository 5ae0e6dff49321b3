"""Contrast-agnostic pictures and synthetic lesions (SynthSeg-style, in 2-D slice stacks).

``synthesize`` paints a stack of tissue-label slices with a random intensity per tissue class,
then applies a random smooth bias field, blur, noise, gamma and resolution loss, so that the
model sees T1, T2, PD, FLAIR and CT-like contrasts of the same anatomy. ``augment`` applies the
same corruptions to a real picture. ``make_lesion`` draws a 3-D blob with an irregular border;
``paint_lesion`` inserts it with a chosen contrast and texture. All take a numpy Generator.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
from scipy import ndimage

from demo.anatomy import TISSUES, T


def _smooth_field(rng: np.random.Generator, shape: Tuple[int, ...], coarse: int) -> np.ndarray:
    """A smooth random field in [-1, 1]: coarse noise upsampled with cubic splines."""
    small = rng.uniform(-1, 1, size=tuple(max(2, coarse) for _ in shape))
    zoom = [s / c for s, c in zip(shape, small.shape)]
    return ndimage.zoom(small, zoom, order=3, mode="nearest")[tuple(slice(0, s) for s in shape)]


def synthesize(labels: np.ndarray, rng: np.random.Generator, ct_like: bool = False) -> np.ndarray:
    """Pictures [n, rows, cols] float in 0..255 from tissue labels of the same shape (a stack of
    adjacent slices shares one contrast draw and one bias field)."""
    n_classes = len(TISSUES)
    means = rng.uniform(0, 255, n_classes)
    stds = rng.uniform(0, 18, n_classes)
    means[T["background"]] = rng.uniform(0, 25)
    means[T["air"]] = rng.uniform(0, 30)
    if ct_like:  # CT-like ordering: bone brightest, brain mid, CSF darker
        means[T["skull"]] = rng.uniform(220, 255)
        means[T["bone marrow"]] = means[T["skull"]]
        means[T["cortex"]] = rng.uniform(90, 170)
        means[T["white matter"]] = means[T["cortex"]] - rng.uniform(0, 25)
        means[T["csf"]] = means[T["ventricles"]] = rng.uniform(20, means[T["cortex"]] - 30)
    img = means[labels] + stds[labels] * rng.standard_normal(labels.shape)
    img = ndimage.gaussian_filter(img, sigma=(0, *(rng.uniform(0, 1.2, 2))))
    return _corrupt(img, rng, labels.shape)


def augment(pictures: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, bias field, blur and noise on real pictures [n, rows, cols] (0..255)."""
    img = pictures.astype(np.float32)
    if rng.random() < 0.3:  # inverted contrast (T1 -> T2-like) on the foreground
        fg = img > 8
        img = np.where(fg, 255.0 - img, img)
    img = img * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
    return _corrupt(img, rng, img.shape, strength=0.6)


def _corrupt(img: np.ndarray, rng: np.random.Generator, shape: Tuple[int, ...],
             strength: float = 1.0) -> np.ndarray:
    bias = np.exp(strength * rng.uniform(0, 0.5) * _smooth_field(rng, shape[1:], 4))
    img = img * bias[None]
    if rng.random() < 0.3:  # lower in-plane resolution, then back
        f = rng.uniform(1.5, 3.0)
        small = ndimage.zoom(img, (1, 1 / f, 1 / f), order=1)
        img = ndimage.zoom(small, [a / b for a, b in zip(img.shape, small.shape)], order=1)
        img = img[:, :shape[1], :shape[2]]
        if img.shape[1:] != shape[1:]:
            img = np.pad(img, [(0, 0), (0, shape[1] - img.shape[1]), (0, shape[2] - img.shape[2])],
                         mode="edge")
    img = img + rng.uniform(0, 8) * strength * rng.standard_normal(img.shape)
    img = np.clip(img, 0, None)
    peak = max(float(np.percentile(img, 99.5)), 1.0)
    gamma = np.exp(rng.uniform(-0.3, 0.3) * strength)
    return np.clip(255.0 * (img / peak) ** gamma, 0, 255)


@dataclasses.dataclass
class Lesion:
    """A blob in a local box: ``mask`` bool [a, b, c] whose corner sits at ``corner`` (i, j, k)
    of the volume; ``texture`` float in [-1, 1] of the same shape."""

    mask: np.ndarray
    corner: Tuple[int, int, int]
    texture: np.ndarray
    bright: bool


def make_lesion(rng: np.random.Generator, centre: Tuple[int, int, int],
                spacing: Tuple[float, float, float], allowed: np.ndarray,
                bright_rate: float = 0.5) -> Lesion:
    """An irregular ellipsoid 10 to 40 mm across around ``centre`` (voxel), kept inside
    ``allowed`` (bool volume), bright (hyperintense, hyperdense) with ``bright_rate``."""
    radii_mm = rng.uniform(5, 20, 3)
    radii = np.maximum(radii_mm / np.asarray(spacing), 1.5)
    half = np.ceil(radii * 1.4).astype(int) + 1
    lo = np.maximum(np.asarray(centre) - half, 0)
    hi = np.minimum(np.asarray(centre) + half + 1, allowed.shape)
    grid = np.indices(tuple(hi - lo)).astype(np.float32)
    d = np.zeros(grid.shape[1:], np.float32)
    for a in range(3):
        d += ((grid[a] + lo[a] - centre[a]) / radii[a]) ** 2
    wobble = 0.35 * _smooth_field(rng, d.shape, 3)
    mask = (np.sqrt(d) + wobble < 1.0) & allowed[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    texture = _smooth_field(rng, d.shape, 5)
    return Lesion(mask, (int(lo[0]), int(lo[1]), int(lo[2])), texture, bool(rng.random() < bright_rate))


def paint_lesion(volume: np.ndarray, lesion: Lesion, rng: np.random.Generator,
                 modality: str, reference: Tuple[float, float] | None = None) -> None:
    """Insert ``lesion`` into ``volume`` in place. CT densities are set to 55-90 HU (hyperdense)
    or 2-18 HU (hypodense). MR (and synthetic) intensities are set against the parenchyma's
    ``reference`` levels (low, high: its 10th and 90th percentiles), x1.2-1.6 the high level
    (hyperintense) or x0.3-0.6 the low one (hypointense), never less bright (or dark) than the
    tissue they replace: a lesion scaled from the tissue under it was invisible where it fell
    on dark CSF."""
    i, j, k = lesion.corner
    a, b, c = lesion.mask.shape
    box = volume[i:i + a, j:j + b, k:k + c]
    soft = ndimage.gaussian_filter(lesion.mask.astype(np.float32), 0.8)
    tex = 1.0 + 0.15 * lesion.texture
    if modality == "CT":
        level = rng.uniform(55, 90) if lesion.bright else rng.uniform(2, 18)
        target = level * tex + rng.normal(0, 4, box.shape)
    else:
        if reference is None:
            raise ValueError("paint_lesion: MR lesions need the parenchyma's reference levels")
        low, high = reference
        if lesion.bright:
            target = np.maximum(box, high * rng.uniform(1.2, 1.6)) * tex
        else:
            target = np.minimum(box, low * rng.uniform(0.3, 0.6)) * tex
    box[...] = box * (1 - soft) + target * soft


def parenchyma_levels(values: np.ndarray) -> Tuple[float, float]:
    """(10th, 90th) percentile of the parenchyma's values (``values``: the pixels where lesions
    may be placed), the reference of MR lesion contrast."""
    if values.size == 0:
        return 1.0, 1.0
    lo, hi = np.percentile(values, (10, 90))
    return max(float(lo), 1.0), max(float(hi), 1.0)


def _placed(shape: Tuple[int, int, int], lesion: Lesion, values: np.ndarray) -> np.ndarray:
    """``values`` (shaped as the lesion's box) at the lesion's corner of a zero volume."""
    out = np.zeros(shape, values.dtype)
    i, j, k = lesion.corner
    a, b, c = values.shape
    out[i:i + a, j:j + b, k:k + c] = values
    return out


def lesion_volume_mask(shape: Tuple[int, int, int], lesion: Lesion) -> np.ndarray:
    return _placed(shape, lesion, lesion.mask)


def lesion_volume_texture(shape: Tuple[int, int, int], lesion: Lesion) -> np.ndarray:
    return _placed(shape, lesion, lesion.texture.astype(np.float32))
