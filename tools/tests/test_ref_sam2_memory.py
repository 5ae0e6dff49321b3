"""Tests of the SAM2 memory side (`unibiomed_ref.sam2.memory`, `export_memory`, `video`) at a
tiny config: shapes, TorchScript == eager, rotary == complex formulation, memory-bank
selection on hand-checked cases, and a small end-to-end video.

Run: /usr/bin/python3 -m unittest discover -s tools/tests -t .
"""

from __future__ import annotations

import dataclasses
import os
import sys
import unittest

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from unibiomed_ref.sam2.config import Sam2Config  # noqa: E402
from unibiomed_ref.sam2.export_image import SamImageEncoder, SamMaskDecoder  # noqa: E402
from unibiomed_ref.sam2.export_memory import SamTracker  # noqa: E402
from unibiomed_ref.sam2.memory import apply_rope, apply_rope_complex, axial_rope_cos_sin  # noqa: E402
from unibiomed_ref.sam2.model import Sam2Model  # noqa: E402
from unibiomed_ref.sam2 import video as V  # noqa: E402

# image 64 -> h = w = 4 (16 tokens), low-res masks 16x16; C = 32, mem_dim = 16 (2 tokens/pointer)
TINY = dataclasses.replace(
    Sam2Config(), image_size=64, trunk_embed_dim=8, trunk_num_heads=1, trunk_stages=(1, 1, 2, 1),
    trunk_global_att_blocks=(3,), trunk_window_spec=(4, 2, 2, 1), trunk_window_pos_embed_bkg_spatial_size=(2, 2),
    neck_d_model=32, neck_backbone_channel_list=(64, 32, 16, 8), neck_pos_num_pos_feats=32,
    prompt_mask_in_chans=4, decoder_transformer_mlp_dim=64, decoder_iou_head_hidden_dim=32,
    memory_attention_d_model=32, memory_attention_dim_feedforward=64, memory_attention_num_layers=2,
    memory_attention_cross_kv_in_dim=16, memory_encoder_in_dim=32, memory_encoder_out_dim=16,
    memory_encoder_pos_num_pos_feats=16, memory_encoder_downsampler_embed_dim=32, memory_encoder_cx_dim=32)
C, MD, S, H = 32, 16, 64, 4


def _model() -> Sam2Model:
    torch.manual_seed(0)
    m = Sam2Model(TINY).eval()
    with torch.no_grad():  # make the layer scale and memory constants matter
        for n, p in m.named_parameters():
            if n.endswith("gamma"):
                p.normal_(0.0, 0.5)
            if "tpos" in n or "no_obj_ptr" in n:
                p.normal_(0.0, 0.5)
    return m


