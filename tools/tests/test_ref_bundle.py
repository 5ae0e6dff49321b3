"""Exports, bundles and goldens: the TorchScript parts equal the reference modules, the committed
tiny bundle reproduces its goldens, and the full-size model matches the released layout table.

    /usr/bin/python3 -m unittest discover -s tools/tests -t .

(That the tiny bundle regenerates byte for byte is checked by ``tools/make_tiny_bundle.py
--check``, a ctest of its own because it retrains the tiny model.)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import unittest
from typing import Dict, Tuple
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torch import nn

TOOLS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from unibiomed_ref import bundle as B  # noqa: E402
from unibiomed_ref import prompt as P  # noqa: E402
from unibiomed_ref.checkpoint import check_model_against_table  # noqa: E402
from unibiomed_ref.config import full_config, tiny_config  # noqa: E402
from unibiomed_ref.model import UniBiomedModel, build_model  # noqa: E402
from unibiomed_ref.pipeline import interpret_image  # noqa: E402
from unibiomed_ref.pipeline_video import interpret_frames  # noqa: E402
from unibiomed_ref.safetensors import load_file  # noqa: E402
from unibiomed_ref.settings import InferenceSettings, LanguageShape  # noqa: E402
from unibiomed_ref.prompt import ChatSettings  # noqa: E402

TINY_BUNDLE = os.path.join(ROOT, "tests", "data", "tiny-bundle")
TINY_GOLDEN = os.path.join(ROOT, "tests", "data", "tiny-golden")


def assert_close(test: unittest.TestCase, name: str, got: torch.Tensor, ref: torch.Tensor,
                 rtol: float = 1e-5) -> None:
    """Equal to ``rtol`` relative to the reference's largest magnitude (elementwise relative
    error is meaningless for values that cross zero)."""
    test.assertEqual(tuple(got.shape), tuple(ref.shape), name)
    scale = float(ref.abs().max()) if ref.numel() else 0.0
    err = float((got.float() - ref.float()).abs().max()) if ref.numel() else 0.0
    test.assertLessEqual(err, rtol * max(scale, 1e-6), f"{name}: max error {err}, scale {scale}")


class TestExportEqualsReference(unittest.TestCase):
    """Every exported method, loaded back with torch.jit.load, against the eager module."""

    @classmethod
    def setUpClass(cls) -> None:
        torch.set_num_threads(1)
        cls.tmp = tempfile.mkdtemp(prefix="bundle-test-")
        cls.model = build_model(tiny_config(), seed=7)
        with torch.no_grad():  # move every weight off its initial value (zeros, ones)
            gen = torch.Generator().manual_seed(1)
            for p in cls.model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        cfg = cls.model.config
        settings = InferenceSettings(
            chat=ChatSettings(), language=LanguageShape(2, 2, 16, 64, cfg.language.vocab_size),
            eos_token_ids=(2,), tile_size=224, tokens_per_tile=64, sam_image_size=256,
            sam_low_res_size=64, language_embed_dim=32)
        tok = os.path.join(TINY_BUNDLE, "tokenizer.model")
        special = {t: 3 + i for i, t in enumerate(P.ADDED_TOKENS)}
        cls.bundle = os.path.join(cls.tmp, "b")
        B.write_bundle(cls.bundle, cls.model.export_parts(), settings, "sentencepiece", [tok],
                       special, cfg.to_dict(), torch.float32, "test", "test bundle",
                       {"kind": "random", "seed": 7})
        cls.eager = cls.model.export_parts()
        manifest = B.read_manifest(cls.bundle)
        cls.loaded = {k: torch.jit.load(os.path.join(cls.bundle, manifest["files"][k]["path"]))
                      for k in B.PART_FILES}

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_vision_and_grounding(self) -> None:
        x = torch.randn(2, 3, 224, 224)
        assert_close(self, "vision", self.loaded["vision_encoder"](x), self.eager["vision_encoder"](x))
        h = torch.randn(3, 64)
        assert_close(self, "grounding", self.loaded["grounding_projector"](h),
                     self.eager["grounding_projector"](h))

    def test_language_prefill_and_decode(self) -> None:
        ids = torch.randint(0, 512, (1, 9))
        shape = (2, 1, 2, 16, 16)
        caches = [[torch.zeros(shape), torch.zeros(shape)] for _ in range(2)]
        outs = []
        for mod, (k, v) in zip((self.loaded["language_decoder"], self.eager["language_decoder"]),
                               caches):
            e = mod.embed(ids)
            prefill = mod(e[:, :8], 0, k, v, torch.tensor([7]))
            step = mod(e[:, 8:], 8, k, v, torch.tensor([0]))
            outs.append((e, prefill, step, k, v))
        (e1, p1, s1, k1, v1), (e2, p2, s2, k2, v2) = outs
        assert_close(self, "embed", e1, e2)
        for i, name in enumerate(("logits", "hidden")):
            assert_close(self, f"prefill {name}", p1[i], p2[i])
            assert_close(self, f"decode {name}", s1[i], s2[i])
        assert_close(self, "k cache", k1, k2)
        assert_close(self, "v cache", v1, v2)

    def test_sam_image_and_decoder(self) -> None:
        img = torch.randn(2, 3, 256, 256)
        enc1, enc2 = self.loaded["sam_image_encoder"](img), self.eager["sam_image_encoder"](img)
        for name, a, b in zip(("s0", "s1", "embed", "pos"), enc1, enc2):
            assert_close(self, name, a, b)
        lang = torch.randn(2, 32)
        embed = self.eager["sam_tracker"].no_memory(enc2[2])
        dec1 = self.loaded["sam_mask_decoder"](embed, enc2[0], enc2[1], lang)
        dec2 = self.eager["sam_mask_decoder"](embed, enc2[0], enc2[1], lang)
        for name, a, b in zip(("masks", "iou", "object", "tokens"), dec1, dec2):
            assert_close(self, name, a, b)

    def test_tracker_methods(self) -> None:
        t1, t2 = self.loaded["sam_tracker"], self.eager["sam_tracker"]
        s0, s1, embed, pos = self.eager["sam_image_encoder"](torch.randn(1, 3, 256, 256))
        assert_close(self, "no_memory", t1.no_memory(embed), t2.no_memory(embed))
        dec = t2.decode_tracked(embed, s0, s1)
        for name, a, b in zip(("masks", "iou", "obj", "tok"), t1.decode_tracked(embed, s0, s1), dec):
            assert_close(self, f"decode_tracked {name}", a, b)
        masks, iou, obj, tokens = dec
        for name, a, b in zip(("low", "high"), t1.best_mask(masks, iou, obj),
                              t2.best_mask(masks, iou, obj)):
            assert_close(self, f"best_mask {name}", a, b)
        assert_close(self, "object_pointer", t1.object_pointer(tokens, iou, obj),
                     t2.object_pointer(tokens, iou, obj))
        _low, high = t2.best_mask(masks, iou, obj)
        for name, a, b in zip(("features", "pos"), t1.encode_memory(embed, high, obj, False),
                              t2.encode_memory(embed, high, obj, False)):
            assert_close(self, f"encode_memory {name}", a, b)
        mem = torch.stack([t2.encode_memory(embed, high, obj, True)[0]] * 3)
        tpos = torch.tensor([6, 0, 1])
        ptrs = torch.stack([t2.object_pointer(tokens, iou, obj)] * 2)
        assert_close(self, "condition", t1.condition(embed, pos, mem, tpos, ptrs),
                     t2.condition(embed, pos, mem, tpos, ptrs))

    def test_exports_run_in_bf16(self) -> None:
        vision = torch.jit.load(os.path.join(self.bundle, "vision_encoder.pt")).to(torch.bfloat16)
        x = torch.randn(1, 3, 224, 224)
        got = vision(x.to(torch.bfloat16)).float()
        ref = self.eager["vision_encoder"](x)
        cos = torch.nn.functional.cosine_similarity(got.flatten(), ref.flatten(), dim=0)
        self.assertGreater(float(cos), 0.99)
        sam = torch.jit.load(os.path.join(self.bundle, "sam_image_encoder.pt")).to(torch.bfloat16)
        out = sam(torch.randn(1, 3, 256, 256).to(torch.bfloat16))
        self.assertEqual(out[2].dtype, torch.bfloat16)
        self.assertTrue(bool(torch.isfinite(out[2].float()).all()))

    def test_manifest_checks(self) -> None:
        m = B.read_manifest(self.bundle)
        self.assertEqual(m["format_version"], B.FORMAT_VERSION)
        self.assertEqual(m["tokenizer"]["special_tokens"]["[SEG]"], 3)
        bad = os.path.join(self.tmp, "bad")
        shutil.copytree(self.bundle, bad)
        with open(os.path.join(bad, "grounding_projector.pt"), "ab") as f:
            f.write(b"x")
        with self.assertRaisesRegex(ValueError, "grounding_projector.pt.*manifest says"):
            B.read_manifest(bad)
        os.remove(os.path.join(bad, "vision_encoder.pt"))
        with self.assertRaisesRegex(FileNotFoundError, "vision_encoder file vision_encoder.pt"):
            B.read_manifest(bad)
        with open(os.path.join(bad, "manifest.json"), "w") as f:
            json.dump({"format": B.FORMAT, "format_version": 99, "files": {}}, f)
        with self.assertRaisesRegex(ValueError, "format_version 99"):
            B.read_manifest(bad)


class TestTinyBundleGoldens(unittest.TestCase):
    """The committed bundle, run by the reference pipeline, gives the committed goldens."""

    @classmethod
    def setUpClass(cls) -> None:
        torch.set_num_threads(1)
        cls.parts, cls.settings, cls.tok, cls.manifest = B.load_bundle(TINY_BUNDLE)
        with open(os.path.join(TINY_GOLDEN, "cases.json"), encoding="utf-8") as f:
            cls.cases = json.load(f)["cases"]

    def test_goldens_exercise_seg_in_2d_and_3d(self) -> None:
        kinds = {c["kind"] for c in self.cases if "[SEG]" in c["text"]}
        self.assertEqual(kinds, {"image", "frames"})
        self.assertTrue(any(len(c.get("masks", [])) > 0 for c in self.cases))

    def test_image_cases(self) -> None:
        for case in (c for c in self.cases if c["kind"] == "image"):
            with self.subTest(case=case["name"]):
                rgb = np.asarray(Image.open(os.path.join(TINY_GOLDEN, case["image"])).convert("RGB"))
                out = interpret_image(self.parts, self.tok, self.settings, rgb, case["task"],
                                      case["target"], case["question"])
                gold = load_file(os.path.join(TINY_GOLDEN, case["tensors"]))
                self.assertEqual(out.generation.prompt_ids, gold["prompt_ids"].tolist())
                self.assertEqual(out.generation.output_ids, case["output_ids"])
                self.assertEqual(out.generation.text, case["text"])
                assert_close(self, "language", out.language_embeddings, gold["language_embeddings"])
                assert_close(self, "mask logits", out.mask_logits, gold["mask_logits"])
                masks = torch.from_numpy(out.masks.astype(np.uint8))
                differ = int((masks != gold["masks"]).sum())
                self.assertLessEqual(differ, 0, f"{differ} mask pixels differ")

    def test_volume_cases(self) -> None:
        frames_cache: Dict[str, torch.Tensor] = {}
        for case in (c for c in self.cases if c["kind"] == "frames"):
            with self.subTest(case=case["name"]):
                if case["frames"] not in frames_cache:
                    frames_cache[case["frames"]] = load_file(
                        os.path.join(TINY_GOLDEN, case["frames"]))["frames"]
                grey = frames_cache[case["frames"]].numpy()
                frames = [np.repeat(g[:, :, None], 3, axis=2) for g in grey]
                out = interpret_frames(self.parts, self.tok, self.settings, frames,
                                       case["task"], case["target"],
                                       llm_frames=case["llm_frames"], prompt_frames="seen")
                gold = load_file(os.path.join(TINY_GOLDEN, case["tensors"]))
                self.assertEqual(out.generation.output_ids, case["output_ids"])
                assert_close(self, "low_res", out.low_res, gold["low_res"])
                self.assertTrue(np.array_equal(out.masks, gold["masks"].numpy().astype(bool)))
                # every frame prompted: the seen frames decode as they did as conditioning
                # frames; the frame rule of the language side is unchanged
                every = interpret_frames(self.parts, self.tok, self.settings, frames,
                                         case["task"], case["target"],
                                         llm_frames=case["llm_frames"], prompt_frames="every")
                self.assertEqual(every.llm_frames, out.llm_frames)
                for f in out.llm_frames:
                    assert_close(self, f"low_res {f}", every.low_res[:, f], gold["low_res"][:, f])
                with self.assertRaises(ValueError):
                    interpret_frames(self.parts, self.tok, self.settings, frames[:2],
                                     case["task"], case["target"], prompt_frames="all")


class TestFullSizeLayout(unittest.TestCase):
    def test_reference_model_matches_released_layout(self) -> None:
        """The whole model at the real sizes (weights left uninitialised) has exactly the
        checkpoint's names and shapes, as written down in data/unibiomed_checkpoint_layout.tsv."""
        noop = lambda self: None  # noqa: E731
        with mock.patch.object(nn.Linear, "reset_parameters", noop), \
                mock.patch.object(nn.modules.conv._ConvNd, "reset_parameters", noop), \
                mock.patch.object(nn.Embedding, "reset_parameters", noop), \
                mock.patch.object(nn.init, "trunc_normal_", lambda t, *a, **k: t):
            model = UniBiomedModel(full_config())
        check_model_against_table(model)
        self.assertEqual(sum(p.numel() for p in model.state_dict().values()), 1163665714)


if __name__ == "__main__":
    unittest.main()
