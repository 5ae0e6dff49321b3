#!/usr/bin/python3
"""Reference image preprocessing for the unibiomed C++ engine.

This module is the *specification* the C++ preprocessing code must match
bit-for-bit (uint8 paths) or to float32 rounding (float paths).  It is never
used at run time; it exists to document the arithmetic and to generate the
golden files in ``tests/data/golden/`` (see ``make_goldens.py``).

It reproduces the preprocessing of the two UniBiomed branches:

* InternVL2.5 (the MLLM): dynamic high-resolution tiling
  (``closest_tile_grid`` / ``dynamic_tiles``), 448x448 tiles, PIL BICUBIC
  resizes, ImageNet mean/std normalisation (``normalize_imagenet``).
* SAM2 (the grounding encoder): direct (non aspect-preserving) PIL BICUBIC
  resize to 1024x1024 and the same ImageNet normalisation (``sam_input``).

and the intensity normalisation used to turn medical volumes into 8-bit
images (BiomedParse style): CT windowing (``ct_window``) and the
0.5/99.5-percentile normalisation for non-CT modalities
(``percentile_normalize``), followed by ``to_uint8`` (truncation).

Precision rules (these are part of the spec):

* ``ct_window`` and ``percentile_normalize`` compute in float64 (IEEE double)
  and cast the result to float32 at the very end.
* ``to_uint8`` clips to [0, 255] and truncates (floor), like numpy's
  ``astype(np.uint8)``; it is applied to the float32 values.
* ``normalize_imagenet`` / ``sam_input`` compute in float32, exactly like
  torchvision's ``ToTensor`` + ``Normalize`` and SAM2's ``preprocess``:
  ``(float32(u8) / 255 - mean_f32) / std_f32``.
* Resizes are Pillow's BICUBIC (a = -0.5, antialiased on downscale, two
  separable 8-bit passes, horizontal first).  ``pil_bicubic_resize`` is a
  readable pure-numpy port of Pillow's algorithm that is bit-exact with
  ``PIL.Image.resize(..., Image.BICUBIC)`` for 8-bit images; port that one to
  C++.

Only numpy and PIL are used.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------
# CT windowing
# --------------------------------------------------------------------------

#: CT window presets as (lower HU, upper HU).  The first six are
#: BiomedParse's CT_WINDOWS; brain/bone/soft are the classic W/L presets
#: (brain W80 L40, bone W1800 L400, soft tissue W400 L40).
CT_WINDOWS: Dict[str, Tuple[float, float]] = {
    "abdomen": (-150.0, 250.0),
    "lung": (-1000.0, 1000.0),
    "pelvis": (-55.0, 200.0),
    "liver": (-25.0, 230.0),
    "colon": (-68.0, 187.0),
    "pancreas": (-100.0, 200.0),
    "brain": (0.0, 80.0),
    "bone": (-500.0, 1300.0),
    "soft": (-160.0, 240.0),
}


def window_from_width_level(width: float, level: float) -> Tuple[float, float]:
    """Convert a window width/level pair to (lo, hi) = (L - W/2, L + W/2)."""
    if not (width > 0.0) or not math.isfinite(width) or not math.isfinite(level):
        raise ValueError(f"invalid window width/level: W={width!r} L={level!r}")
    return (level - width / 2.0, level + width / 2.0)


def parse_window(spec: str) -> Tuple[float, float]:
    """Parse a window specification into (lo, hi) in HU.

    ``spec`` is either a preset name from ``CT_WINDOWS`` (case-insensitive,
    surrounding blanks ignored) or a free ``"W,L"`` string: window *width*
    first, then *level* (centre), e.g. ``"400,40"`` -> (-160.0, 240.0).
    Blanks around the numbers are allowed.  Raises ``ValueError`` otherwise.
    """
    key = spec.strip().lower()
    if key in CT_WINDOWS:
        return CT_WINDOWS[key]
    parts = key.split(",")
    if len(parts) != 2:
        raise ValueError(f"window spec must be a preset name or 'W,L': {spec!r}")
    try:
        width = float(parts[0])
        level = float(parts[1])
    except ValueError as exc:
        raise ValueError(f"window spec must be a preset name or 'W,L': {spec!r}") from exc
    return window_from_width_level(width, level)


def ct_window(hu: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Window CT values: clip to [lo, hi] and map linearly onto [0, 255].

    Computed in float64 as ``(clip(v, lo, hi) - lo) / (hi - lo) * 255`` (in
    exactly that operation order), then cast to float32.  ``hi`` must be
    greater than ``lo``.

    Note: BiomedParse divides by ``max - min`` of the *clipped slice* instead
    of ``hi - lo``; the two agree whenever the data reaches both window edges
    (the usual case for CT containing air and bone).  This reference uses the
    fixed ``hi - lo``, which is independent of the image content.
    """
    if not hi > lo:
        raise ValueError(f"window upper bound must exceed lower bound: {lo!r}, {hi!r}")
    v = np.clip(np.asarray(hu, dtype=np.float64), lo, hi)
    return ((v - lo) / (hi - lo) * 255.0).astype(np.float32)


