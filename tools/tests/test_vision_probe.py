"""The lesion-detection probe of the vision encoder (tools/demo/vision_probe.py): flips, the
patch loss, the hit rates, and that its steps train the encoder."""

from __future__ import annotations

import os
import sys
import unittest

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOOLS)

from demo import vision_probe as V  # noqa: E402
from demo.vision_terms import lesion_patch_loss  # noqa: E402
from unibiomed_ref.config import tiny_config  # noqa: E402
from unibiomed_ref.model import build_model  # noqa: E402


class ProbeArithmetic(unittest.TestCase):
    def test_flip_mirrors_tiles_and_shares_together(self) -> None:
        side = 4
        tiles = torch.zeros(2, 3, 8, 8)
        tiles[:, :, :, 0:2] = 1.0  # the left column of patches (2 pixels a patch) lit
        shares = torch.zeros(2, side * side)
        shares[:, 0] = 1.0  # patch (0, 0): top left
        flipped, moved = V.flip_rows(tiles, shares, torch.tensor([True, False]), side)
        self.assertEqual(float(flipped[0, 0, 0, 7]), 1.0)
        self.assertEqual(float(flipped[0, 0, 0, 0]), 0.0)
        self.assertEqual(int(moved[0].argmax()), side - 1)  # top right
        self.assertTrue(torch.equal(flipped[1], tiles[1]))
        self.assertEqual(int(moved[1].argmax()), 0)
        self.assertEqual(float(tiles[0, 0, 0, 7]), 0.0)  # the inputs are left as they were

    def test_patch_loss_is_the_cross_entropy_on_lesion_slices_only(self) -> None:
        scores = torch.tensor([[2.0, 0.0, 0.0, 0.0], [5.0, 1.0, 0.0, 0.0]])
        shares = torch.tensor([[0.3, 0.1, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
        logp = torch.log_softmax(scores[0], 0)
        want = -(0.75 * logp[0] + 0.25 * logp[1])
        self.assertAlmostEqual(float(lesion_patch_loss(scores, shares)), float(want), places=6)
        self.assertEqual(float(lesion_patch_loss(scores[1:], shares[1:])), 0.0)

    def test_hit_rates_by_kind(self) -> None:
        scores = torch.tensor([[0.0, 9.0], [9.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
        shares = torch.tensor([[0.0, 0.2], [0.0, 0.5], [0.1, 0.0], [1.0, 0.0]])
        kinds = ["ch2 dark", "ch2 dark", "invesalius-ct bright", ""]
        rates = V.hit_rates(scores, shares, kinds)
        self.assertEqual(rates, {"all": 2 / 3, "ch2 dark": 0.5, "invesalius-ct bright": 1.0})


class ProbeTraining(unittest.TestCase):
    def test_steps_lower_the_loss_on_a_fixed_pool(self) -> None:
        torch.manual_seed(0)
        model = build_model(tiny_config(), 3)
        encoder = model.export_parts()["vision_encoder"]
        fresh = build_model(tiny_config(), 4).export_parts()["vision_encoder"]
        V.reinitialise(encoder, fresh, position_std=0.02)
        pos = encoder.vision_model.embeddings.position_embedding
        self.assertAlmostEqual(float(pos.std()), 0.02, delta=0.01)
        probe = V.DetectionProbe(encoder, lr=3e-3, seed=0)
        side = probe.side
        size = encoder.vision_model.embeddings.grid * encoder.patch_size
        rng = np.random.default_rng(1)
        tiles = torch.randn(8, 3, size, size) * 0.1
        shares = torch.zeros(8, side * side)
        kinds = []
        for n in range(8):  # a bright square on one patch: the lesion
            r, c = int(rng.integers(side)), int(rng.integers(side))
            p = encoder.patch_size
            tiles[n, :, r * p:(r + 1) * p, c * p:(c + 1) * p] += 2.0
            shares[n, r * side + c] = 1.0
            kinds.append("ch2 bright")
        pool = V.Pool(tiles, shares, kinds)
        with torch.no_grad():
            before = float(lesion_patch_loss(probe.scores(tiles), shares))
        for _ in range(40):
            probe.step(pool, batch=8, warmup=5)
        with torch.no_grad():
            after = float(lesion_patch_loss(probe.scores(tiles), shares))
        self.assertLess(after, 0.5 * before)
        self.assertEqual(probe.steps, 40)
        self.assertGreaterEqual(probe.evaluate(pool, 8)["all"], 0.75)


if __name__ == "__main__":
    unittest.main()