class Sam2MemoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.model = _model()
        cls.tracker = SamTracker(cls.model)
        cls.scripted = torch.jit.script(cls.tracker)
        g = torch.Generator().manual_seed(1)
        cls.embed = torch.randn(2, C, H, H, generator=g)
        cls.pos = torch.randn(1, C, H, H, generator=g)
        cls.masks = torch.randn(2, 3, 4 * H, 4 * H, generator=g) * 4
        cls.iou = torch.rand(2, 3, generator=g)
        cls.obj = torch.tensor([[1.5], [-0.5]])
        cls.tokens = torch.randn(2, 3, C, generator=g)
        cls.s0 = torch.randn(2, C // 8, 4 * H, 4 * H, generator=g)
        cls.s1 = torch.randn(2, C // 4, 2 * H, 2 * H, generator=g)
        cls.mem = torch.randn(3, 2, MD, H, H, generator=g)
        cls.tpos = torch.tensor([6, 2, 0])
        cls.ptrs = torch.randn(4, 2, C, generator=g)

    def assertClose(self, a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-6) -> None:
        self.assertEqual(a.shape, b.shape)
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)

    # ---- shapes and scripted == eager ---------------------------------------------------
    def test_methods_shapes_and_script(self) -> None:
        t, s = self.tracker, self.scripted
        with torch.no_grad():
            self.assertClose(s.no_memory(self.embed), t.no_memory(self.embed))
            low, high = t.best_mask(self.masks, self.iou, self.obj)
            self.assertEqual(low.shape, (2, 1, 4 * H, 4 * H))
            self.assertEqual(high.shape, (2, 1, S, S))
            for a, b in zip(s.best_mask(self.masks, self.iou, self.obj), (low, high)):
                self.assertClose(a, b)
            ptr = t.object_pointer(self.tokens, self.iou, self.obj)
            self.assertEqual(ptr.shape, (2, C))
            self.assertClose(s.object_pointer(self.tokens, self.iou, self.obj), ptr)
            feats, mpos = t.encode_memory(self.embed, high, self.obj, False)
            self.assertEqual(feats.shape, (2, MD, H, H))
            self.assertEqual(mpos.shape, (2, MD, H, H))
            for a, b in zip(s.encode_memory(self.embed, high, self.obj, False), (feats, mpos)):
                self.assertClose(a, b)
            for p in (self.ptrs, self.ptrs[:0]):
                out = t.condition(self.embed, self.pos, self.mem, self.tpos, p)
                self.assertEqual(out.shape, (2, C, H, H))
                self.assertClose(s.condition(self.embed, self.pos, self.mem, self.tpos, p), out)
            dec = t.decode_tracked(self.embed, self.s0, self.s1)
            self.assertEqual([tuple(x.shape) for x in dec],
                             [(2, 3, 4 * H, 4 * H), (2, 3), (2, 1), (2, 3, C)])
            for a, b in zip(s.decode_tracked(self.embed, self.s0, self.s1), dec):
                self.assertClose(a, b)

    def test_object_pointer_semantics(self) -> None:
        m = self.model
        with torch.no_grad():
            ptr = self.tracker.object_pointer(self.tokens, self.iou, self.obj)
            best = self.iou.argmax(-1)
            self.assertClose(ptr[0], m.obj_ptr_proj(self.tokens[0, best[0]]))  # object present
            self.assertClose(ptr[1], m.no_obj_ptr[0])  # score <= 0: fixed no-object pointer

    def test_condition_matches_seq_first_layout(self) -> None:
        """`condition` == upstream's seq-first assembly (memories then pointers split into
        C/mem_dim tokens per pointer with zero pos; tpos per frame) fed to memory_attention."""
        m, b, n, p = self.model, 2, 3, 4
        with torch.no_grad():
            pos_mem = self.tracker.encode_memory(self.embed, torch.zeros(b, 1, S, S), self.obj, False)[1]
            mem_l, pos_l = [], []
            for i in range(n):
                mem_l.append(self.mem[i].flatten(2).permute(2, 0, 1))
                pos_l.append(pos_mem.flatten(2).permute(2, 0, 1) + m.maskmem_tpos_enc[int(self.tpos[i])])
            ptr = self.ptrs.reshape(p, b, C // MD, MD).permute(0, 2, 1, 3).flatten(0, 1)
            memory = torch.cat(mem_l + [ptr]).transpose(0, 1)
            mpos = torch.cat(pos_l + [torch.zeros_like(ptr)]).transpose(0, 1)
            curr = self.embed.flatten(2).transpose(1, 2)
            cpos = self.pos.flatten(2).transpose(1, 2).expand(b, -1, -1)
            ref = m.memory_attention(curr, cpos, memory, mpos, H, H, ptr.shape[0])
            ref = ref.transpose(1, 2).reshape(b, C, H, H)
            self.assertClose(self.tracker.condition(self.embed, self.pos, self.mem, self.tpos, self.ptrs), ref)

    # ---- rotary ----------------------------------------------------------------------------
    def test_rope_equals_complex(self) -> None:
        g = torch.Generator().manual_seed(3)
        for h, w, r in ((4, 4, 1), (4, 4, 3), (3, 5, 2)):
            x = torch.randn(2, 1, r * h * w, 32, generator=g)
            cos, sin = axial_rope_cos_sin(h, w, 32, 10000.0, x.device)
            self.assertClose(apply_rope(x, cos, sin), apply_rope_complex(x, h, w, 10000.0))
        scripted = torch.jit.script(apply_rope)
        self.assertClose(scripted(x, cos, sin), apply_rope(x, cos, sin))

    def test_rope_excludes_pointer_tokens(self) -> None:
        """Cross-attention keys: the last num_k_exclude_rope keys are not rotated."""
        attn = self.model.memory_attention.layers[0].cross_attn_image
        g = torch.Generator().manual_seed(4)
        q = torch.randn(1, H * H, C, generator=g)
        k = torch.randn(1, 2 * H * H + 6, MD, generator=g)
        with torch.no_grad():
            out = attn(q, k, k, H, H, 6)
            qh = apply_rope_complex(attn.q_proj(q)[:, None], H, H, 10000.0)
            kh = attn.k_proj(k)[:, None]
            kh = torch.cat((apply_rope_complex(kh[:, :, :-6], H, H, 10000.0), kh[:, :, -6:]), dim=2)
            a = torch.softmax(qh @ kh.transpose(-1, -2) / C ** 0.5, -1) @ attn.v_proj(k)[:, None]
            self.assertClose(out, attn.out_proj(a[:, 0]), rtol=1e-4, atol=1e-5)

    # ---- memory selection ------------------------------------------------------------------
    def test_select_memory_forward(self) -> None:
        cond = [0, 1, 2, 3, 4]
        s = V.select_memory(5, cond, [], 7, 1, 10)
        self.assertEqual((s.mem_frames, s.tpos_index, s.ptr_frames), (cond, [6] * 5, cond))
        s = V.select_memory(9, cond, [5, 6, 7, 8], 7, 1, 10)
        self.assertEqual(s.mem_frames, [0, 1, 2, 3, 4, 5, 6, 7, 8])
        self.assertEqual(s.tpos_index, [6, 6, 6, 6, 6, 3, 2, 1, 0])
        self.assertEqual(s.ptr_frames, [0, 1, 2, 3, 4, 8, 7, 6, 5])
        s = V.select_memory(20, [0], list(range(1, 20)), 7, 1, 30)
        self.assertEqual(s.mem_frames, [0, 14, 15, 16, 17, 18, 19])
        self.assertEqual(s.tpos_index, [6, 5, 4, 3, 2, 1, 0])
        self.assertEqual(s.ptr_frames, [0] + list(range(19, 4, -1)))  # 15 nearest (max 16 - 1)

    def test_select_memory_backward_and_several_cond(self) -> None:
        s = V.select_memory(4, [5], [6, 7, 8, 9], 7, -1, 10)  # backward after the forward pass
        self.assertEqual((s.mem_frames, s.tpos_index), ([5, 9, 8, 7, 6], [6, 4, 3, 2, 1]))
        self.assertEqual(s.ptr_frames, [5, 6, 7, 8, 9])
        s = V.select_memory(4, [2, 6], [3], 7, 1, 10)  # future cond frame: memory yes, pointer no
        self.assertEqual((s.mem_frames, s.tpos_index, s.ptr_frames), ([2, 6, 3], [6, 6, 0], [2, 3]))
        s = V.select_memory(5, [0, 3, 8], [4], 7, 1, 10, max_cond_frames_in_attn=2)
        self.assertEqual((s.mem_frames, s.tpos_index), ([3, 8, 0, 4], [6, 6, 4, 0]))
        self.assertEqual(s.ptr_frames, [3, 4, 0])
        self.assertEqual(V.release_cond_frames(3), [0, 1, 2])
        self.assertEqual(V.release_cond_frames(40), [0, 1, 2, 3, 4])

    # ---- end to end --------------------------------------------------------------------------
    def test_video_end_to_end(self) -> None:
        m = self.model
        enc, dec = SamImageEncoder(m), SamMaskDecoder(m)
        g = torch.Generator().manual_seed(5)
        frames = torch.randn(6, 3, S, S, generator=g)
        lang = torch.randn(C, generator=g) * 3
        with torch.no_grad():
            res = V.run_video(enc, dec, self.tracker, frames, lang, cond_frames=[2, 3], orig_size=(50, 70))
            self.assertEqual(res.order, [2, 3, 4, 5, 1, 0])
            self.assertEqual(res.low_res.shape, (6, 1, 4 * H, 4 * H))
            self.assertEqual(res.masks.shape, (6, 50, 70))
            for f in (2, 3):  # conditioning frames == 2-D decode of the frame
                masks, iou, obj, _tok, _e = V.decode_cond_frame(enc, dec, self.tracker, frames[f:f + 1], lang)
                self.assertClose(res.low_res[f:f + 1], self.tracker.best_mask(masks, iou, obj)[0])
            ref = F.interpolate(F.interpolate(res.low_res, size=(S, S), mode="bilinear", align_corners=False),
                                size=(50, 70), mode="bilinear", align_corners=False)[:, 0]
            self.assertTrue(torch.equal(res.masks, ref > 0))
            rel = V.run_video(enc, dec, self.tracker, frames, lang)  # release: first min(5, F), forward
            self.assertEqual(rel.order, [0, 1, 2, 3, 4, 5])
            self.assertClose(rel.low_res[2:4], res.low_res[2:4])
            scripted = V.run_video(torch.jit.script(enc), torch.jit.script(dec), self.scripted, frames, lang,
                                   cond_frames=[2, 3], orig_size=(50, 70))
            self.assertClose(scripted.low_res, res.low_res)


if __name__ == "__main__":
    unittest.main()
