#!/usr/bin/python3
"""Write the preprocessing golden files for the unibiomed C++ tests.

Usage (from the repository root)::

    /usr/bin/python3 tools/reference/make_goldens.py [--out tests/data/golden]

Everything is generated from fixed seeds and fixed lists with
``preprocess.py`` (numpy + PIL), so running it twice gives byte-identical
files; ``tools/tests/test_preprocess.py`` checks that the committed files
match a fresh run.  The file formats are documented in
``tests/data/golden/README.md`` (hand-written, not generated here).

Files written (and nothing else): see ``GENERATED_FILES`` after a run, or
``generate()``'s return value.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Iterable, List, Sequence, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import preprocess as P  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "data", "golden")

#: max_num values used for every size in the tiling table.
TILING_MAX_NUMS: Tuple[int, ...] = (1, 2, 4, 6, 12)


def fmt(x: float) -> str:
    """Format a float with 17 significant digits (round-trips any double)."""
    return format(float(x), ".17g")


def _write_tsv(path: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(c) for c in row) + "\n")


# --------------------------------------------------------------------------
# tiling_table.tsv
# --------------------------------------------------------------------------

#: Hand-picked sizes: named cases, area-rule thresholds for same-aspect
#: grids, extreme ratios and sizes whose aspect lies exactly half-way between
#: two grid ratios (found by an exhaustive search; the first size of each
#: kind of tie, both where the area rule keeps the smaller grid and where it
#: takes the larger one).
TILING_SIZES: List[Tuple[int, int]] = [
    # named
    (448, 448), (512, 512), (1024, 1024), (1000, 1), (1, 1000), (181, 217),
    (3480, 4240), (1411, 1411), (896, 448), (448, 896), (100, 700), (700, 100),
    (224, 224), (256, 256), (1344, 896), (896, 1344), (1920, 1080), (1080, 1920),
    (512, 400), (640, 480), (800, 600), (2048, 2048), (4096, 4096),
    # same aspect: the area rule moves 1x1 -> 2x2 -> 3x3 (thresholds
    # 0.5*448^2*4 = 401408 and 0.5*448^2*9 = 903168)
    (600, 600), (633, 633), (634, 634), (700, 700), (950, 950), (951, 951),
    (1000, 1000), (1400, 1400), (317, 1266), (318, 1268), (1266, 317), (1268, 318),
    # extreme ratios / extreme sizes (w*h needs 64 bits for the last two)
    (1, 1), (2, 1), (1, 2), (3, 1), (1, 3), (12, 1), (1, 12), (13, 1), (1, 13),
    (10000, 1), (1, 10000), (4000, 10), (10, 4000), (65535, 1), (1, 65535),
    (50000, 3000), (3000, 50000), (70000, 70000), (100000, 99999),
    # exact ties between different grid ratios (aspect = midpoint)
    (3, 4), (390, 520), (3, 2), (549, 366), (548, 366), (5, 4), (777, 518),
    (549, 732), (5, 2), (870, 348), (7, 4), (1029, 588), (7, 2), (1190, 340),
    (9, 40), (342, 1520), (710, 568), (870, 696), (9, 2), (1503, 334), (11, 2),
    (1826, 332), (7, 8), (595, 680), (9, 20), (9, 4), (1420, 568), (11, 4),
    (1672, 608), (2058, 588), (1065, 852), (1190, 680), (13, 2), (2145, 330),
    (15, 112), (330, 2464), (15, 2), (2460, 328), (17, 144), (603, 1340),
    (675, 1500), (1350, 600), (1503, 668), (17, 2), (19, 180), (889, 1016),
    (1029, 1176), (19, 2), (21, 220), (1826, 664), (21, 2), (23, 2),
]

TILING_SEED = 20250101
TILING_RANDOM_COUNT = 120


def tiling_sizes() -> List[Tuple[int, int]]:
    """The hand-picked sizes followed by random ones (fixed seed, deduplicated)."""
    rng = np.random.default_rng(TILING_SEED)
    sizes = list(TILING_SIZES)
    # half spread over all scales (uniform in [1, 2**e], e uniform in
    # 1..13), half uniform in [16, 2048]; integer arithmetic only
    for k in range(TILING_RANDOM_COUNT):
        if k % 2 == 0:
            e = rng.integers(1, 14, 2)
            w, h = int(rng.integers(1, 2 ** int(e[0]) + 1)), int(rng.integers(1, 2 ** int(e[1]) + 1))
        else:
            w, h = (int(v) for v in rng.integers(16, 2049, 2))
        sizes.append((w, h))
    seen = set()
    unique = []
    for s in sizes:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def write_tiling_table(out: str) -> List[str]:
    rows = []
    for w, h in tiling_sizes():
        for max_num in TILING_MAX_NUMS:
            cols, r = P.closest_tile_grid(w, h, 1, max_num, 448)
            rows.append((w, h, max_num, cols, r))
    _write_tsv(os.path.join(out, "tiling_table.tsv"), ("width", "height", "max_num", "cols", "rows"), rows)
    return ["tiling_table.tsv"]


# --------------------------------------------------------------------------
# resize_cases.tsv + resize_*.u8
# --------------------------------------------------------------------------

RESIZE_SEED = 7


def _noise(rng: np.random.Generator, shape: Tuple[int, ...], amplitude: int) -> np.ndarray:
    """Integer bell-shaped noise in [-amplitude, amplitude] (sum of 4 uniform
    integers); avoids transcendental functions so the goldens do not depend
    on the CPU's libm/SIMD code paths."""
    u = rng.integers(-amplitude, amplitude + 1, size=(4,) + shape)
    return (u.sum(axis=0) // 2).clip(-amplitude, amplitude).astype(np.float64)


def resize_images() -> List[Tuple[str, np.ndarray, int]]:
    """Synthetic inputs: (name, uint8 array [H, W, C], channels).

    Only +, -, *, /, sqrt and floor are used (all correctly rounded in
    IEEE arithmetic), so the images are identical on every machine."""
    rng = np.random.default_rng(RESIZE_SEED)
    # 37x23 uniform noise, RGB (worst case for over/undershoot and clipping)
    noise = rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)
    # 37x23 smooth gradient, RGB
    y, x = np.mgrid[0:23, 0:37].astype(np.float64)
    t = (x / 36.0 - 0.5) ** 2 + (y / 22.0 - 0.5) ** 2  # smooth bowl, 0 .. 0.5
    grad = np.stack([x * 255.0 / 36.0, y * 255.0 / 22.0, 255.0 - 510.0 * t], axis=2)
    grad = np.floor(grad + 0.5).clip(0, 255).astype(np.uint8)
    # 181x217 grey (radial gradient + mild noise + a bright disc), stored
    # as one channel; the RGB image is R = G = B = this
    y, x = np.mgrid[0:217, 0:181].astype(np.float64)
    r = np.sqrt((x - 90.0) ** 2 + (y - 108.0) ** 2)
    grey = 200.0 - 0.9 * r + _noise(rng, r.shape, 12)
    grey[(x - 60.0) ** 2 + (y - 70.0) ** 2 < 225.0] = 255.0
    grey = np.floor(grey + 0.5).clip(0, 255).astype(np.uint8)[:, :, None]
    # 300x200 RGB: gradient + noise + hard-edged rectangle
    y, x = np.mgrid[0:200, 0:300].astype(np.float64)
    mixed = np.stack([x * 255.0 / 299.0, y * 255.0 / 199.0, (x + y) * 255.0 / 498.0], axis=2)
    mixed += _noise(rng, mixed.shape, 20)
    mixed[60:140, 100:180, :] = (250.0, 10.0, 128.0)
    mixed = np.floor(mixed + 0.5).clip(0, 255).astype(np.uint8)
    return [("noise", noise, 3), ("grad", grad, 3), ("grey", grey, 1), ("mixed", mixed, 3)]


