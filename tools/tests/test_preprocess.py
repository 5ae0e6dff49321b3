"""Unit tests for tools/reference/preprocess.py and the golden files.

Run from the repository root with Debian's interpreter::

    /usr/bin/python3 -m unittest discover -s tools/tests -t .

(``-s tools/tests`` alone, or running this file directly, works too.)
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import unittest

import numpy as np
from PIL import Image

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "reference"))

import make_goldens  # noqa: E402
import preprocess as P  # noqa: E402

GOLDEN_DIR = os.path.join(REPO_ROOT, "tests", "data", "golden")


def read_tsv(name: str) -> list[dict[str, str]]:
    with open(os.path.join(GOLDEN_DIR, name), encoding="ascii") as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f]


def solid(width: int, height: int, rgb: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), rgb)


class TestTiling(unittest.TestCase):
    def test_known_grids(self) -> None:
        self.assertEqual(P.closest_tile_grid(1024, 1024), (3, 3))
        self.assertEqual(P.closest_tile_grid(512, 512), (1, 1))
        self.assertEqual(P.closest_tile_grid(448, 448), (1, 1))
        self.assertEqual(P.closest_tile_grid(896, 448), (2, 1))
        self.assertEqual(P.closest_tile_grid(448, 896), (1, 2))
        self.assertEqual(P.closest_tile_grid(1000, 1), (12, 1))
        self.assertEqual(P.closest_tile_grid(1, 1000), (1, 12))
        self.assertEqual(P.closest_tile_grid(181, 217), (3, 4))
        self.assertEqual(P.closest_tile_grid(100, 700), (1, 7))
        self.assertEqual(P.closest_tile_grid(1024, 1024, max_num=6), (2, 2))

    def test_same_aspect_area_rule(self) -> None:
        # 1x1, 2x2, 3x3 have the same aspect; the area decides
        # (thresholds 0.5*448^2*4 = 401408 and 0.5*448^2*9 = 903168)
        self.assertEqual(P.closest_tile_grid(600, 600), (1, 1))
        self.assertEqual(P.closest_tile_grid(633, 633), (1, 1))
        self.assertEqual(P.closest_tile_grid(634, 634), (2, 2))
        self.assertEqual(P.closest_tile_grid(700, 700), (2, 2))
        self.assertEqual(P.closest_tile_grid(950, 950), (2, 2))
        self.assertEqual(P.closest_tile_grid(951, 951), (3, 3))
        self.assertEqual(P.closest_tile_grid(1000, 1000), (3, 3))
        self.assertEqual(P.closest_tile_grid(1400, 1400), (3, 3))

    def test_midpoint_ties(self) -> None:
        # aspect 1.5 is equally far from 1/1 and 2/1
        self.assertEqual(P.closest_tile_grid(549, 366, max_num=2), (2, 1))
        self.assertEqual(P.closest_tile_grid(3, 2, max_num=2), (1, 1))
        # aspect 5.5 between 5/1 and 6/1
        self.assertEqual(P.closest_tile_grid(1826, 332), (6, 1))
        self.assertEqual(P.closest_tile_grid(11, 2), (5, 1))

    def test_max_num_one(self) -> None:
        for w, h in [(1, 1), (1000, 1), (4000, 4000), (3, 700)]:
            self.assertEqual(P.closest_tile_grid(w, h, max_num=1), (1, 1))

    def test_candidates(self) -> None:
        cands = P.tile_candidates(1, 12)
        self.assertEqual(len(cands), 35)
        self.assertEqual(cands[0], (1, 1))
        products = [i * j for i, j in cands]
        self.assertEqual(products, sorted(products))
        self.assertEqual(set(cands), {(i, j) for i in range(1, 13) for j in range(1, 13) if i * j <= 12})

    def test_tile_counts(self) -> None:
        for w, h in [(512, 512), (1024, 1024), (181, 217), (896, 448), (100, 700), (1000, 1)]:
            img = solid(w, h, (10, 20, 30))
            cols, rows = P.closest_tile_grid(w, h)
            tiles = P.dynamic_tiles(img)
            expected = cols * rows + (1 if cols * rows > 1 else 0)
            self.assertEqual(len(tiles), expected, (w, h))
            for t in tiles:
                self.assertEqual(t.size, (448, 448))
            self.assertEqual(len(P.dynamic_tiles(img, use_thumbnail=False)), cols * rows)
        self.assertEqual(len(P.dynamic_tiles(solid(512, 512, (0, 0, 0)))), 1)  # no thumbnail
        self.assertEqual(len(P.dynamic_tiles(solid(1024, 1024, (0, 0, 0)))), 10)  # 3x3 + thumbnail

    def test_tile_order_row_major(self) -> None:
        # 1344x896 -> exactly 3x2 tiles of 448, no resampling needed
        img = Image.new("RGB", (1344, 896))
        colours = {}
        for r in range(2):
            for c in range(3):
                colour = (40 * c + 10, 100 * r + 20, 7)
                colours[(c, r)] = colour
                img.paste(colour, (448 * c, 448 * r, 448 * (c + 1), 448 * (r + 1)))
        self.assertEqual(P.closest_tile_grid(1344, 896), (3, 2))
        tiles = P.dynamic_tiles(img)
        self.assertEqual(len(tiles), 7)
        for k in range(6):
            c, r = k % 3, k // 3
            arr = np.asarray(tiles[k])
            self.assertTrue(np.all(arr == np.array(colours[(c, r)], dtype=np.uint8)), k)
        np.testing.assert_array_equal(np.asarray(tiles[6]), np.asarray(img.resize((448, 448), Image.BICUBIC)))

    def test_golden_table(self) -> None:
        rows = read_tsv("tiling_table.tsv")
        self.assertGreaterEqual(len(rows), 200)
        seen = {(int(r["width"]), int(r["height"]), int(r["max_num"])): (int(r["cols"]), int(r["rows"])) for r in rows}
        self.assertEqual(seen[(1024, 1024, 12)], (3, 3))
        self.assertEqual(seen[(512, 512, 12)], (1, 1))
        self.assertTrue({k[2] for k in seen} >= {1, 6, 12})
        for (w, h, m), grid in seen.items():
            self.assertEqual(P.closest_tile_grid(w, h, 1, m, 448), grid, (w, h, m))


class TestWindow(unittest.TestCase):
    def test_abdomen_values(self) -> None:
        lo, hi = P.CT_WINDOWS["abdomen"]
        y = P.ct_window(np.array([-1000.0, -150.0, 50.0, 250.0, 3000.0]), lo, hi)
        self.assertEqual(y.dtype, np.float32)
        self.assertEqual(y.tolist(), [0.0, 0.0, 127.5, 255.0, 255.0])
        self.assertEqual(P.to_uint8(y).tolist(), [0, 0, 127, 255, 255])

    def test_presets(self) -> None:
        self.assertEqual(P.CT_WINDOWS["lung"], (-1000.0, 1000.0))
        self.assertEqual(P.CT_WINDOWS["pancreas"], (-100.0, 200.0))
        self.assertEqual(P.parse_window("80,40"), P.CT_WINDOWS["brain"])
        self.assertEqual(P.parse_window("1800,400"), P.CT_WINDOWS["bone"])
        self.assertEqual(P.parse_window("400,40"), P.CT_WINDOWS["soft"])
        self.assertEqual(P.parse_window(" 1500 , -600 "), (-1350.0, 150.0))
        self.assertEqual(P.parse_window("Abdomen"), (-150.0, 250.0))

    def test_bad_specs(self) -> None:
        for spec in ["", "abc", "400", "400,40,1", "0,40", "-10,40", "nan,1", "400,inf"]:
            with self.assertRaises(ValueError, msg=spec):
                P.parse_window(spec)
        with self.assertRaises(ValueError):
            P.ct_window(np.zeros(3), 10.0, 10.0)

    def test_golden_cases(self) -> None:
        for r in read_tsv("window_cases.tsv"):
            lo, hi = P.parse_window(r["spec"])
            self.assertEqual((lo, hi), (float(r["lo"]), float(r["hi"])))
            y = P.ct_window(np.array([float(r["hu"])]), lo, hi)
            self.assertEqual(float(y[0]), float(r["windowed_f32"]), r)
            self.assertEqual(int(P.to_uint8(y)[0]), int(r["u8"]), r)


class TestPercentile(unittest.TestCase):
    def test_hand_computed(self) -> None:
        x = np.array([0.0, -5.0, 30.0, 10.0, 50.0, 20.0, 0.0, 40.0])
        # positives sorted: 10 20 30 40 50 (n = 5)
        # lo: vi = 4 * 0.005 = 0.02 -> 10 + 10 * 0.02 = 10.2
        # hi: vi = 4 * 0.995 = 3.98 -> 50 - 10 * 0.02 = 49.8
        lo, hi = P.percentile_bounds(x)
        self.assertAlmostEqual(lo, 10.2, places=12)
        self.assertAlmostEqual(hi, 49.8, places=12)
        y = P.percentile_normalize(x)
        self.assertEqual(y.dtype, np.float32)
        expected = [0.0, 0.0, 127.5, 0.0, 255.0, 9.8 / 39.6 * 255.0, 0.0, 29.8 / 39.6 * 255.0]
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-5)
        self.assertEqual(P.to_uint8(y).tolist(), [0, 0, 127, 0, 255, 63, 0, 191])

    def test_degenerate(self) -> None:
        self.assertEqual(P.percentile_normalize(np.array([0.0, -1.0, -2.0])).tolist(), [0.0, 0.0, 0.0])
        self.assertEqual(P.percentile_normalize(np.array([0.0, 7.0, 7.0, -1.0])).tolist(), [0.0] * 4)
        self.assertIsNone(P.percentile_bounds(np.zeros(4)))

    def test_negative_and_zero_map_to_zero(self) -> None:
        rng = np.random.default_rng(1)
        x = rng.uniform(-100.0, 1000.0, 500)
        x[::7] = 0.0
        y = P.percentile_normalize(x)
        self.assertTrue(np.all(y[x <= 0] == 0.0))
        self.assertAlmostEqual(float(y.max()), 255.0)

    def test_formula_matches_numpy(self) -> None:
        rng = np.random.default_rng(5)
        for n in list(range(1, 40)) + [199, 200, 201, 257, 1000, 4097]:
            for kind in range(3):
                if kind == 0:
                    s = np.sort(rng.uniform(0.0, 1000.0, n))
                elif kind == 1:
                    s = np.sort(rng.integers(1, 20, n).astype(np.float64))
                else:
                    s = np.sort(rng.uniform(0.0, 1.0, n) * 10.0 ** rng.integers(-3, 6))
                for q in (0.0, 0.5, 1.0, 25.0, 50.0, 99.0, 99.5, 100.0):
                    self.assertEqual(P.percentile_linear(s, q), float(np.percentile(s, q)), (n, kind, q))

    def test_golden_cases(self) -> None:
        rows = read_tsv("percentile_cases.tsv")
        cases: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            cases.setdefault(r["case"], []).append(r)
        self.assertGreaterEqual(len(cases), 3)
        for name, rs in cases.items():
            x = np.array([float(r["input"]) for r in rs])
            self.assertEqual([int(r["index"]) for r in rs], list(range(len(rs))))
            b = P.percentile_bounds(x)
            if b is None:
                self.assertTrue(math.isnan(float(rs[0]["lo"])))
            else:
                self.assertEqual(b, (float(rs[0]["lo"]), float(rs[0]["hi"])), name)
                pos = np.sort(x[x > 0])
                self.assertEqual(b, (P.percentile_linear(pos, 0.5), P.percentile_linear(pos, 99.5)))
            y = P.percentile_normalize(x)
            self.assertEqual(y.tolist(), [float(r["normalized_f32"]) for r in rs], name)
            self.assertEqual(P.to_uint8(y).tolist(), [int(r["u8"]) for r in rs], name)


class TestToUint8(unittest.TestCase):
    def test_truncation(self) -> None:
        x = np.array([-3.0, 0.0, 0.999, 1.0, 127.5, 254.99998, 255.0, 300.0, np.nan], dtype=np.float32)
        self.assertEqual(P.to_uint8(x).tolist(), [0, 0, 0, 1, 127, 254, 255, 255, 0])
        v = np.linspace(0.0, 255.0, 1021)
        np.testing.assert_array_equal(P.to_uint8(v), v.astype(np.uint8))


class TestNormalize(unittest.TestCase):
    def test_imagenet(self) -> None:
        img = np.zeros((2, 3, 3), dtype=np.uint8)
        img[1, 2] = (255, 255, 255)
        x = P.normalize_imagenet(img)
        self.assertEqual(x.shape, (3, 2, 3))
        self.assertEqual(x.dtype, np.float32)
        for c, (m, s) in enumerate(zip(P.IMAGENET_MEAN, P.IMAGENET_STD)):
            self.assertAlmostEqual(float(x[c, 0, 0]), -m / s, places=5)
            self.assertAlmostEqual(float(x[c, 1, 2]), (1.0 - m) / s, places=5)
        # float32 arithmetic, same as torchvision ToTensor + Normalize
        m32, s32 = np.float32(P.IMAGENET_MEAN[0]), np.float32(P.IMAGENET_STD[0])
        self.assertEqual(float(x[0, 1, 2]), float((np.float32(255.0) / np.float32(255.0) - m32) / s32))

    def test_golden_cases(self) -> None:
        rows = read_tsv("normalize_cases.tsv")
        self.assertEqual(len(rows), 768)
        ramp = np.arange(256, dtype=np.uint8)
        x = P.normalize_imagenet(np.stack([ramp] * 3, axis=1)[None])
        for r in rows:
            self.assertEqual(float(x[int(r["channel"]), 0, int(r["u8"])]), float(r["normalized_f32"]))

    def test_sam_input(self) -> None:
        rng = np.random.default_rng(3)
        img = Image.fromarray(rng.integers(0, 256, (217, 181), dtype=np.uint8)).convert("RGB")
        x = P.sam_input(img)
        self.assertEqual(x.shape, (3, 1024, 1024))
        self.assertEqual(x.dtype, np.float32)
        np.testing.assert_array_equal(x, P.normalize_imagenet(img.resize((1024, 1024), Image.BICUBIC)))
        self.assertTrue(np.all(np.isfinite(x)))


class TestResize(unittest.TestCase):
    def test_port_matches_pillow_random(self) -> None:
        rng = np.random.default_rng(9)
        for t in range(40):
            w, h = (int(v) for v in rng.integers(1, 60, 2))
            ow, oh = (int(v) for v in rng.integers(1, 90, 2))
            a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            np.testing.assert_array_equal(P.pil_bicubic_resize(a, ow, oh), P.pil_resize_array(a, ow, oh), (w, h, ow, oh))

    def test_golden_cases(self) -> None:
        rows = read_tsv("resize_cases.tsv")
        self.assertGreater(len(rows), 10)
        for r in rows:
            w, h, ow, oh, ch = (int(r[k]) for k in ("inW", "inH", "outW", "outH", "channels"))
            self.assertEqual(r["file"], f"resize_{r['name']}_{w}x{h}_to_{ow}x{oh}.u8")
            with open(os.path.join(GOLDEN_DIR, r["file"]), "rb") as f:
                data = np.frombuffer(f.read(), dtype=np.uint8)
            self.assertEqual(data.size, (w * h + ow * oh) * ch, r["file"])
            src = data[: w * h * ch].reshape(h, w, ch)
            dst = data[w * h * ch:].reshape(oh, ow, ch)
            rgb = src if ch == 3 else P.grey_to_rgb(src[:, :, 0])
            want = dst if ch == 3 else P.grey_to_rgb(dst[:, :, 0])
            # Pillow itself (fails if a different Pillow resamples differently)
            np.testing.assert_array_equal(P.pil_resize_array(rgb, ow, oh), want, r["file"])
            # the numpy port the C++ code follows
            np.testing.assert_array_equal(P.pil_bicubic_resize(rgb, ow, oh), want, r["file"])


class TestGoldensReproducible(unittest.TestCase):
    def test_regenerate_matches_committed(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            names = make_goldens.generate(tmp)
            self.assertEqual(sorted(names), sorted(os.listdir(tmp)))
            committed = sorted(n for n in os.listdir(GOLDEN_DIR) if n != "README.md")
            self.assertEqual(sorted(names), committed)
            for n in names:
                with open(os.path.join(tmp, n), "rb") as a, open(os.path.join(GOLDEN_DIR, n), "rb") as b:
                    self.assertTrue(a.read() == b.read(), f"{n} differs from a fresh make_goldens run")

    def test_total_size(self) -> None:
        total = sum(os.path.getsize(os.path.join(GOLDEN_DIR, n)) for n in os.listdir(GOLDEN_DIR))
        self.assertLess(total, 3 * 1024 * 1024)


if __name__ == "__main__":
    unittest.main()
