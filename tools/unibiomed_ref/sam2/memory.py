"""SAM2 memory side: memory encoder and memory attention (RoPE), TorchScript-able.

Written from the public SAM2 2.0 code (facebookresearch/sam2 `sam2/modeling/memory_encoder.py`,
`memory_attention.py`, `sam/transformer.py` (RoPEAttention, compute_axial_cis,
apply_rotary_enc), `position_encoding.py`) and the copy UniBiomed's HF model runs
(`projects/unibiomed/hf/models/sam2.py`, same behaviour). Attribute names give the checkpoint
names `memory_encoder.*` and `memory_attention.*` (the loader renames `.g_weight` -> `.gamma`).

Shapes at the real config (image 1024, h = w = 64, C = 256, mem_dim = 64):
  MemoryEncoder:   pix_feat [B,256,64,64] + mask [B,1,1024,1024] -> features [B,64,64,64],
                   pos [1,64,64,64] (sine, fp32 cast to the features' dtype).
  MemoryAttention: curr [B,4096,256], curr_pos [B,4096,256], memory [B,M,64], memory_pos [B,M,64]
                   with M = N*4096 spatial tokens (N memory frames) + 4*P object-pointer tokens
                   (the last `num_obj_ptr_tokens` keys, which get no rotary encoding)
                   -> [B,4096,256].

Rotary encoding: upstream multiplies complex numbers (view_as_complex). The same rotation is
done here with real cos/sin pairs (TorchScript-friendly, no complex dtype): channel pair
(2j, 2j+1) of a head is rotated by angle t_x * f_j for j < D/4 and t_y * f_(j-D/4) otherwise,
f_j = theta^(-4j/D), t_x = token % w, t_y = token // w. Rotation runs in fp32 and is cast
back, as upstream. Memory keys from several frames reuse the query table tiled per frame.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Sam2Config
from .image_encoder import Fp32LayerNorm, LayerNorm2d, scaled_dot_attention, sine_position_encoding


# ---------------------------------------------------------------------------------------
# rotary encoding (axial, 2-D)
# ---------------------------------------------------------------------------------------
def axial_rope_cos_sin(h: int, w: int, head_dim: int, theta: float, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Axial rotary tables for an h x w token grid (row-major tokens).

    Returns (cos, sin), each [h*w, head_dim // 2] fp32 on `device`: column j < head_dim/4 uses
    the x position (token % w), the rest the y position (token // w)."""
    nf = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4, device=device)[:nf].float() / head_dim))
    t = torch.arange(h * w, dtype=torch.float32, device=device)
    t_x = torch.remainder(t, float(w))
    t_y = torch.div(t, float(w), rounding_mode="floor")
    ang = torch.cat((torch.outer(t_x, freqs), torch.outer(t_y, freqs)), dim=1)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs of x [B,H,N,D] by tables cos/sin [T,D/2] (N a multiple of T: the
    table is tiled N/T times along the tokens). Computes in fp32, returns x's dtype."""
    n = x.shape[-2]
    r = n // cos.shape[0]
    if r > 1:
        cos = cos.repeat(r, 1)
        sin = sin.repeat(r, 1)
    xf = x.float().reshape(x.shape[0], x.shape[1], n, -1, 2)
    xr = xf[..., 0]
    xi = xf[..., 1]
    out = torch.stack((xr * cos - xi * sin, xr * sin + xi * cos), dim=-1)
    return out.flatten(3).to(x.dtype)


