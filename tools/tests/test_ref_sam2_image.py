"""Tests for the SAM2 image side of the reference (unibiomed_ref.sam2: config, image_encoder,
mask_decoder, model, export_image).

Run from the repository root::

    /usr/bin/python3 -m unittest discover -s tools/tests -t .

Everything runs at a tiny config (image 128, Hiera dims 8..64, d_model 32) except the
checkpoint-name test, which builds the real Hiera-L tree with parameter initialisation
skipped (shapes only, well under a second).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import unittest
from typing import Dict, Tuple
from unittest import mock

import torch
from torch import nn

TOOLS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from unibiomed_ref.sam2.config import Sam2Config  # noqa: E402
from unibiomed_ref.sam2.export_image import SamImageEncoder, SamMaskDecoder, decode_best  # noqa: E402
from unibiomed_ref.sam2.model import HAVE_MEMORY, Sam2Model  # noqa: E402

PREFIX = "grounding_encoder.sam2_model."


def tiny_config() -> Sam2Config:
    """Image 128 -> 32x32 tokens; stages (1,2,2,1) with dims 8/16/32/64; window 6 on the 8x8
    stage exercises window padding (and q-pooled padded windows), block 4 is global."""
    return dataclasses.replace(
        Sam2Config(),
        image_size=128,
        trunk_embed_dim=8,
        trunk_num_heads=1,
        trunk_stages=(1, 2, 2, 1),
        trunk_global_att_blocks=(4,),
        trunk_window_spec=(8, 4, 6, 2),
        trunk_window_pos_embed_bkg_spatial_size=(5, 5),
        neck_d_model=32,
        neck_backbone_channel_list=(64, 32, 16, 8),
        neck_pos_num_pos_feats=32,
        memory_attention_d_model=32,
        memory_attention_dim_feedforward=64,
        memory_attention_cross_kv_in_dim=16,
        memory_encoder_in_dim=32,
        memory_encoder_out_dim=16,
        memory_encoder_pos_num_pos_feats=16,
        memory_encoder_downsampler_embed_dim=32,
        memory_encoder_cx_dim=32,
        decoder_transformer_mlp_dim=64,
        decoder_transformer_num_heads=2,
        decoder_iou_head_hidden_dim=32,
        num_maskmem=3,
    )


def build_tiny(seed: int = 0) -> Sam2Model:
    torch.manual_seed(seed)
    m = Sam2Model(tiny_config()).eval()
    with torch.no_grad():  # move every tensor off its init value (zeros, ones, ...)
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def real_shapes() -> Dict[str, Tuple[int, ...]]:
    """state_dict shapes of the real config, built without initialising parameters."""
    noop = lambda self: None  # noqa: E731
    with mock.patch.object(nn.Linear, "reset_parameters", noop), mock.patch.object(
        nn.modules.conv._ConvNd, "reset_parameters", noop
    ), mock.patch.object(nn.Embedding, "reset_parameters", noop):
        m = Sam2Model()
        shapes = {PREFIX + k: tuple(v.shape) for k, v in m.state_dict().items()}
    del m
    return shapes


class TestSam2ImageSide(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        torch.set_num_threads(1)
        cls.model = build_tiny()
        cls.cfg = cls.model.config
        cls.enc = SamImageEncoder(cls.model).eval()
        cls.dec = SamMaskDecoder(cls.model).eval()
        g = torch.Generator().manual_seed(1)
        cls.image = torch.randn(2, 3, 128, 128, generator=g)
        cls.lang = torch.randn(2, cls.cfg.hidden_dim, generator=g)

    def _decode_inputs(self, enc: nn.Module, image: torch.Tensor):
        s0, s1, emb, pos = enc(image)
        emb = emb + self.model.no_mem_embed.to(emb.dtype).reshape(1, -1, 1, 1)
        return s0, s1, emb, pos

    def test_shapes(self) -> None:
        c = self.cfg.hidden_dim
        with torch.no_grad():
            s0, s1, emb, pos = self._decode_inputs(self.enc, self.image)
            self.assertEqual(tuple(s0.shape), (2, c // 8, 32, 32))
            self.assertEqual(tuple(s1.shape), (2, c // 4, 16, 16))
            self.assertEqual(tuple(emb.shape), (2, c, 8, 8))
            self.assertEqual(tuple(pos.shape), (1, c, 8, 8))
            masks, iou, obj, tokens = self.dec(emb, s0, s1, self.lang)
        self.assertEqual(tuple(masks.shape), (2, 3, 32, 32))
        self.assertEqual(tuple(iou.shape), (2, 3))
        self.assertEqual(tuple(obj.shape), (2, 1))
        self.assertEqual(tuple(tokens.shape), (2, 3, c))
        self.assertTrue(bool(((iou >= 0) & (iou <= 1)).all()))  # sigmoid IoU head
        # ImageEncoder (scripted) gives the same stride-16 feature and position encoding
        with torch.no_grad():
            feats, poss = torch.jit.script(self.model.image_encoder)(self.image)
            _, _, emb_raw, _ = self.enc(self.image)
        self.assertEqual(len(feats), 3)
        torch.testing.assert_close(feats[2], emb_raw, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(poss[2], pos.expand(2, -1, -1, -1))
        # the trunk really has 4 stages with the expected strides and widths
        with torch.no_grad():
            outs = self.model.image_encoder.trunk(self.image[:1])
        self.assertEqual([tuple(o.shape[1:]) for o in outs], [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)])

    def test_scripted_equals_eager_fp32(self) -> None:
        senc = torch.jit.script(self.enc)
        sdec = torch.jit.script(self.dec)
        sbest = torch.jit.script(decode_best)
        with torch.no_grad():
            a = self._decode_inputs(self.enc, self.image)
            b = self._decode_inputs(senc, self.image)
            for x, y in zip(a, b):
                torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)
            da = self.dec(a[2], a[0], a[1], self.lang)
            db = sdec(a[2], a[0], a[1], self.lang)
            for x, y in zip(da, db):
                torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)
            ra = decode_best(da[0], da[1], 128, 50, 70)
            rb = sbest(da[0], da[1], 128, 50, 70)
        for x, y in zip(ra, rb):
            torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-6)

    def test_bf16_runs(self) -> None:
        m = build_tiny().to(torch.bfloat16)
        senc = torch.jit.script(SamImageEncoder(m))
        sdec = torch.jit.script(SamMaskDecoder(m))
        with torch.no_grad():
            s0, s1, emb, pos = senc(self.image.to(torch.bfloat16))
            emb = emb + m.no_mem_embed.reshape(1, -1, 1, 1)
            out = sdec(emb, s0, s1, self.lang.to(torch.bfloat16))
            a = self._decode_inputs(self.enc, self.image)
            ref = self.dec(a[2], a[0], a[1], self.lang)
        for t in (s0, s1, emb, pos) + tuple(out):
            self.assertEqual(t.dtype, torch.bfloat16)
            self.assertTrue(bool(torch.isfinite(t.float()).all()))
        # close to fp32 at bf16 precision (same weights up to bf16 rounding)
        scale = ref[0].abs().max().item()
        self.assertLess((out[0].float() - ref[0]).abs().max().item(), 0.1 * scale + 0.02)

    def test_batch_equals_single(self) -> None:
        with torch.no_grad():
            b = self._decode_inputs(self.enc, self.image)
            db = self.dec(b[2], b[0], b[1], self.lang)
            for i in range(2):
                s = self._decode_inputs(self.enc, self.image[i : i + 1])
                for x, y in zip(s[:3], b[:3]):
                    torch.testing.assert_close(x[0], y[i], rtol=1e-5, atol=1e-5)
                ds = self.dec(s[2], s[0], s[1], self.lang[i : i + 1])
                for x, y in zip(ds, db):
                    torch.testing.assert_close(x[0], y[i], rtol=1e-5, atol=1e-5)

    def test_sparse_prompt_matches_release_construction(self) -> None:
        pe = self.model.sam_prompt_encoder
        with torch.no_grad():
            sparse = pe.language_sparse_embeddings(self.lang)
            # release: SAM2Base pads with one (0,0) point of label -1, prompt encoder pads again
            pts = pe.embed_points(torch.zeros(2, 1, 2), -torch.ones(2, 1, dtype=torch.int32), pad=True)
        self.assertEqual(tuple(sparse.shape), (2, 3, self.cfg.hidden_dim))
        nap = pe.not_a_point_embed.weight[0]
        for b in range(2):
            torch.testing.assert_close(sparse[b, 0], nap)
            torch.testing.assert_close(sparse[b, 1], nap)
            torch.testing.assert_close(sparse[b, 2], self.lang[b])
        torch.testing.assert_close(pts, sparse[:, :2])

    def test_decode_best(self) -> None:
        masks = torch.full((2, 3, 8, 8), -5.0)
        masks[0, 2, :4] = 5.0  # sample 0: best candidate 2 -> top half
        masks[1, 0] = 5.0  # sample 1: best candidate 0 -> everything
        iou = torch.tensor([[0.1, 0.2, 0.9], [0.8, 0.8, 0.1]])  # tie -> first index
        mask, logits, best = decode_best(masks, iou, 32, 20, 10)
        self.assertEqual(best.tolist(), [2, 0])
        self.assertEqual(tuple(mask.shape), (2, 20, 10))
        self.assertEqual(logits.dtype, torch.float32)
        self.assertTrue(bool(mask[0, :9].all()) and not bool(mask[0, 11:].any()))
        self.assertTrue(bool(mask[1].all()))

    def test_checkpoint_names_real_config(self) -> None:
        shapes = real_shapes()
        expected = {
            "image_encoder.trunk.pos_embed": (1, 144, 7, 7),
            "image_encoder.trunk.pos_embed_window": (1, 144, 8, 8),
            "image_encoder.trunk.patch_embed.proj.weight": (144, 3, 7, 7),
            "image_encoder.trunk.patch_embed.proj.bias": (144,),
            "image_encoder.trunk.blocks.0.norm1.weight": (144,),
            "image_encoder.trunk.blocks.0.attn.qkv.weight": (432, 144),
            "image_encoder.trunk.blocks.0.attn.proj.weight": (144, 144),
            "image_encoder.trunk.blocks.0.mlp.layers.0.weight": (576, 144),
            "image_encoder.trunk.blocks.0.mlp.layers.1.weight": (144, 576),
            "image_encoder.trunk.blocks.2.proj.weight": (288, 144),
            "image_encoder.trunk.blocks.2.attn.qkv.weight": (864, 144),
            "image_encoder.trunk.blocks.2.attn.proj.weight": (288, 288),
            "image_encoder.trunk.blocks.2.norm2.weight": (288,),
            "image_encoder.trunk.blocks.8.proj.weight": (576, 288),
            "image_encoder.trunk.blocks.23.attn.qkv.weight": (1728, 576),
            "image_encoder.trunk.blocks.44.proj.weight": (1152, 576),
            "image_encoder.trunk.blocks.47.mlp.layers.1.weight": (1152, 4608),
            "image_encoder.neck.convs.0.conv.weight": (256, 1152, 1, 1),
            "image_encoder.neck.convs.3.conv.weight": (256, 144, 1, 1),
            "image_encoder.neck.convs.3.conv.bias": (256,),
            "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": (2, 128),
            "sam_prompt_encoder.point_embeddings.0.weight": (1, 256),
            "sam_prompt_encoder.point_embeddings.3.weight": (1, 256),
            "sam_prompt_encoder.not_a_point_embed.weight": (1, 256),
            "sam_prompt_encoder.no_mask_embed.weight": (1, 256),
            "sam_prompt_encoder.mask_downscaling.0.weight": (4, 1, 2, 2),
            "sam_prompt_encoder.mask_downscaling.1.weight": (4,),
            "sam_prompt_encoder.mask_downscaling.3.weight": (16, 4, 2, 2),
            "sam_prompt_encoder.mask_downscaling.4.bias": (16,),
            "sam_prompt_encoder.mask_downscaling.6.weight": (256, 16, 1, 1),
            "sam_mask_decoder.iou_token.weight": (1, 256),
            "sam_mask_decoder.mask_tokens.weight": (4, 256),
            "sam_mask_decoder.obj_score_token.weight": (1, 256),
            "sam_mask_decoder.conv_s0.weight": (32, 256, 1, 1),
            "sam_mask_decoder.conv_s1.weight": (64, 256, 1, 1),
            "sam_mask_decoder.output_upscaling.0.weight": (256, 64, 2, 2),
            "sam_mask_decoder.output_upscaling.1.weight": (64,),
            "sam_mask_decoder.output_upscaling.3.weight": (64, 32, 2, 2),
            "sam_mask_decoder.output_hypernetworks_mlps.3.layers.0.weight": (256, 256),
            "sam_mask_decoder.output_hypernetworks_mlps.3.layers.2.weight": (32, 256),
            "sam_mask_decoder.iou_prediction_head.layers.0.weight": (256, 256),
            "sam_mask_decoder.iou_prediction_head.layers.2.weight": (4, 256),
            "sam_mask_decoder.pred_obj_score_head.layers.2.weight": (1, 256),
            "sam_mask_decoder.transformer.layers.0.self_attn.q_proj.weight": (256, 256),
            "sam_mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight": (128, 256),
            "sam_mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.weight": (256, 128),
            "sam_mask_decoder.transformer.layers.0.mlp.layers.0.weight": (2048, 256),
            "sam_mask_decoder.transformer.layers.1.mlp.layers.1.weight": (256, 2048),
            "sam_mask_decoder.transformer.layers.1.norm4.weight": (256,),
            "sam_mask_decoder.transformer.final_attn_token_to_image.k_proj.weight": (128, 256),
            "sam_mask_decoder.transformer.norm_final_attn.bias": (256,),
            "maskmem_tpos_enc": (7, 1, 1, 64),
            "no_mem_embed": (1, 1, 256),
            "no_mem_pos_enc": (1, 1, 256),
            "no_obj_ptr": (1, 256),
            "mask_downsample.weight": (1, 1, 4, 4),
            "mask_downsample.bias": (1,),
            "obj_ptr_proj.layers.0.weight": (256, 256),
            "obj_ptr_proj.layers.2.bias": (256,),
        }
        if HAVE_MEMORY:
            expected.update({
                "memory_attention.layers.0.self_attn.q_proj.weight": (256, 256),
                "memory_attention.layers.3.cross_attn_image.k_proj.weight": (256, 64),
                "memory_attention.layers.3.cross_attn_image.v_proj.weight": (256, 64),
                "memory_attention.layers.0.linear1.weight": (2048, 256),
                "memory_attention.layers.0.norm3.weight": (256,),
                "memory_attention.norm.weight": (256,),
                "memory_encoder.mask_downsampler.encoder.0.weight": (4, 1, 3, 3),
                "memory_encoder.mask_downsampler.encoder.12.weight": (256, 256, 1, 1),
                "memory_encoder.pix_feat_proj.weight": (256, 256, 1, 1),
                "memory_encoder.fuser.layers.1.dwconv.weight": (256, 1, 7, 7),
                "memory_encoder.fuser.layers.0.pwconv1.weight": (1024, 256),
                "memory_encoder.fuser.layers.0.gamma": (256,),  # `.g_weight` in the file
                "memory_encoder.out_proj.weight": (64, 256, 1, 1),
            })
        for k, shape in expected.items():
            self.assertIn(PREFIX + k, shapes)
            self.assertEqual(shapes[PREFIX + k], shape, k)
        # Hiera-L: 48 blocks, a dim-changing `proj` exactly at the 3 stage transitions
        blocks = {k.split(".")[5] for k in shapes if k.startswith(PREFIX + "image_encoder.trunk.blocks.")}
        self.assertEqual(blocks, {str(i) for i in range(48)})
        projs = sorted(int(k.split(".")[5]) for k in shapes
                       if k.startswith(PREFIX + "image_encoder.trunk.blocks.") and k.endswith(".proj.weight")
                       and ".attn." not in k)
        self.assertEqual(projs, [2, 8, 44])
        self.assertFalse(any(".obj_ptr_tpos_proj." in k for k in shapes))
        n = lambda pre: sum(torch.Size(s).numel() for k, s in shapes.items() if k.startswith(PREFIX + pre))  # noqa: E731
        self.assertEqual(n("image_encoder."), 212_703_280)
        self.assertEqual(n("sam_mask_decoder."), 4_215_109)
        self.assertEqual(n("sam_prompt_encoder."), 6_476)
        if HAVE_MEMORY:  # SAM2 Hiera-L: 224.4 M parameters in all
            self.assertEqual(n(""), 224_430_386)


if __name__ == "__main__":
    unittest.main()
