"""Tests for the MLLM half of the reference model: vision.py, language.py, grounding.py.

Run from the repository root::

    /usr/bin/python3 -m unittest discover -s tools/tests -t .

Tiny configs only; the real sizes are checked through the checkpoint-shape formulas, which are
themselves checked against the modules' state_dicts at tiny size.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import unittest

import torch
import torch.nn.functional as F

TOOLS = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import unibiomed_ref.grounding as G  # noqa: E402
import unibiomed_ref.language as L  # noqa: E402
import unibiomed_ref.vision as V  # noqa: E402

TINY_VIT = dataclasses.replace(
    V.InternVitConfig(), image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64, llm_hidden_size=64)
TINY_LLM = dataclasses.replace(
    L.Qwen2Config(), vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, intermediate_size=96, rope_theta=10000.0)
TINY_GND = G.GroundingConfig(in_dim=64, out_dim=16)


def shapes(module: torch.nn.Module, prefix: str) -> dict:
    return {prefix + k: list(v.shape) for k, v in module.state_dict().items()}


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (norm weights, layer scales, biases included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if p.dim() == 1 else 0.0) * 0.5)


def build_vision(config: V.InternVitConfig = TINY_VIT) -> V.VisionEncoder:
    enc = V.VisionEncoder(V.InternVisionModel(config), V.build_mlp1(config), config)
    randomize(enc, 0)
    return enc.eval()


def build_llm(config: L.Qwen2Config = TINY_LLM) -> L.Qwen2ForCausalLM:
    lm = L.Qwen2ForCausalLM(config)
    randomize(lm, 1)
    return lm.eval()


# ---------------------------------------------------------------- independent naive references

def naive_vision(enc: V.VisionEncoder, pixels: torch.Tensor) -> torch.Tensor:
    """extract_feature written out plainly, pixel shuffle in upstream's float-scale form."""
    vm, cfg = enc.vision_model, TINY_VIT
    emb = vm.embeddings
    x = F.conv2d(pixels, emb.patch_embedding.weight, emb.patch_embedding.bias, stride=cfg.patch_size)
    n, c, h, w = x.shape
    x = torch.cat([emb.class_embedding.expand(n, 1, c), x.flatten(2).transpose(1, 2)], 1)
    x = x + emb.position_embedding
    heads, d = cfg.num_attention_heads, c // cfg.num_attention_heads
    for layer in vm.encoder.layers:
        y = F.layer_norm(x, (c,), layer.norm1.weight, layer.norm1.bias, cfg.layer_norm_eps)
        q, k, v = layer.attn.qkv(y).reshape(n, -1, 3, heads, d).permute(2, 0, 3, 1, 4)
        a = ((q * d ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + layer.attn.proj((a @ v).transpose(1, 2).reshape(n, -1, c)) * layer.ls1
        y = F.layer_norm(x, (c,), layer.norm2.weight, layer.norm2.bias, cfg.layer_norm_eps)
        x = x + layer.mlp.fc2(F.gelu(layer.mlp.fc1(y))) * layer.ls2
    x = x[:, 1:].reshape(n, h, w, c)
    s = cfg.downsample_ratio
    x = x.view(n, h, int(w * s), int(c / s)).permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(w * s), int(h * s), int(c / (s * s))).permute(0, 2, 1, 3).contiguous()
    return enc.mlp1(x.reshape(n, -1, x.shape[-1]))


def naive_decoder(lm: L.Qwen2ForCausalLM, embeds: torch.Tensor):
    """Full causal forward, no cache: repeat_kv heads, additive mask, positions 0..T-1."""
    cfg = lm.config
    b, t, _ = embeds.shape
    nh, kv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2).float() / d))
    f = torch.outer(torch.arange(t).float(), inv)
    cos, sin = torch.cat([f, f], -1).cos(), torch.cat([f, f], -1).sin()

    def rot(x):
        return torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)

    def rms(x, wt):
        return wt * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps))

    mask = torch.full((t, t), float("-inf")).triu(1)
    x = embeds
    for layer in lm.model.layers:
        at = layer.self_attn
        y = rms(x, layer.input_layernorm.weight)
        q = at.q_proj(y).view(b, t, nh, d).transpose(1, 2)
        k = at.k_proj(y).view(b, t, kv, d).transpose(1, 2)
        v = at.v_proj(y).view(b, t, kv, d).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(nh // kv, 1), v.repeat_interleave(nh // kv, 1)
        a = torch.softmax(q @ k.transpose(2, 3) / d ** 0.5 + mask, -1)
        x = x + at.o_proj((a @ v).transpose(1, 2).reshape(b, t, nh * d))
        y = rms(x, layer.post_attention_layernorm.weight)
        x = x + layer.mlp.down_proj(F.silu(layer.mlp.gate_proj(y)) * layer.mlp.up_proj(y))
    hidden = rms(x, lm.model.norm.weight)
    return lm.lm_head(hidden), hidden


# ---------------------------------------------------------------------------------- tests

class TestCheckpointNames(unittest.TestCase):
    def test_tiny_modules_match_formula(self) -> None:
        enc = V.VisionEncoder(V.InternVisionModel(TINY_VIT), V.build_mlp1(TINY_VIT), TINY_VIT)
        self.assertEqual(shapes(enc, ""), V.checkpoint_shapes(TINY_VIT))
        lm = L.Qwen2ForCausalLM(TINY_LLM)
        self.assertEqual(shapes(lm, "language_model."), L.checkpoint_shapes(TINY_LLM))
        self.assertEqual(shapes(L.LanguageDecoder(lm), "language_model."), L.checkpoint_shapes(TINY_LLM))
        gp = G.GroundingProjector(G.build_text_hidden_fcs(TINY_GND))
        self.assertEqual(shapes(gp, ""), G.checkpoint_shapes(TINY_GND))

    def test_real_shapes(self) -> None:
        vit = V.checkpoint_shapes(V.InternVitConfig())
        self.assertEqual(vit["vision_model.embeddings.position_embedding"], [1, 1025, 1024])
        self.assertEqual(vit["vision_model.embeddings.patch_embedding.weight"], [1024, 3, 14, 14])
        self.assertEqual(vit["vision_model.encoder.layers.23.attn.qkv.weight"], [3072, 1024])
        self.assertEqual(vit["vision_model.encoder.layers.23.norm2.bias"], [1024])
        self.assertEqual(vit["vision_model.encoder.layers.0.ls1"], [1024])
        self.assertEqual(vit["mlp1.0.weight"], [4096])
        self.assertEqual(vit["mlp1.1.weight"], [896, 4096])
        self.assertEqual(vit["mlp1.3.weight"], [896, 896])
        self.assertNotIn("vision_model.encoder.layers.24.ls1", vit)
        self.assertEqual(len(vit), 4 + 24 * 14 + 6)
        n_vit = sum(torch.Size(s).numel() for k, s in vit.items() if k.startswith("vision_model."))
        self.assertTrue(300e6 < n_vit < 310e6, n_vit)  # "300M"
        self.assertEqual(V.InternVitConfig().tokens_per_tile, 256)

        llm = L.checkpoint_shapes(L.Qwen2Config())
        self.assertEqual(llm["language_model.model.layers.23.self_attn.q_proj.weight"], [896, 896])
        self.assertEqual(llm["language_model.model.layers.23.self_attn.k_proj.bias"], [128])
        self.assertEqual(llm["language_model.model.layers.0.self_attn.o_proj.weight"], [896, 896])
        self.assertNotIn("language_model.model.layers.0.self_attn.o_proj.bias", llm)
        self.assertEqual(llm["language_model.model.layers.0.mlp.down_proj.weight"], [896, 4864])
        self.assertEqual(llm["language_model.lm_head.weight"], [151936, 896])
        self.assertEqual(len(llm), 2 + 24 * 12 + 1)
        n_body = sum(torch.Size(s).numel() for k, s in llm.items() if "lm_head" not in k)
        self.assertTrue(490e6 < n_body < 500e6, n_body)  # Qwen2.5-0.5B: 0.49 B with tied head

        self.assertEqual(G.checkpoint_shapes(G.GroundingConfig())["text_hidden_fcs.2.weight"], [256, 896])


class TestVision(unittest.TestCase):
    def test_pixel_shuffle_layout(self) -> None:
        n, h, w, c, r = 1, 4, 6, 3, 2
        x = torch.arange(n * h * w * c).reshape(n, h, w, c)
        y = V.pixel_shuffle(x, r)
        self.assertEqual(list(y.shape), [1, 2, 3, 12])
        for i in range(2):
            for j in range(3):
                for di in range(r):
                    for dj in range(r):
                        got = y[0, i, j, (di * r + dj) * c:(di * r + dj + 1) * c]
                        self.assertTrue(torch.equal(got, x[0, i * r + di, j * r + dj]))

    def test_matches_naive_and_script(self) -> None:
        torch.manual_seed(0)
        enc = build_vision()
        pixels = torch.randn(2, 3, 56, 56)
        with torch.no_grad():
            out = enc(pixels)
            self.assertEqual(list(out.shape), [2, 4, 64])
            torch.testing.assert_close(out, naive_vision(enc, pixels), rtol=1e-5, atol=1e-5)
            scripted = torch.jit.script(enc)
            torch.testing.assert_close(scripted(pixels), out, rtol=1e-5, atol=1e-6)
            bf = scripted.to(torch.bfloat16)(pixels.bfloat16())
            self.assertEqual(bf.dtype, torch.bfloat16)
            self.assertTrue(torch.isfinite(bf.float()).all())

    def test_position_embedding_resize(self) -> None:
        enc = build_vision()
        emb = enc.vision_model.embeddings
        with torch.no_grad():
            self.assertTrue(torch.equal(emb._patch_positions(4, 4), emb.position_embedding[:, 1:]))
            grid = emb.position_embedding[:, 1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
            want = F.interpolate(grid, size=(5, 5), mode="bicubic", align_corners=False)
            want = want.flatten(2).transpose(1, 2)
            torch.testing.assert_close(emb._patch_positions(5, 5), want)
            self.assertEqual(list(enc.vision_model(torch.randn(1, 3, 70, 70)).shape), [1, 26, 32])

    def test_select_layer(self) -> None:
        cfg = dataclasses.replace(TINY_VIT, select_layer=-2)
        self.assertEqual(cfg.layers_used, 1)
        self.assertEqual(TINY_VIT.layers_used, 2)


class TestLanguage(unittest.TestCase):
    T = 9

    def setUp(self) -> None:
        torch.manual_seed(0)
        self.lm = build_llm()
        self.dec = L.LanguageDecoder(self.lm).eval()
        self.ids = torch.randint(0, TINY_LLM.vocab_size, (2, self.T))

    def run_steps(self, dec, splits, dtype=torch.float32):
        """Feed self.ids in chunks; returns (last-position logits of each chunk, hidden, caches)."""
        kc, vc = L.new_cache(TINY_LLM, 2, 16, dtype, torch.device("cpu"))
        embeds = dec.embed(self.ids).to(dtype)
        start, logits, hiddens = 0, [], []
        for n in splits:
            lg, hd = dec(embeds[:, start:start + n], start, kc, vc, torch.arange(n))
            logits.append(lg)
            hiddens.append(hd)
            start += n
        return torch.cat(logits, 1), torch.cat(hiddens, 1), kc, vc

    def test_cache_consistency_and_naive(self) -> None:
        with torch.no_grad():
            full_logits, full_hidden, _, _ = self.run_steps(self.dec, [self.T])
            inc_logits, inc_hidden, _, _ = self.run_steps(self.dec, [self.T - 3, 1, 1, 1])
            torch.testing.assert_close(inc_logits, full_logits, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(inc_hidden, full_hidden, rtol=1e-5, atol=1e-5)
            chunk_logits, chunk_hidden, _, _ = self.run_steps(self.dec, [4, 3, 2])  # T > 1 at start > 0
            torch.testing.assert_close(chunk_logits, full_logits, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(chunk_hidden, full_hidden, rtol=1e-5, atol=1e-5)
            ref_logits, ref_hidden = naive_decoder(self.lm, self.dec.embed(self.ids))
            torch.testing.assert_close(full_logits, ref_logits, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(full_hidden, ref_hidden, rtol=1e-5, atol=1e-5)

    def test_logits_index(self) -> None:
        with torch.no_grad():
            kc, vc = L.new_cache(TINY_LLM, 2, 16, torch.float32, torch.device("cpu"))
            idx = torch.tensor([self.T - 1, 2])
            lg, hd = self.dec(self.dec.embed(self.ids), 0, kc, vc, idx)
            self.assertEqual(list(lg.shape), [2, 2, TINY_LLM.vocab_size])
            self.assertEqual(list(hd.shape), [2, self.T, TINY_LLM.hidden_size])
            torch.testing.assert_close(lg, self.lm.lm_head(hd[:, idx]))

    def test_script_and_bf16(self) -> None:
        with torch.no_grad():
            scripted = torch.jit.script(self.dec)
            eager = self.run_steps(self.dec, [self.T - 2, 1, 1])
            jit = self.run_steps(scripted, [self.T - 2, 1, 1])
            for a, b in zip(jit, eager):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            bf = torch.jit.script(L.LanguageDecoder(build_llm().to(torch.bfloat16)))
            lg, hd, kc, _ = self.run_steps(bf, [self.T - 1, 1], torch.bfloat16)
            self.assertEqual((lg.dtype, hd.dtype, kc.dtype), (torch.bfloat16,) * 3)
            self.assertTrue(torch.isfinite(lg.float()).all())
            cos = F.cosine_similarity(hd.float().flatten(), eager[1].flatten(), dim=0)
            self.assertGreater(float(cos), 0.99)  # same weights (seed 1), bf16 vs fp32

    def test_cache_written_in_place_only_at_new_positions(self) -> None:
        with torch.no_grad():
            kc, vc = L.new_cache(TINY_LLM, 2, 16, torch.float32, torch.device("cpu"))
            embeds = self.dec.embed(self.ids)
            self.dec(embeds[:, :5], 0, kc, vc, torch.tensor([4]))
            self.assertTrue(bool((kc[:, :, :, :5] != 0).all()) and bool((vc[:, :, :, :5] != 0).all()))
            self.assertTrue(bool((kc[:, :, :, 5:] == 0).all()) and bool((vc[:, :, :, 5:] == 0).all()))
            kc[:, :, :, 8:] = 7.0
            vc[:, :, :, 8:] = 7.0
            before_k, before_v, ptr = kc.clone(), vc.clone(), kc.data_ptr()
            scripted = torch.jit.script(self.dec)
            scripted(embeds[:, 5:8], 5, kc, vc, torch.tensor([2]))
            self.assertEqual(kc.data_ptr(), ptr)
            for now, old in ((kc, before_k), (vc, before_v)):
                self.assertTrue(torch.equal(now[:, :, :, :5], old[:, :, :, :5]))
                self.assertTrue(torch.equal(now[:, :, :, 8:], old[:, :, :, 8:]))
                self.assertTrue(bool((now[:, :, :, 5:8] != old[:, :, :, 5:8]).all()))


class TestGrounding(unittest.TestCase):
    def test_projector(self) -> None:
        fcs = G.build_text_hidden_fcs(TINY_GND)
        randomize(fcs, 2)
        proj = G.GroundingProjector(fcs).eval()
        h = torch.randn(3, 64)
        with torch.no_grad():
            want = fcs[2](torch.relu(fcs[0](h)))
            torch.testing.assert_close(proj(h), want)
            scripted = torch.jit.script(proj)
            torch.testing.assert_close(scripted(h), want, rtol=1e-5, atol=1e-6)
            self.assertEqual(scripted.to(torch.bfloat16)(h.bfloat16()).dtype, torch.bfloat16)


if __name__ == "__main__":
    unittest.main()