# --------------------------------------------------------------------------
# Percentile normalisation (non-CT modalities)
# --------------------------------------------------------------------------

def percentile_linear(sorted_values: np.ndarray, q: float) -> float:
    """numpy's default ('linear') percentile, written out step by step.

    ``sorted_values`` is a 1-D float64 array sorted ascending, ``q`` is a
    percentile in [0, 100].  This reproduces ``np.percentile(x, q)`` of numpy
    1.22+ (bit-exact, checked by the unit tests) so the C++ code can follow
    it literally::

        qq  = q / 100                      # double division
        vi  = (n - 1) * qq                 # virtual index, double
        if vi >= n - 1: return s[n-1]
        i   = floor(vi);  g = vi - i
        a   = s[i];  b = s[i+1];  d = b - a
        return (g >= 0.5) ? b - d * (1 - g) : a + d * g
    """
    s = np.asarray(sorted_values, dtype=np.float64)
    n = s.shape[0]
    if n == 0:
        raise ValueError("percentile of an empty array")
    qq = q / 100.0
    vi = (n - 1) * qq
    if vi >= n - 1:
        return float(s[n - 1])
    i = int(math.floor(vi))
    g = vi - i
    a = float(s[i])
    b = float(s[i + 1])
    d = b - a
    if g >= 0.5:
        return b - d * (1.0 - g)
    return a + d * g


def percentile_bounds(x: np.ndarray) -> Tuple[float, float] | None:
    """Return (lo, hi) = 0.5th and 99.5th percentiles of the voxels > 0.

    Computed in float64 with numpy's default linear interpolation.  Returns
    ``None`` when there is no voxel > 0.
    """
    v = np.asarray(x, dtype=np.float64)
    pos = v[v > 0]
    if pos.size == 0:
        return None
    return (float(np.percentile(pos, 0.5)), float(np.percentile(pos, 99.5)))


def percentile_normalize(x: np.ndarray) -> np.ndarray:
    """BiomedParse-style intensity normalisation for non-CT images.

    ``lo, hi = percentile(x[x > 0], 0.5), percentile(x[x > 0], 99.5)``;
    ``y = (clip(x, lo, hi) - lo) / (hi - lo) * 255`` in float64; then every
    voxel whose input was <= 0 is set to 0; cast to float32.

    (BiomedParse zeroes only ``x == 0``; negative inputs are clipped to
    ``lo`` and therefore map to 0 anyway, so ``== 0`` and ``<= 0`` agree.
    BiomedParse also divides by ``max - min`` of the clipped array, which
    equals ``hi - lo`` here because the data always reaches both bounds.)

    If there is no voxel > 0, or hi == lo, the result is all zeros.
    """
    v = np.asarray(x, dtype=np.float64)
    bounds = percentile_bounds(v)
    if bounds is None or bounds[1] == bounds[0]:
        return np.zeros(v.shape, dtype=np.float32)
    lo, hi = bounds
    y = (np.clip(v, lo, hi) - lo) / (hi - lo) * 255.0
    y[v <= 0] = 0.0
    return y.astype(np.float32)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Quantise to uint8: clip to [0, 255], then truncate (floor).

    Same as numpy's ``np.clip(x, 0, 255).astype(np.uint8)``; e.g. 127.5 ->
    127, 254.99998 -> 254, -3 -> 0, 300 -> 255.  NaN maps to 0.
    """
    v = np.asarray(x)
    v = np.where(np.isnan(v), 0, v)
    return np.floor(np.clip(v, 0, 255)).astype(np.uint8)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """Replicate an [H, W] uint8 array into an [H, W, 3] RGB array."""
    g = np.asarray(grey, dtype=np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


# --------------------------------------------------------------------------
# InternVL dynamic tiling
# --------------------------------------------------------------------------

def tile_candidates(min_num: int = 1, max_num: int = 12) -> List[Tuple[int, int]]:
    """Candidate (cols, rows) grids in InternVL's iteration order.

    InternVL builds ``set((i, j) for n in range(min_num, max_num + 1) for i in
    range(1, n + 1) for j in range(1, n + 1) if min_num <= i * j <= max_num)``
    and sorts it by ``i * j`` with Python's stable ``sorted``; grids with the
    same product keep the set's (hash-dependent) iteration order.  That
    within-product order never changes the chosen grid for any image up to
    4096x4096 with max_num 1..12 (checked exhaustively), so C++ may order
    equal products any way, e.g. lexicographically.
    """
    grids = set(
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    )
    return sorted(grids, key=lambda g: g[0] * g[1])


def closest_tile_grid(
    width: int, height: int, min_num: int = 1, max_num: int = 12, image_size: int = 448
) -> Tuple[int, int]:
    """Choose the (cols, rows) tile grid for an image, InternVL's rule.

    All arithmetic is IEEE double as in Python: ``aspect = width / height``,
    ``diff = abs(aspect - cols / rows)``.  Candidates are visited in
    ``tile_candidates`` order; a strictly smaller diff always wins; an
    *equal* diff wins only if ``width * height > 0.5 * image_size**2 * cols
    * rows`` (so larger images move to larger grids of the same or equally
    distant aspect).  Start: best = (1, 1), best diff = +inf.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive: {width}x{height}")
    aspect = width / height
    area = width * height
    best = (1, 1)
    best_diff = float("inf")
    for cols, rows in tile_candidates(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best_diff = diff
            best = (cols, rows)
        elif diff == best_diff:
            if area > 0.5 * image_size * image_size * cols * rows:
                best = (cols, rows)
    return best


def dynamic_tiles(
    img: Image.Image, max_num: int = 12, image_size: int = 448, use_thumbnail: bool = True
) -> List[Image.Image]:
    """Split an RGB image into InternVL tiles.

    The image is resized (PIL BICUBIC) to ``(image_size*cols,
    image_size*rows)``, cut into ``cols*rows`` tiles in row-major order
    (left to right, then top to bottom), and, when there is more than one
    tile and ``use_thumbnail`` is set, the whole image resized to
    ``image_size x image_size`` (BICUBIC, from the original) is appended.
    """
    cols, rows = closest_tile_grid(img.width, img.height, 1, max_num, image_size)
    resized = img.resize((image_size * cols, image_size * rows), Image.BICUBIC)
    tiles: List[Image.Image] = []
    for r in range(rows):
        for c in range(cols):
            box = (c * image_size, r * image_size, (c + 1) * image_size, (r + 1) * image_size)
            tiles.append(resized.crop(box))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(img.resize((image_size, image_size), Image.BICUBIC))
    return tiles


# --------------------------------------------------------------------------
# Normalisation to network input
# --------------------------------------------------------------------------

IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)


