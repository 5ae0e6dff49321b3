"""Qwen2 decoder (Qwen2.5-0.5B-Instruct as in InternVL2.5-1B) with a caller-owned KV cache.

Checkpoint names (prefix ``language_model.``), H = hidden, Q = heads * head_dim,
K = kv_heads * head_dim::

    model.embed_tokens.weight                          [V, H]
    model.layers.{i}.input_layernorm.weight            [H]
    model.layers.{i}.self_attn.q_proj.{weight,bias}    [Q, H], [Q]
    model.layers.{i}.self_attn.k_proj.{weight,bias}    [K, H], [K]
    model.layers.{i}.self_attn.v_proj.{weight,bias}    [K, H], [K]
    model.layers.{i}.self_attn.o_proj.weight           [H, Q]       (no bias)
    model.layers.{i}.post_attention_layernorm.weight   [H]
    model.layers.{i}.mlp.{gate,up}_proj.weight         [I, H]       (no bias)
    model.layers.{i}.mlp.down_proj.weight              [H, I]
    model.norm.weight                                  [H]
    lm_head.weight                                     [V, H]       (untied)

Numerics follow HF ``modeling_qwen2.py``: RMSNorm in fp32, ``weight * x.to(dtype)``; RoPE with
``inv_freq = 1 / theta^(arange(0, D, 2) / D)`` in fp32, ``cos/sin`` of ``cat(freqs, freqs)`` in
fp32 then cast to the model dtype, ``q * cos + rotate_half(q) * sin`` (rotate_half =
``cat(-x2, x1)``); scores ``(q @ k^T) * D^-0.5`` with the causal mask, softmax in fp32 cast
back; SiLU-gated MLP ``down(silu(gate(x)) * up(x))``. The upstream config's dynamic-NTK
rope_scaling only changes anything beyond max_position_embeddings (32768) and is not modelled.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass(frozen=True)
class Qwen2Config:
    """Qwen2.5-0.5B sizes (real defaults). vocab_size must match the checkpoint's rows."""

    vocab_size: int = 151936
    hidden_size: int = 896
    num_hidden_layers: int = 24
    num_attention_heads: int = 14
    num_key_value_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 4864
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768


class Qwen2RMSNorm(nn.Module):
    """RMSNorm in fp32, cast back before the weight. x [..., H] -> [..., H]."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)


def rope_cos_sin(start: int, length: int, head_dim: int, theta: float, like: Tensor) -> Tuple[Tensor, Tensor]:
    """cos, sin [length, head_dim] for positions start..start+length-1, in ``like``'s dtype.

    Computed in fp32 on ``like``'s device, as HF does, then cast.
    """
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64, device=like.device).float() / head_dim
    inv_freq = 1.0 / (theta ** exponent)  # [D/2], fp32
    pos = torch.arange(start, start + length, dtype=torch.int64, device=like.device).float()
    freqs = pos[:, None] * inv_freq[None, :]  # [T, D/2]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(like.dtype), emb.sin().to(like.dtype)


def rotate_half(x: Tensor) -> Tensor:
    """[x1, x2] -> [-x2, x1] over the last dim."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class Qwen2Attention(nn.Module):
    """GQA self-attention over a caller-owned cache slice of one layer."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        h, d = config.hidden_size, config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        self.groups = self.num_heads // self.num_kv_heads
        self.head_dim = d
        self.scaling = d ** -0.5
        self.q_proj = nn.Linear(h, self.num_heads * d, bias=True)
        self.k_proj = nn.Linear(h, self.num_kv_heads * d, bias=True)
        self.v_proj = nn.Linear(h, self.num_kv_heads * d, bias=True)
        self.o_proj = nn.Linear(self.num_heads * d, h, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        """x [B, T, H]; cos/sin [T, D]; caches [B, KV, MAX_T, D] (written in place) -> [B, T, H].

        New keys (after RoPE) and values go to cache[:, :, start:start+T]; queries attend to keys
        0..start+T-1, query t seeing keys up to start+t. The query heads are grouped per KV head
        ([B, KV, G*T, D]) so the cached keys are used as they are, without repetition.
        """
        b, t, _ = x.shape
        kv, g, d = self.num_kv_heads, self.groups, self.head_dim
        q = self.q_proj(x).view(b, t, self.num_heads, d).transpose(1, 2)  # [B, NH, T, D]
        k = self.k_proj(x).view(b, t, kv, d).transpose(1, 2)  # [B, KV, T, D]
        v = self.v_proj(x).view(b, t, kv, d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k_cache.narrow(2, start, t).copy_(k)
        v_cache.narrow(2, start, t).copy_(v)
        s = start + t
        keys = k_cache.narrow(2, 0, s)  # views, no copy
        values = v_cache.narrow(2, 0, s)
        # head h = kv_head * G + g (HF's repeat_kv order) -> [B, KV, G*T, D]
        q = q.reshape(b, kv, g * t, d)
        scores = torch.matmul(q, keys.transpose(2, 3)) * self.scaling  # [B, KV, G*T, S]
        scores = scores.float()
        if t > 1:
            q_pos = torch.arange(start, s, device=x.device).view(t, 1)
            k_pos = torch.arange(0, s, device=x.device).view(1, s)
            blocked = k_pos > q_pos  # [T, S]
            scores = scores.view(b, kv, g, t, s).masked_fill(blocked, float("-inf")).view(b, kv, g * t, s)
        probs = torch.softmax(scores, dim=-1).to(values.dtype)
        out = torch.matmul(probs, values)  # [B, KV, G*T, D]
        out = out.view(b, self.num_heads, t, d).transpose(1, 2).reshape(b, t, self.num_heads * d)
        return self.o_proj(out)


class Qwen2MLP(nn.Module):
    """down(silu(gate(x)) * up(x)). x [..., H] -> [..., H]."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        h, i = config.hidden_size, config.intermediate_size
        self.gate_proj = nn.Linear(h, i, bias=False)
        self.up_proj = nn.Linear(h, i, bias=False)
        self.down_proj = nn.Linear(i, h, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.self_attn = Qwen2Attention(config)
        self.mlp = Qwen2MLP(config)
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, start: int, k_cache: Tensor, v_cache: Tensor) -> Tensor:
        """x [B, T, H] -> [B, T, H]; caches [B, KV, MAX_T, D] of this layer."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, start, k_cache, v_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen2Model(nn.Module):
    """``language_model.model``: embed_tokens, layers, norm."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([Qwen2DecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)