def apply_rope_complex(x: Tensor, h: int, w: int, theta: float) -> Tensor:
    """Upstream's complex-number formulation (eager only; used by the tests as the oracle)."""
    d = x.shape[-1]
    freqs = 1.0 / (theta ** (torch.arange(0, d, 4)[: (d // 4)].float() / d))
    t = torch.arange(h * w, dtype=torch.float32)
    t_x = t % w
    t_y = torch.div(t, w, rounding_mode="floor")
    cis = torch.cat(
        [torch.polar(torch.ones(h * w, d // 4), torch.outer(t_x, freqs)),
         torch.polar(torch.ones(h * w, d // 4), torch.outer(t_y, freqs))], dim=-1)
    r = x.shape[-2] // (h * w)
    cis = cis.repeat(r, 1).to(x.device)
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(xc * cis).flatten(3).to(x.dtype)


# ---------------------------------------------------------------------------------------
# memory encoder
# ---------------------------------------------------------------------------------------
class MaskDownSampler(nn.Module):
    """Mask [B,1,S,S] -> [B,embed_dim,S/total_stride,S/total_stride]: log_stride(total) x
    (Conv k/s/p, LayerNorm2d, GELU) with channels x stride^2 each, then a 1x1 conv.
    Names `encoder.{3i}` conv, `encoder.{3i+1}` norm, last `encoder.{3n}` conv."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        stride = cfg.memory_encoder_downsampler_stride
        total = cfg.memory_encoder_downsampler_total_stride
        num_layers = int(math.log2(total) // math.log2(stride))
        assert stride ** num_layers == total
        layers = []
        cin = 1
        cout = 1
        for _ in range(num_layers):
            cout = cin * stride * stride
            layers.append(nn.Conv2d(cin, cout, kernel_size=cfg.memory_encoder_downsampler_kernel_size,
                                    stride=stride, padding=cfg.memory_encoder_downsampler_padding))
            layers.append(LayerNorm2d(cout))
            layers.append(nn.GELU())
            cin = cout
        layers.append(nn.Conv2d(cout, cfg.memory_encoder_downsampler_embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block [B,C,H,W] -> [B,C,H,W]: dwconv, LayerNorm2d, pwconv1, GELU, pwconv2,
    layer scale `gamma` (checkpoint `g_weight`), residual."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        dim = cfg.memory_encoder_cx_dim
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=cfg.memory_encoder_cx_kernel_size,
                                padding=cfg.memory_encoder_cx_padding,
                                groups=dim if cfg.memory_encoder_cx_use_dwconv else 1)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        assert cfg.memory_encoder_cx_layer_scale_init_value > 0
        self.gamma = nn.Parameter(cfg.memory_encoder_cx_layer_scale_init_value * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        y = (self.gamma.to(y.dtype) * y).permute(0, 3, 1, 2)
        return x + y


class Fuser(nn.Module):
    """`layers.{i}` CXBlocks applied in turn, [B,C,H,W] -> [B,C,H,W]."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        assert not cfg.memory_encoder_fuser_input_projection
        self.layers = nn.ModuleList([CXBlock(cfg) for _ in range(cfg.memory_encoder_fuser_num_layers)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """SAM2 MemoryEncoder (checkpoint prefix `memory_encoder.`)."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        in_dim = cfg.memory_encoder_in_dim
        self.mask_downsampler = MaskDownSampler(cfg)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(cfg)
        assert cfg.memory_encoder_out_dim != in_dim
        self.out_proj = nn.Conv2d(in_dim, cfg.memory_encoder_out_dim, kernel_size=1)
        assert cfg.memory_encoder_pos_normalize
        self.pos_num_pos_feats = cfg.memory_encoder_pos_num_pos_feats
        self.pos_temperature = cfg.memory_encoder_pos_temperature
        self.pos_scale = cfg.memory_encoder_pos_scale

    def position_encoding(self, x: Tensor) -> Tensor:
        """Sine position encoding of x [B,C,h,w] -> [1,pos_feats,h,w] in x's dtype."""
        pos = sine_position_encoding(x.shape[-2], x.shape[-1], self.pos_num_pos_feats,
                                     self.pos_temperature, self.pos_scale, x.device)
        return pos.to(x.dtype)

    def forward(self, pix_feat: Tensor, mask_for_mem: Tensor) -> Tuple[Tensor, Tensor]:
        """pix_feat [B,256,h,w] (raw backbone top level), mask_for_mem [B,1,16h,16w] already
        mapped to memory scale (sigmoid*scale+bias; upstream's skip_mask_sigmoid=True path)
        -> (features [B,64,h,w], pos [1,64,h,w])."""
        m = self.mask_downsampler(mask_for_mem.to(pix_feat.dtype))
        x = self.pix_feat_proj(pix_feat) + m
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x)


# ---------------------------------------------------------------------------------------
# memory attention
# ---------------------------------------------------------------------------------------
class RoPEAttention(nn.Module):
    """Attention with axial RoPE on q and on the first (Nk - num_k_exclude_rope) keys.
    q [B,Nq,C], k/v [B,Nk,kv_in_dim] -> [B,Nq,C]. Names q_proj, k_proj, v_proj, out_proj."""

    def __init__(self, cfg: Sam2Config, kv_in_dim: int, rope_k_repeat: bool) -> None:
        super().__init__()
        dim = cfg.memory_attention_d_model
        internal = dim // cfg.memory_attention_downsample_rate
        self.num_heads = cfg.memory_attention_num_heads
        self.head_dim = internal // self.num_heads
        self.rope_theta = cfg.memory_attention_rope_theta
        self.rope_k_repeat = rope_k_repeat
        self.q_proj = nn.Linear(dim, internal)
        self.k_proj = nn.Linear(kv_in_dim, internal)
        self.v_proj = nn.Linear(kv_in_dim, internal)
        self.out_proj = nn.Linear(internal, dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, h: int, w: int, num_k_exclude_rope: int) -> Tensor:
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        cos, sin = axial_rope_cos_sin(h, w, self.head_dim, self.rope_theta, q.device)
        q = apply_rope(q, cos, sin)
        n_rope = k.shape[-2] - num_k_exclude_rope
        if q.shape[-2] != k.shape[-2]:
            assert self.rope_k_repeat
        if n_rope > 0:
            k = torch.cat((apply_rope(k[:, :, :n_rope], cos, sin), k[:, :, n_rope:]), dim=2)
        out = scaled_dot_attention(q, k, v)
        b, nh, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, nh * d))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memory (keys + memory pos),
    ReLU MLP. tgt [B,HW,C] -> [B,HW,C]."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        d = cfg.memory_attention_d_model
        assert cfg.memory_attention_activation == "relu"
        assert not cfg.memory_attention_pos_enc_at_attn
        assert cfg.memory_attention_pos_enc_at_cross_attn_keys
        assert not cfg.memory_attention_pos_enc_at_cross_attn_queries
        self.self_attn = RoPEAttention(cfg, d, cfg.memory_attention_self_rope_k_repeat)
        self.cross_attn_image = RoPEAttention(cfg, cfg.memory_attention_cross_kv_in_dim,
                                              cfg.memory_attention_cross_rope_k_repeat)
        self.linear1 = nn.Linear(d, cfg.memory_attention_dim_feedforward)
        self.linear2 = nn.Linear(cfg.memory_attention_dim_feedforward, d)
        eps = cfg.memory_attention_layer_norm_eps
        self.norm1 = Fp32LayerNorm(d, eps=eps)
        self.norm2 = Fp32LayerNorm(d, eps=eps)
        self.norm3 = Fp32LayerNorm(d, eps=eps)

    def forward(self, tgt: Tensor, memory: Tensor, memory_pos: Tensor, h: int, w: int,
                num_k_exclude_rope: int) -> Tensor:
        t2 = self.norm1(tgt)
        tgt = tgt + self.self_attn(t2, t2, t2, h, w, 0)
        t2 = self.norm2(tgt)
        tgt = tgt + self.cross_attn_image(t2, memory + memory_pos, memory, h, w, num_k_exclude_rope)
        t2 = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(t2)))


class MemoryAttention(nn.Module):
    """SAM2 MemoryAttention (checkpoint prefix `memory_attention.`), batch-first API.

    forward(curr [B,HW,C], curr_pos [B,HW,C], memory [B,M,mem_dim], memory_pos [B,M,mem_dim],
    h, w, num_obj_ptr_tokens) -> [B,HW,C]: adds 0.1*curr_pos at input, runs the layers, then
    the final LayerNorm `norm`."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        self.pos_enc_at_input = cfg.memory_attention_pos_enc_at_input
        self.layers = nn.ModuleList([MemoryAttentionLayer(cfg) for _ in range(cfg.memory_attention_num_layers)])
        self.norm = Fp32LayerNorm(cfg.memory_attention_d_model, eps=cfg.memory_attention_layer_norm_eps)

    def forward(self, curr: Tensor, curr_pos: Tensor, memory: Tensor, memory_pos: Tensor, h: int, w: int,
                num_obj_ptr_tokens: int) -> Tensor:
        out = curr
        if self.pos_enc_at_input:
            out = out + 0.1 * curr_pos
        for layer in self.layers:
            out = layer(out, memory, memory_pos, h, w, num_obj_ptr_tokens)
        return self.norm(out)