#: (image name, out width, out height)
RESIZE_TARGETS: List[Tuple[str, int, int]] = [
    # upscale to a tile, down, up in one axis / down in the other, same width,
    # same height, exact 2x, 1x1 (whole-image average)
    ("noise", 448, 448), ("noise", 17, 29), ("noise", 37, 61), ("noise", 12, 23), ("noise", 74, 46),
    ("noise", 1, 1),
    ("grad", 448, 100), ("grad", 17, 29), ("grad", 37, 61), ("grad", 5, 3), ("grad", 18, 11), ("grad", 1, 1),
    # SAM2 input size, strong downscale (antialiased), same width, ~0.5x
    ("grey", 1024, 1024), ("grey", 17, 29), ("grey", 181, 50), ("grey", 90, 108),
    ("mixed", 17, 29), ("mixed", 448, 100), ("mixed", 300, 120),
]


def write_resize_cases(out: str) -> List[str]:
    images = {name: (arr, ch) for name, arr, ch in resize_images()}
    rows = []
    files = []
    for name, ow, oh in RESIZE_TARGETS:
        arr, ch = images[name]
        h, w = arr.shape[:2]
        rgb = arr if ch == 3 else P.grey_to_rgb(arr[:, :, 0])
        res = P.pil_resize_array(rgb, ow, oh)
        if ch == 1:
            # PIL resamples channels independently: R = G = B must survive
            assert np.array_equal(res[:, :, 0], res[:, :, 1]) and np.array_equal(res[:, :, 0], res[:, :, 2])
            assert np.array_equal(res[:, :, 0], P.pil_resize_array(arr[:, :, 0], ow, oh))
            res = res[:, :, :1]
        fname = f"resize_{name}_{w}x{h}_to_{ow}x{oh}.u8"
        with open(os.path.join(out, fname), "wb") as f:
            f.write(np.ascontiguousarray(arr).tobytes())
            f.write(np.ascontiguousarray(res).tobytes())
        rows.append((name, w, h, ow, oh, fname, ch))
        files.append(fname)
    _write_tsv(
        os.path.join(out, "resize_cases.tsv"),
        ("name", "inW", "inH", "outW", "outH", "file", "channels"),
        rows,
    )
    return ["resize_cases.tsv"] + files


