"""Tests for the safetensors reader/writer, the checkpoint loader and the layout table."""
from __future__ import annotations

import json
import os
import struct
import sys
import tempfile
import unittest
from typing import Dict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from unibiomed_ref import safetensors as st  # noqa: E402
from unibiomed_ref import checkpoint as ck  # noqa: E402
from unibiomed_ref import layout as lay  # noqa: E402


def _all_dtypes() -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, generator=g)
    return {
        "f32": x,
        "f16": x.half(),
        "bf16": (x * 1e3).bfloat16(),
        "f64": x.double(),
        "i64": torch.arange(-6, 6, dtype=torch.int64).reshape(2, 6),
        "i32": torch.tensor([[-2 ** 31, 2 ** 31 - 1]], dtype=torch.int32),
        "i16": torch.tensor([-7, 7], dtype=torch.int16),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }


class _Block(torch.nn.Module):
    """Has a ``gamma`` layer scale, like SAM2's CXBlock."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
        self.gamma = torch.nn.Parameter(torch.ones(3))


def _small_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(2, 4), _Block())


def _ckpt_of(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {ck.module_to_checkpoint_name(k): v.detach().clone().bfloat16() for k, v in model.state_dict().items()}


class SafetensorsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_round_trip_all_dtypes(self) -> None:
        ts = _all_dtypes()
        path = os.path.join(self.dir, "a.safetensors")
        st.save_file(ts, path, metadata={"format": "pt"})
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
        self.assertEqual(n % 8, 0)
        self.assertEqual(st.read_header(path)["__metadata__"], {"format": "pt"})
        back = st.load_file(path)
        self.assertEqual(set(back), set(ts))
        for k, t in ts.items():
            self.assertEqual(back[k].dtype, t.dtype, k)
            self.assertEqual(tuple(back[k].shape), tuple(t.shape), k)
            if t.dtype == torch.bfloat16:  # bit-exact
                self.assertTrue(torch.equal(back[k].view(torch.int16), t.view(torch.int16)))
            else:
                self.assertTrue(torch.equal(back[k], t), k)
        sub = st.load_file(path, ["bf16", "u8"])
        self.assertEqual(set(sub), {"bf16", "u8"})
        with self.assertRaises(KeyError):
            st.load_file(path, ["nope"])

    def _write_bytes(self, data: bytes, name: str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def _write_raw(self, header: dict, data: bytes, name: str = "bad.safetensors") -> str:
        raw = json.dumps(header).encode()
        return self._write_bytes(struct.pack("<Q", len(raw)) + raw + data, name)

    def test_header_errors(self) -> None:
        good = os.path.join(self.dir, "good.safetensors")
        st.save_file({"w": torch.ones(4, 4), "b": torch.ones(4)}, good)
        size = os.path.getsize(good)
        trunc = os.path.join(self.dir, "trunc.safetensors")
        with open(good, "rb") as f, open(trunc, "wb") as g:
            g.write(f.read(size - 3))
        with self.assertRaisesRegex(st.SafetensorsError, r"trunc\.safetensors.*'w'.*past the end"):
            st.read_header(trunc)
        with self.assertRaisesRegex(st.SafetensorsError, r"tiny.*too short"):
            st.read_header(self._write_bytes(b"\x01\x02", "tiny.safetensors"))
        p = self._write_bytes(struct.pack("<Q", 1 << 40) + b"{}", "huge.safetensors")
        with self.assertRaisesRegex(st.SafetensorsError, "huge.*header length"):
            st.read_header(p)
        p = self._write_bytes(struct.pack("<Q", 5) + b"{nope" + b"\0" * 8, "json.safetensors")
        with self.assertRaisesRegex(st.SafetensorsError, "json.safetensors.*JSON"):
            st.read_header(p)
        p = self._write_raw({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
        with self.assertRaisesRegex(st.SafetensorsError, "bad.safetensors.*'b' overlaps tensor 'a'"):
            st.read_header(p)
        p = self._write_raw({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8)
        with self.assertRaisesRegex(st.SafetensorsError, r"'a'.*8 bytes.*needs 12"):
            st.read_header(p)
        p = self._write_raw({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
        with self.assertRaisesRegex(st.SafetensorsError, "gap of 4 bytes before tensor 'a'"):
            st.read_header(p)
        p = self._write_raw({"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
        with self.assertRaisesRegex(st.SafetensorsError, "'a'.*unsupported dtype"):
            st.read_header(p)
        p = self._write_raw({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 12)
        with self.assertRaisesRegex(st.SafetensorsError, "data area has 12 bytes"):
            st.read_header(p)

    def test_sharded_round_trip(self) -> None:
        ts = {f"layer.{i}.w": torch.randn(16, 16).bfloat16() for i in range(5)}
        ts["emb"] = torch.randn(64, 16)
        paths = st.save_sharded(ts, self.dir, max_shard_bytes=1200)
        self.assertGreater(len(paths), 2)
        meta, wm = st.read_index(os.path.join(self.dir, st.INDEX_NAME))
        self.assertEqual(set(wm), set(ts))
        self.assertEqual(meta["total_size"], sum(t.numel() * t.element_size() for t in ts.values()))
        self.assertEqual(sorted(st.resolve_files(self.dir)), sorted(paths))
        found = st.read_headers(self.dir)
        self.assertEqual(set(found), set(ts))
        for name, (path, _) in found.items():
            t = st.load_file(path, [name])[name]
            self.assertTrue(torch.equal(t.float(), ts[name].float()))
        # an index pointing a tensor at the wrong shard is caught
        wm["emb"] = os.path.basename(paths[0]) if wm["emb"] != os.path.basename(paths[0]) else os.path.basename(paths[1])
        st.write_index(self.dir, wm, 0)
        with self.assertRaisesRegex(st.SafetensorsError, "disagree.*emb"):
            st.read_headers(self.dir)


class LoaderTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def test_load_with_gamma_rename(self) -> None:
        src = _small_model()
        torch.nn.init.normal_(src[1].gamma)
        st.save_file(_ckpt_of(src), os.path.join(self.dir, st.SINGLE_NAME))
        self.assertIn("1.g_weight", st.read_header(os.path.join(self.dir, st.SINGLE_NAME)))
        dst = _small_model()
        ck.load_checkpoint(dst, self.dir)
        for k, v in src.state_dict().items():
            self.assertEqual(dst.state_dict()[k].dtype, torch.float32)
            self.assertTrue(torch.equal(dst.state_dict()[k], v.bfloat16().float()), k)
        self.assertIn(("1.g_weight", (3,)), ck.expected_layout(dst))

    def test_loader_reports_every_problem_before_reading(self) -> None:
        ts = _ckpt_of(_small_model())
        del ts["0.bias"]
        ts["0.weight"] = torch.zeros(5, 2, dtype=torch.bfloat16)
        ts["extra.weight"] = torch.zeros(1, dtype=torch.bfloat16)
        ts["1.gamma"] = ts.pop("1.g_weight")  # un-renamed name: unexpected + missing
        path = os.path.join(self.dir, "x.safetensors")
        st.save_file(ts, path)
        dst = _small_model()
        before = {k: v.clone() for k, v in dst.state_dict().items()}
        with self.assertRaises(ck.CheckpointMismatch) as cm:
            ck.load_checkpoint(dst, path)
        msg = str(cm.exception)
        self.assertIn("missing: 0.bias (expected shape [4])", msg)
        self.assertIn("missing: 1.g_weight", msg)
        self.assertIn("unexpected: extra.weight", msg)
        self.assertIn("unexpected: 1.gamma", msg)
        self.assertIn("shape mismatch: 0.weight: expected [4, 2], found [5, 2]", msg)
        for k, v in dst.state_dict().items():  # nothing was copied
            self.assertTrue(torch.equal(v, before[k]))

    def test_problem_list_is_capped(self) -> None:
        exp = {f"p{i}": (1,) for i in range(100)}
        probs = ck.diff_layouts(exp, {})
        self.assertEqual(len(probs), 100)
        text = ck._format_problems("t", probs)
        self.assertIn("100 problem(s)", text)
        self.assertIn(f"... and {100 - ck.MAX_LISTED} more", text)

    def test_synthetic_checkpoint_loads(self) -> None:
        model = _small_model()
        rows = [lay.LayoutRow(n, "BF16", s, "test") for n, s in ck.expected_layout(model)]
        self.assertEqual(ck.compare_layouts(ck.expected_layout(model), rows), [])
        one = os.path.join(self.dir, "one")
        ck.write_synthetic_checkpoint(rows, one, seed=3)
        self.assertTrue(os.path.isfile(os.path.join(one, st.SINGLE_NAME)))
        sharded = os.path.join(self.dir, "sharded")
        paths = ck.write_synthetic_checkpoint(rows, sharded, seed=3, max_shard_bytes=20)
        self.assertGreater(len(paths), 1)
        self.assertTrue(os.path.isfile(os.path.join(sharded, st.INDEX_NAME)))
        self.assertEqual(ck.check_folder(sharded, rows), [])
        a, b = _small_model(), _small_model()
        ck.load_checkpoint(a, one, layout=rows)
        ck.load_checkpoint(b, sharded)
        for k in a.state_dict():
            self.assertTrue(torch.equal(a.state_dict()[k], b.state_dict()[k]), k)
        bad_rows = rows[1:]
        self.assertTrue(ck.check_folder(one, bad_rows)[0].startswith("unexpected: "))


class LayoutTableTest(unittest.TestCase):
    def test_table_file_matches_generator(self) -> None:
        rows = lay.layout_rows()
        self.assertEqual(lay.read_tsv(lay.LAYOUT_TSV), rows)
        n, nbytes = lay.totals(rows)
        self.assertEqual(n, 1_163_665_714)
        self.assertEqual(nbytes, 2 * n)

    def test_known_sizes(self) -> None:
        rows = {r.name: r.shape for r in lay.layout_rows()}
        self.assertEqual(rows["language_model.model.embed_tokens.weight"], (151679, 896))
        self.assertEqual(rows["language_model.lm_head.weight"], (151679, 896))
        self.assertEqual(rows["vision_model.embeddings.position_embedding"], (1, 1025, 1024))
        self.assertEqual(rows["grounding_encoder.sam2_model.memory_encoder.fuser.layers.1.g_weight"], (256,))
        self.assertEqual(rows["grounding_encoder.sam2_model.maskmem_tpos_enc"], (7, 1, 1, 64))
        sam = sum(lay.row_numel(r) for r in lay.layout_rows() if r.name.startswith("grounding_encoder."))
        self.assertEqual(sam, 224_430_386)  # SAM2 Hiera-L: "224.4M" in the SAM2 README


if __name__ == "__main__":
    unittest.main()
