"""The shipped demo model (models/default) on held-out slices, through the reference pipeline
on its exported TorchScript files; and the evaluation's own arithmetic.

    /usr/bin/python3 -m unittest tools.tests.test_demo_model
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unittest

import numpy as np

TOOLS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from demo import evaluate, model_card, slices  # noqa: E402

DATA = os.environ.get("UNIBIOMED_DATA", os.path.join(ROOT, ".cache", "data"))
BUNDLE = os.path.join(ROOT, "models", "default")
HAVE = os.path.exists(os.path.join(BUNDLE, "manifest.json")) and \
    os.path.exists(os.path.join(DATA, "mricron", "aal.nii.gz"))


class EvaluationArithmetic(unittest.TestCase):
    def test_dice_by_hand(self) -> None:
        a = np.zeros((4, 4), bool)
        b = np.zeros((4, 4), bool)
        a[:2, :2] = True  # 4 pixels
        b[:2, :3] = True  # 6 pixels, 4 shared
        self.assertAlmostEqual(evaluate.dice(a, b), 8 / 10)
        self.assertEqual(evaluate.dice(a & False, b & False), 1.0)
        self.assertEqual(evaluate.dice(a, b & False), 0.0)

    def test_scorer_pools_and_averages(self) -> None:
        s = evaluate.Scorer()
        a = np.zeros((4, 4), bool)
        a[0, :2] = True
        s.add("x", a, a)  # Dice 1
        s.add("x", np.zeros_like(a), a)  # Dice 0, empty prediction
        row = s.table()["x"]
        self.assertAlmostEqual(row["dice"], 4 / 6)  # 2*2 / (2 + 4)
        self.assertAlmostEqual(row["mean_slice_dice"], 0.5)
        self.assertEqual((s.runs, s.empty), (2, 1))

    def test_card_figures_fill_only_their_section(self) -> None:
        tmp = tempfile.mkdtemp()
        try:
            with open(os.path.join(tmp, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
                f.write("# card\n<!-- figures:start -->\nold\n<!-- figures:end -->\ntail\n")
            table = {"brain": {"dice": 0.9, "mean_slice_dice": 0.88, "slices": 3}}
            held = {"structures": table, "runs": 3, "empty_mask_rate": 0.0}
            report = {"bar": {"large_mean_dice": 0.9, "all_mean_dice": 0.9,
                              "location_rate": 0.85},
                      "held_out_slices": held, "held_out_synthetic_contrast": held,
                      "unseen_subject": {"x.png": 0.7},
                      "lesions": {"cases": 2, "location_rate": 0.5, "lesion_dice": 0.4},
                      "lesions_synthetic_contrast": {"cases": 3, "location_rate": 0.0,
                                                     "lesion_dice": 0.1}}
            model_card.write(tmp, report)
            with open(os.path.join(tmp, "MODEL_CARD.md"), encoding="utf-8") as f:
                text = f.read()
            self.assertNotIn("old", text)
            self.assertTrue(text.startswith("# card\n") and text.endswith("tail\n"))
            self.assertIn("| brain (large) | 0.900 | 0.880 | 3 |", text)
            self.assertIn("(2 cases): the report names the right side and region in 50.0%", text)
            self.assertIn("synthetic contrast** (3 cases)", text)
            self.assertTrue(os.path.exists(os.path.join(tmp, "eval.json")))
        finally:
            shutil.rmtree(tmp)


@unittest.skipUnless(os.path.exists(os.path.join(BUNDLE, "manifest.json")), "models/default missing")
class BundleAsCheckpoint(unittest.TestCase):
    """make_demo_model.py train --init BUNDLE continues from the shipped weights."""

    def test_weights_and_history_come_back(self) -> None:
        import torch

        import make_demo_model
        from unibiomed_ref.bundle import read_manifest
        from unibiomed_ref.config import ModelConfig
        from unibiomed_ref.model import UniBiomedModel

        ck = make_demo_model.bundle_checkpoint(BUNDLE)
        model = UniBiomedModel(ModelConfig.from_dict(ck["config"]))
        model.load_state_dict(ck["model"])
        manifest = read_manifest(BUNDLE)
        for key, part in model.export_parts().items():
            shipped = torch.jit.load(os.path.join(BUNDLE, manifest["files"][key]["path"]))
            ours = part.state_dict()
            for name, value in shipped.state_dict().items():
                self.assertTrue(torch.equal(ours[name], value.to(ours[name].dtype)),
                                f"{key}: {name}")
        self.assertTrue(ck["history"])
        for run in ck["history"]:
            self.assertTrue(run["command"].startswith("tools/make_demo_model.py train"), run)
            self.assertGreater(run["minutes"], 0)


@unittest.skipUnless(HAVE, "models/default or the sample cache missing")
class ShippedModel(unittest.TestCase):
    """A regression gate on the shipped weights: large structures on held-out slices."""

    @classmethod
    def setUpClass(cls) -> None:
        from demo import anatomy

        cls.ch2 = anatomy.ch2_subject(DATA)
        cls.ct = anatomy.ct_subject(DATA)
        cls.ev = evaluate.Evaluator(BUNDLE, [cls.ch2, cls.ct], log=lambda *_: None)

    def pooled(self, subject, target: str, ks, window=None) -> float:
        scorer = evaluate.Scorer()
        for k in ks:
            pic = slices.take(subject.image, "axial", k)
            if window:
                pic = slices.to_uint8(pic, *window)
            else:
                pic = np.clip(pic, 0, 255).astype(np.uint8)  # 8-bit MR shown as stored
            scorer.add(target, self.ev.segment(pic, target),
                       slices.take(subject.structures[target], "axial", k))
        return scorer.table()[target]["dice"]

    def test_brain_mri_held_out_slices(self) -> None:
        ks = range(88, 96, 2)
        self.assertGreater(self.pooled(self.ch2, "brain", ks), BRAIN_MIN)
        self.assertGreater(self.pooled(self.ch2, "lateral ventricles", ks), VENTRICLES_MIN)

    def test_head_ct_held_out_slices(self) -> None:
        ks = range(60, 66, 2)
        window = slices.CT_WINDOWS["brain"]
        self.assertGreater(self.pooled(self.ct, "skull", ks, window), SKULL_MIN)
        self.assertGreater(self.pooled(self.ct, "head", ks, window), HEAD_MIN)


# Floors a little under the model card's figures for these slices (the card has the full set).
BRAIN_MIN, VENTRICLES_MIN, SKULL_MIN, HEAD_MIN = 0.9, 0.7, 0.75, 0.9


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(HAVE, "models/default or the sample cache missing")
class LesionTerms(unittest.TestCase):
    """The vision phase's lesion terms (train --lesion-location, --lesion-patches)."""

    @classmethod
    def setUpClass(cls) -> None:
        import make_demo_model
        from unibiomed_ref.config import ModelConfig

        cls.checkpoint = make_demo_model.bundle_checkpoint(BUNDLE)
        cls.config = ModelConfig.from_dict(cls.checkpoint["config"])

    def model(self):
        from unibiomed_ref.model import UniBiomedModel

        model = UniBiomedModel(self.config)
        model.load_state_dict(self.checkpoint["model"])
        return model

    def test_patch_features_and_tokens_match_the_export(self) -> None:
        import torch

        from demo.vision_terms import patches_and_tokens

        model = self.model()

        encoder = model.export_parts()["vision_encoder"].eval()
        tiles = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            patches, tokens, side = patches_and_tokens(encoder, tiles)
            self.assertEqual(side, 16)
            self.assertEqual(tuple(patches.shape), (2, 256, model.config.vision.hidden_size))
            torch.testing.assert_close(tokens, encoder(tiles), rtol=0, atol=0)

    def test_folding_the_layer_scales_keeps_the_tokens(self) -> None:
        import torch

        from demo.vision_terms import fold_layer_scale

        encoder = self.model().export_parts()["vision_encoder"].eval()
        layers = encoder.vision_model.encoder.layers
        gen = torch.Generator().manual_seed(4)
        with torch.no_grad():  # scales as a model trained from InternViT's 0.1 has them
            for layer in layers:
                layer.ls1.copy_(0.05 + 0.15 * torch.rand(layer.ls1.shape, generator=gen))
                layer.ls2.copy_(0.05 + 0.15 * torch.rand(layer.ls2.shape, generator=gen))
        tiles = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            before = encoder(tiles)
            fold_layer_scale(encoder)
            after = encoder(tiles)
        for layer in layers:
            self.assertEqual(float((layer.ls1 - 1).abs().max()), 0.0)
            self.assertEqual(float((layer.ls2 - 1).abs().max()), 0.0)
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)

    def test_vision_step_trains_the_lesion_heads(self) -> None:
        import torch

        import make_demo_model
        from demo import anatomy
        from demo.samples import Sampler
        from demo.token_labels import LOCATIONS, cell_shares
        from demo.train import Trainer, TrainOptions
        from demo.train_probes import location_probe
        from unibiomed_ref import prompt as P
        from unibiomed_ref.tokenizer import load_tokenizer

        shares = cell_shares(np.pad(np.ones((14, 28), bool), ((0, 210), (0, 196))), 16)
        self.assertEqual(shares[:3].tolist(), [1.0, 1.0, 0.0])  # two full patches, row-major
        self.assertEqual(float(shares.sum()), 2.0)

        config = self.config
        model = self.model()
        tok = load_tokenizer("sentencepiece", os.path.join(BUNDLE, "tokenizer.model"),
                             list(P.ADDED_TOKENS))
        settings = make_demo_model.demo_settings(config, tok.token_to_id("</s>"))
        subjects = [anatomy.ch2_subject(DATA)]
        opts = TrainOptions(lesion_location=1.0, lesion_patches=1.0, vision_pictures=4,
                            vision_lesion_rate=1.0)
        from unibiomed_ref.sam2 import mask_decoder

        # the Trainer swaps in training kernels process-wide; later tests script the export form
        self.addCleanup(setattr, mask_decoder, "_deconv2x2", mask_decoder._deconv2x2)
        trainer = Trainer(model, tok, settings, Sampler(subjects, P.ChatSettings(), False, 3),
                          opts)
        heads = (trainer.patch_head, trainer.location_head, trainer.location_query)
        before = [head.weight.detach().clone() for head in heads]
        stats = trainer.vision_step(1e-3)
        self.assertNotIn("skipped", stats)
        self.assertGreater(stats["patches"], 0.0)  # cross-entropy over 256 patches
        self.assertLess(stats["patches"], 2 * np.log(256))
        for old, head in zip(before, heads):
            self.assertFalse(torch.equal(old, head.weight))
        probe = location_probe(trainer, Sampler(subjects, P.ChatSettings(), True, 4), cases=4)
        self.assertEqual(set(probe), {"location", "side", "normal", "top token", "top patch"})
        self.assertTrue(all(0.0 <= v <= 1.0 for v in probe.values()))
        self.assertEqual(len(LOCATIONS), 1 + 2 * 9)
        tokens = torch.randn(64, config.language.hidden_size)
        logits = trainer.location_logits(tokens)
        self.assertEqual(tuple(logits.shape), (len(LOCATIONS),))
        # read through attention: the tokens' order does not matter, their content does
        torch.testing.assert_close(trainer.location_logits(tokens.flip(0)), logits)
        state = trainer.training_state()
        self.assertIn("location_query", state)