def normalize_imagenet(tile: Image.Image | np.ndarray) -> np.ndarray:
    """RGB uint8 image -> float32 [3, H, W]: ``(u8 / 255 - mean) / std``.

    Every operation is float32 (mean and std rounded to float32 first), in
    the order divide, subtract, divide -- like torchvision's ToTensor +
    Normalize and SAM2's ``preprocess_image``.
    """
    arr = np.asarray(tile.convert("RGB") if isinstance(tile, Image.Image) else tile)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError("expected an RGB uint8 image [H, W, 3]")
    x = arr.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32)


def sam_input(img: Image.Image, size: int = 1024) -> np.ndarray:
    """SAM2 input: direct BICUBIC resize to size x size (no padding, aspect
    not preserved), then ``normalize_imagenet``.  Returns float32 [3, size, size]."""
    return normalize_imagenet(img.convert("RGB").resize((size, size), Image.BICUBIC))


# --------------------------------------------------------------------------
# Pillow BICUBIC resize, ported (the algorithm the C++ code must implement)
# --------------------------------------------------------------------------

PIL_PRECISION_BITS = 32 - 8 - 2  # 22: fixed-point fraction bits of Pillow's 8-bit path


def _bicubic_kernel(x: float) -> float:
    """Pillow's cubic convolution kernel with a = -0.5 (support 2)."""
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def pil_resample_coeffs(in_size: int, out_size: int) -> Tuple[List[int], List[List[int]]]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for BICUBIC.

    Returns, per output position, the first input index ``xmin`` and the
    list of integer fixed-point weights (22 fraction bits) for input indices
    ``xmin, xmin+1, ...``.  All intermediate arithmetic is double, in this
    exact order::

        scale = in_size / out_size;  fs = max(scale, 1.0)
        support = 2.0 * fs
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)          # C truncation
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w[x] = kernel((x + xmin - center + 0.5) * (1.0 / fs)),  x < xmax
        ww = w[0] + w[1] + ... (left to right);  w[x] /= ww  (if ww != 0)
        k[x] = int(w[x] * 2**22 + 0.5) if w[x] >= 0 else int(w[x] * 2**22 - 0.5)
    """
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ss = 1.0 / filterscale
    starts: List[int] = []
    weights: List[List[int]] = []
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = int(center - support + 0.5)  # int() truncates toward zero like C
        if xmin < 0:
            xmin = 0
        xmax = int(center + support + 0.5)
        if xmax > in_size:
            xmax = in_size
        xmax -= xmin
        w = [_bicubic_kernel((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for value in w:
            ww += value
        if ww != 0.0:
            w = [value / ww for value in w]
        fixed = []
        for value in w:
            if value < 0:
                fixed.append(int(-0.5 + value * (1 << PIL_PRECISION_BITS)))
            else:
                fixed.append(int(0.5 + value * (1 << PIL_PRECISION_BITS)))
        starts.append(xmin)
        weights.append(fixed)
    return starts, weights


def _resample_axis0(arr: np.ndarray, out_size: int) -> np.ndarray:
    """One 8-bit Pillow pass along axis 0 of a uint8 array."""
    starts, weights = pil_resample_coeffs(arr.shape[0], out_size)
    src = arr.astype(np.int64)
    out = np.empty((out_size,) + arr.shape[1:], dtype=np.uint8)
    for i, (xmin, k) in enumerate(zip(starts, weights)):
        acc = np.full(arr.shape[1:], 1 << (PIL_PRECISION_BITS - 1), dtype=np.int64)
        for t, kt in enumerate(k):
            acc += src[xmin + t] * kt
        # clip8: arithmetic shift right (floor), then clamp to [0, 255]
        out[i] = np.clip(acc >> PIL_PRECISION_BITS, 0, 255).astype(np.uint8)
    return out


def pil_bicubic_resize(arr: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Bit-exact numpy port of ``Image.resize((out_w, out_h), Image.BICUBIC)``.

    ``arr`` is uint8 [H, W] or [H, W, C]; channels are independent.  Pillow
    first resamples horizontally (only if the width changes) into an 8-bit
    intermediate image, then vertically (only if the height changes).  Each
    output sample is ``clamp((2**21 + sum(pixel * k)) >> 22, 0, 255)`` with
    the integer weights of ``pil_resample_coeffs``.  (Pillow restricts the
    horizontal pass to the rows the vertical pass reads; that does not change
    any value.)
    """
    a = np.asarray(arr, dtype=np.uint8)
    h, w = a.shape[0], a.shape[1]
    if out_w != w:
        a = np.swapaxes(_resample_axis0(np.swapaxes(a, 0, 1), out_w), 0, 1)
    if out_h != h:
        a = _resample_axis0(a, out_h)
    return np.ascontiguousarray(a)