class Qwen2ForCausalLM(nn.Module):
    """``language_model``: ``model`` plus an untied ``lm_head``. Run it through
    :class:`LanguageDecoder`, which owns no state besides these weights."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.config = config
        self.model = Qwen2Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)


class LanguageDecoder(nn.Module):
    """Scriptable prefill/decode step over a caller-owned KV cache.

    State_dict keys are ``model.*`` and ``lm_head.*`` (references to the wrapped model).
    Caches: ``k_cache``, ``v_cache`` [L, B, KV, MAX_T, D] in the model dtype, see :meth:`new_cache`.
    """

    def __init__(self, lm: Qwen2ForCausalLM) -> None:
        super().__init__()
        self.model = lm.model
        self.lm_head = lm.lm_head
        self.head_dim = lm.config.head_dim
        self.rope_theta = lm.config.rope_theta

    @torch.jit.export
    def embed(self, ids: Tensor) -> Tensor:
        """Token embeddings: ids int64 [B, T] -> [B, T, H]."""
        return self.model.embed_tokens(ids)

    def forward(self, embeds: Tensor, start: int, k_cache: Tensor, v_cache: Tensor,
                logits_index: Tensor) -> Tuple[Tensor, Tensor]:
        """Run positions start..start+T-1.

        embeds [B, T, H] (model dtype); k_cache / v_cache [L, B, KV, MAX_T, D], updated in place
        at [:, :, :, start:start+T] and holding valid entries for 0..start-1; logits_index int64
        [N] of positions in 0..T-1. Returns (logits [B, N, V] for those positions only,
        hidden [B, T, H] = final-RMSNorm output of all fed positions).
        """
        t = embeds.shape[1]
        cos, sin = rope_cos_sin(start, t, self.head_dim, self.rope_theta, embeds)
        x = embeds
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, start, k_cache[i], v_cache[i])
        hidden = self.model.norm(x)
        logits = self.lm_head(hidden.index_select(1, logits_index))
        return logits, hidden

    @staticmethod
    def new_cache(config: Qwen2Config, batch: int, max_t: int, dtype: torch.dtype,
                  device: torch.device) -> Tuple[Tensor, Tensor]:
        """Two zero caches [L, B, KV, max_t, D]. Not part of the scripted interface."""
        return new_cache(config, batch, max_t, dtype, device)


def new_cache(config: Qwen2Config, batch: int, max_t: int, dtype: torch.dtype = torch.float32,
              device: torch.device = torch.device("cpu")) -> Tuple[Tensor, Tensor]:
    """Two zero caches (keys, values), each [L, B, KV, max_t, D]."""
    shape = (config.num_hidden_layers, batch, config.num_key_value_heads, max_t, config.head_dim)
    return (torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device))


def checkpoint_shapes(config: Qwen2Config) -> Dict[str, List[int]]:
    """Expected checkpoint names -> shapes under ``language_model.`` (by formula)."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    q = config.num_attention_heads * config.head_dim
    k = config.num_key_value_heads * config.head_dim
    out: Dict[str, List[int]] = {"language_model.model.embed_tokens.weight": [v, h]}
    for n in range(config.num_hidden_layers):
        pre = f"language_model.model.layers.{n}."
        out.update({
            pre + "input_layernorm.weight": [h],
            pre + "self_attn.q_proj.weight": [q, h], pre + "self_attn.q_proj.bias": [q],
            pre + "self_attn.k_proj.weight": [k, h], pre + "self_attn.k_proj.bias": [k],
            pre + "self_attn.v_proj.weight": [k, h], pre + "self_attn.v_proj.bias": [k],
            pre + "self_attn.o_proj.weight": [h, q],
            pre + "post_attention_layernorm.weight": [h],
            pre + "mlp.gate_proj.weight": [i, h],
            pre + "mlp.up_proj.weight": [i, h],
            pre + "mlp.down_proj.weight": [h, i],
        })
    out["language_model.model.norm.weight"] = [h]
    out["language_model.lm_head.weight"] = [v, h]
    return out