@unittest.skipUnless(os.path.exists(os.path.join(BUNDLE, "manifest.json")), "models/default missing")
class LesionAttention(unittest.TestCase):
    """The lesion-attention term (train --lesion-attention): the head it reads is the layer's
    own, and its loss is the cross-entropy of that head's attention on the lesion's tokens."""

    def test_the_head_is_the_layers_own_attention(self) -> None:
        import torch

        import make_demo_model
        from demo.lesion_attention import _head_probs, forward_with_head
        from unibiomed_ref.config import ModelConfig
        from unibiomed_ref.language import rope_cos_sin
        from unibiomed_ref.model import UniBiomedModel
        from unibiomed_ref.tiny import training_forward

        checkpoint = make_demo_model.bundle_checkpoint(BUNDLE)
        model = UniBiomedModel(ModelConfig.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["model"])
        lm = model.language_model.eval()
        cfg = lm.config
        embeds = torch.randn(2, 9, cfg.hidden_size, generator=torch.Generator().manual_seed(6))
        with torch.no_grad():
            logits, hidden, probs = forward_with_head(lm, embeds, 1, 4)
            ref_logits, ref_hidden = training_forward(lm, embeds)
            torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0)
            torch.testing.assert_close(hidden, ref_hidden, rtol=0, atol=0)
            self.assertEqual(tuple(probs.shape), (2, 9, 9))
            torch.testing.assert_close(probs.sum(-1), torch.ones(2, 9))
            self.assertEqual(float(probs.triu(1).abs().max()), 0.0)  # causal
            # every head's probabilities times its values give back the layer's attention
            x = embeds
            for layer in lm.model.layers[:1]:
                k = embeds.new_zeros(2, cfg.num_key_value_heads, 9, cfg.head_dim)
                x = layer(x, *rope_cos_sin(0, 9, cfg.head_dim, cfg.rope_theta, embeds), 0, k,
                          torch.zeros_like(k))
            attn = lm.model.layers[1].self_attn
            normed = lm.model.layers[1].input_layernorm(x)
            cos, sin = rope_cos_sin(0, 9, cfg.head_dim, cfg.rope_theta, embeds)
            v = attn.v_proj(normed).view(2, 9, attn.num_kv_heads, cfg.head_dim)
            heads = [_head_probs(attn, normed, cos, sin, h) @ v[:, :, h // attn.groups]
                     for h in range(attn.num_heads)]
            k = embeds.new_zeros(2, cfg.num_key_value_heads, 9, cfg.head_dim)
            torch.testing.assert_close(attn.o_proj(torch.cat(heads, -1)),
                                       attn(normed, cos, sin, 0, k, torch.zeros_like(k)),
                                       rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(_head_probs(attn, normed, cos, sin, 4), probs[:, :, :])
        with self.assertRaises(ValueError):
            forward_with_head(lm, embeds, len(lm.model.layers), 0)

    def test_loss_by_hand(self) -> None:
        import torch

        from demo.lesion_attention import attention_loss

        probs = torch.zeros(1, 6, 6)
        probs[0, 4] = torch.tensor([0.0, 0.5, 0.5, 0.0, 0.0, 0.0])  # on the lesion's tokens
        probs[0, 5] = torch.tensor([0.0, 0.1, 0.1, 0.0, 0.4, 0.4])  # elsewhere
        share = torch.tensor([0.0, 0.3, 0.3])  # image tokens at positions 0, 1, 2
        looks = [(0, [4], share, [0, 1, 2])]
        self.assertAlmostEqual(float(attention_loss(probs, looks)), np.log(2), places=6)
        both = [(0, [4, 5], share, [0, 1, 2])]
        self.assertAlmostEqual(float(attention_loss(probs, both)),
                               (np.log(2) + np.log(10)) / 2, places=5)
        self.assertEqual(float(attention_loss(probs, [])), 0.0)

    def test_language_step_trains_the_head_towards_the_lesion(self) -> None:
        if not HAVE:
            self.skipTest("the sample cache is missing")
        import torch

        import make_demo_model
        from demo import anatomy
        from demo.samples import Sampler
        from demo.train import Trainer, TrainOptions
        from unibiomed_ref import prompt as P
        from unibiomed_ref.config import ModelConfig
        from unibiomed_ref.model import UniBiomedModel
        from unibiomed_ref.sam2 import mask_decoder
        from unibiomed_ref.tokenizer import load_tokenizer

        checkpoint = make_demo_model.bundle_checkpoint(BUNDLE)
        config = ModelConfig.from_dict(checkpoint["config"])
        model = UniBiomedModel(config)
        model.load_state_dict(checkpoint["model"])
        tok = load_tokenizer("sentencepiece", os.path.join(BUNDLE, "tokenizer.model"),
                             list(P.ADDED_TOKENS))
        settings = make_demo_model.demo_settings(config, tok.token_to_id("</s>"))
        opts = TrainOptions(lesion_attention=1.0, language_pictures=3, language_volumes=0,
                            language_lesion_rate=1.0)
        self.addCleanup(setattr, mask_decoder, "_deconv2x2", mask_decoder._deconv2x2)
        sampler = Sampler([anatomy.ch2_subject(DATA)], P.ChatSettings(), False, 5)
        trainer = Trainer(model, tok, settings, sampler, opts)
        q = model.language_model.model.layers[1].self_attn.q_proj.weight
        before = q.detach().clone()
        stats = trainer.language_step(1e-3)
        self.assertNotIn("skipped", stats)
        # a cross-entropy over a row's keys: the shipped model's head (trained without the
        # term) puts about a thousandth of its attention on the lesion's tokens
        self.assertGreater(stats["attention"], 0.0)
        self.assertTrue(np.isfinite(stats["attention"]))
        self.assertFalse(torch.equal(before, q))


@unittest.skipUnless(HAVE, "models/default or the sample cache is missing")
class LesionDetection(unittest.TestCase):
    def test_groups_partition_the_cases(self) -> None:
        import re

        import torch

        import make_demo_model
        from demo import anatomy
        from demo.lesion_reading import lesion_detection
        from unibiomed_ref import prompt as P
        from unibiomed_ref.config import ModelConfig
        from unibiomed_ref.model import UniBiomedModel

        checkpoint = make_demo_model.bundle_checkpoint(BUNDLE)
        model = UniBiomedModel(ModelConfig.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["model"])
        settings = make_demo_model.demo_settings(model.config, 2)
        head = torch.nn.Linear(model.config.vision.hidden_size, 1).state_dict()
        figures = lesion_detection(model, head, settings, [anatomy.ch2_subject(DATA)],
                                   P.ChatSettings(), cases=5)
        counts = {k: int(re.search(r"\((\d+)\)$", k).group(1)) for k in figures}
        self.assertEqual(counts["top patch on the lesion, all (5)"], 5)
        kinds = [c for k, c in counts.items() if k.split(", ")[1].startswith("ch2 ")]
        sizes = [c for k, c in counts.items() if "pixels" in k]
        self.assertEqual(sum(kinds), 5)
        self.assertEqual(sum(sizes), 5)
        self.assertTrue(all(0.0 <= v <= 1.0 for v in figures.values()))


@unittest.skipUnless(HAVE, "models/default or the sample cache is missing")
class ReadingPhase(unittest.TestCase):
    """The reading phase (train --reading-minutes): the language model learns, the vision
    encoder and projector (their tokens without gradients) do not move."""

    def test_reading_step_trains_the_language_model_only(self) -> None:
        import torch

        import make_demo_model
        from demo import anatomy
        from demo.samples import Sampler
        from demo.train import Trainer, TrainOptions
        from unibiomed_ref import prompt as P
        from unibiomed_ref.config import ModelConfig
        from unibiomed_ref.model import UniBiomedModel
        from unibiomed_ref.sam2 import mask_decoder
        from unibiomed_ref.tokenizer import load_tokenizer

        checkpoint = make_demo_model.bundle_checkpoint(BUNDLE)
        model = UniBiomedModel(ModelConfig.from_dict(checkpoint["config"]))
        model.load_state_dict(checkpoint["model"])
        tok = load_tokenizer("sentencepiece", os.path.join(BUNDLE, "tokenizer.model"),
                             list(P.ADDED_TOKENS))
        settings = make_demo_model.demo_settings(model.config, tok.token_to_id("</s>"))
        opts = TrainOptions(reading_pictures=2, language_lesion_rate=1.0, language_text_turns=2)
        self.addCleanup(setattr, mask_decoder, "_deconv2x2", mask_decoder._deconv2x2)
        sampler = Sampler([anatomy.ch2_subject(DATA)], P.ChatSettings(), False, 6)
        trainer = Trainer(model, tok, settings, sampler, opts)
        vision = {n: p.detach().clone() for n, p in
                  model.export_parts()["vision_encoder"].named_parameters()}
        q = model.language_model.model.layers[0].self_attn.q_proj.weight
        before = q.detach().clone()
        stats = trainer.reading_step(1e-3)
        self.assertNotIn("skipped", stats)
        self.assertEqual(set(stats), {"ce", "distill", "seconds"})
        self.assertGreater(stats["ce"], 0.0)
        self.assertFalse(torch.equal(before, q))
        for name, p in model.export_parts()["vision_encoder"].named_parameters():
            self.assertIsNone(p.grad, name)
            self.assertTrue(torch.equal(vision[name], p.detach()), name)


class TokenPositions(unittest.TestCase):
    """The token-position term's targets (train --token-position)."""

    def test_columns_and_rows_row_major(self) -> None:
        from demo.token_labels import token_positions

        at = token_positions(8)
        self.assertEqual(tuple(at.shape), (64, 2))
        self.assertEqual(at[0].tolist(), [0.0, 0.0])  # top left
        self.assertEqual(at[7].tolist(), [1.0, 0.0])  # top right: the column moves first
        self.assertEqual(at[8, 0], 0.0)
        self.assertAlmostEqual(float(at[8, 1]), 1.0 / 7.0, places=6)
        self.assertEqual(at[63].tolist(), [1.0, 1.0])
        self.assertEqual(token_positions(1).tolist(), [[0.0, 0.0]])


class SideProbe(unittest.TestCase):
    """The linear side probe of make_demo_model.py reading."""

    def test_separable_and_uninformative_features(self) -> None:
        from demo.lesion_reading import _side_probe

        rng = np.random.default_rng(8)

        def rows(n: int, informative: bool):
            out = []
            for _ in range(n):
                left = bool(rng.random() < 0.5)
                f = rng.normal(size=16).astype(np.float32)
                if informative:
                    f[3] += 4.0 if left else -4.0
                out.append((f, left))
            return out

        self.assertEqual(_side_probe(rows(200, True), rows(100, True)), 1.0)
        self.assertLess(_side_probe(rows(200, False), rows(400, False)), 0.65)