def pil_resize_array(arr: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Resize a uint8 [H, W] or [H, W, 3] array with PIL itself (BICUBIC)."""
    a = np.asarray(arr, dtype=np.uint8)
    return np.asarray(Image.fromarray(a).resize((out_w, out_h), Image.BICUBIC))


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _cmd_tiles(args: argparse.Namespace) -> int:
    img = Image.open(args.image).convert("RGB")
    cols, rows = closest_tile_grid(img.width, img.height, 1, args.max_num, args.image_size)
    tiles = dynamic_tiles(img, args.max_num, args.image_size, not args.no_thumbnail)
    print(f"image      {img.width}x{img.height} (aspect {img.width / img.height:.6f})")
    print(f"grid       {cols} cols x {rows} rows (max_num={args.max_num})")
    print(f"resized    {cols * args.image_size}x{rows * args.image_size}")
    print(f"thumbnail  {'yes' if len(tiles) > cols * rows else 'no'}")
    print(f"tiles      {len(tiles)}")
    if args.stats:
        for n, tile in enumerate(tiles):
            x = normalize_imagenet(tile)
            print(f"tile {n:2d}   mean {x.mean(axis=(1, 2))}  std {x.std(axis=(1, 2))}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    cols, rows = closest_tile_grid(args.width, args.height, 1, args.max_num, args.image_size)
    print(f"{cols}\t{rows}")
    return 0


def _cmd_window(args: argparse.Namespace) -> int:
    lo, hi = parse_window(args.spec)
    hu = np.asarray([float(v) for v in args.values], dtype=np.float64)
    y = ct_window(hu, lo, hi)
    print(f"window [{lo!r}, {hi!r}]")
    for v, f, u in zip(hu, y, to_uint8(y)):
        print(f"{v!r}\t{float(f)!r}\t{int(u)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tiles", help="show the InternVL tiling of an image file")
    p.add_argument("image")
    p.add_argument("--max-num", type=int, default=12)
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--no-thumbnail", action="store_true")
    p.add_argument("--stats", action="store_true", help="print per-tile normalised mean/std")
    p.set_defaults(func=_cmd_tiles)
    p = sub.add_parser("grid", help="print cols<TAB>rows for a width and height")
    p.add_argument("width", type=int)
    p.add_argument("height", type=int)
    p.add_argument("--max-num", type=int, default=12)
    p.add_argument("--image-size", type=int, default=448)
    p.set_defaults(func=_cmd_grid)
    p = sub.add_parser("window", help="window HU values with a preset or 'W,L' (put -- before negative values)")
    p.add_argument("spec")
    p.add_argument("values", nargs="+")
    p.set_defaults(func=_cmd_window)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