# --------------------------------------------------------------------------
# window_cases.tsv
# --------------------------------------------------------------------------

#: Extra free-form "W,L" specs (name in the table = the spec string).
WINDOW_SPECS: List[str] = list(P.CT_WINDOWS) + ["400,40", "1500,-600", "80,40", "2000,0", "350,50", "1,0.5"]
WINDOW_SEED = 11


def _position(v: float, lo: float, hi: float) -> str:
    """Describe where v lies relative to the window (for the note column)."""
    if v < lo:
        return "below"
    if v > hi:
        return "above"
    if v == lo or v == hi:
        return "edge"
    return "mid" if v == (lo + hi) / 2.0 else "inside"


def write_window_cases(out: str) -> List[str]:
    rng = np.random.default_rng(WINDOW_SEED)
    rows = []
    for spec in WINDOW_SPECS:
        lo, hi = P.parse_window(spec)
        structural = [
            -32768.0, lo - 1000.0, lo - 1.0, lo - 0.5, lo, lo + 0.25, lo + 1.0, (lo + hi) / 2.0,
            hi - 1.0, hi - 0.001, hi, hi + 0.5, hi + 1.0, hi + 3000.0, 32767.0,
        ]
        cases: List[Tuple[float, str]] = [(v, _position(v, lo, hi)) for v in structural]
        cases += [(v, "common") for v in (-1024.0, -1000.0, 0.0, 40.0, 3071.0)]
        # integer HU whose exact result is an integer (truncation-sensitive)
        lo_i, hi_i = int(np.ceil(lo)), int(np.floor(hi))
        exact = [v for v in range(lo_i, hi_i + 1) if ((v - lo) * 255.0) % (hi - lo) == 0.0]
        step = max(1, len(exact) // 8)
        cases += [(float(v), "int_out") for v in exact[::step]]
        cases += [(float(v), "random") for v in rng.uniform(lo - 100.0, hi + 100.0, 8)]
        cases += [(float(v), "random_int") for v in rng.integers(int(lo) - 50, int(hi) + 51, 6)]
        hu = np.array([c[0] for c in cases], dtype=np.float64)
        y = P.ct_window(hu, lo, hi)
        u = P.to_uint8(y)
        for (v, note), fy, fu in zip(cases, y, u):
            rows.append((spec, fmt(lo), fmt(hi), fmt(v), fmt(fy), int(fu), note))
    _write_tsv(
        os.path.join(out, "window_cases.tsv"),
        ("spec", "lo", "hi", "hu", "windowed_f32", "u8", "note"),
        rows,
    )
    return ["window_cases.tsv"]


# --------------------------------------------------------------------------
# percentile_cases.tsv
# --------------------------------------------------------------------------

PERCENTILE_SEED = 23


def percentile_arrays() -> List[Tuple[str, np.ndarray]]:
    """Deterministic float64 test arrays (flattened volumes)."""
    rng = np.random.default_rng(PERCENTILE_SEED)
    # MR-like float intensities: skewed positive values (product of two
    # uniforms), background zeros, a few negatives (ringing) and two bright
    # outliers
    mr = rng.uniform(0.0, 40.0, 300) * rng.uniform(0.0, 25.0, 300)
    mr[rng.choice(300, 60, replace=False)] = 0.0
    mr[rng.choice(300, 7, replace=False)] = -rng.uniform(0.5, 30.0, 7)
    mr[[17, 123]] = [9000.0, 12000.5]
    # int16-like integer intensities with many zeros and repeated values
    ints = rng.integers(-50, 4001, 257).astype(np.float64)
    ints[rng.choice(257, 80, replace=False)] = 0.0
    # few distinct values: percentiles land on repeated values / ties
    few = rng.choice(np.array([0.0, 1.0, 2.0, 3.0, 5.0, 8.0, -1.0]), 211)
    few[0] = 13.0
    # degenerate: one positive value only (hi == lo -> all zeros)
    const = np.array([0.0, 5.0, 5.0, -3.0, 5.0, 0.0, 5.0], dtype=np.float64)
    # degenerate: nothing > 0 (-> all zeros)
    nonpos = np.array([0.0, -1.0, -250.5, 0.0, -3.0], dtype=np.float64)
    return [("mr_float", mr), ("int_counts", ints), ("few_values", few), ("constant", const), ("nonpositive", nonpos)]


def write_percentile_cases(out: str) -> List[str]:
    rows = []
    for name, x in percentile_arrays():
        bounds = P.percentile_bounds(x)
        lo, hi = bounds if bounds is not None else (float("nan"), float("nan"))
        y = P.percentile_normalize(x)
        u = P.to_uint8(y)
        for i in range(x.shape[0]):
            rows.append((name, i, fmt(x[i]), fmt(lo), fmt(hi), fmt(y[i]), int(u[i])))
    _write_tsv(
        os.path.join(out, "percentile_cases.tsv"),
        ("case", "index", "input", "lo", "hi", "normalized_f32", "u8"),
        rows,
    )
    return ["percentile_cases.tsv"]


# --------------------------------------------------------------------------
# normalize_cases.tsv
# --------------------------------------------------------------------------

def write_normalize_cases(out: str) -> List[str]:
    """ImageNet normalisation of every uint8 value for each channel."""
    ramp = np.arange(256, dtype=np.uint8)
    img = np.stack([ramp, ramp, ramp], axis=1)[None, :, :]  # [1, 256, 3]
    x = P.normalize_imagenet(img)  # [3, 1, 256]
    rows = []
    for c in range(3):
        for v in range(256):
            rows.append((c, v, fmt(x[c, 0, v])))
    _write_tsv(os.path.join(out, "normalize_cases.tsv"), ("channel", "u8", "normalized_f32"), rows)
    return ["normalize_cases.tsv"]


WRITERS: List[Callable[[str], List[str]]] = [
    write_tiling_table,
    write_resize_cases,
    write_window_cases,
    write_percentile_cases,
    write_normalize_cases,
]


def generate(out: str) -> List[str]:
    """Write all golden files into ``out``; return their names (relative)."""
    os.makedirs(out, exist_ok=True)
    names: List[str] = []
    for writer in WRITERS:
        names += writer(out)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write preprocessing golden files")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    names = generate(args.out)
    total = 0
    for n in names:
        size = os.path.getsize(os.path.join(args.out, n))
        total += size
    print(f"wrote {len(names)} files, {total} bytes, into {args.out}")
    print(f"numpy {np.__version__}, Pillow {Image.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
