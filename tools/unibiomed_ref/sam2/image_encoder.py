"""SAM2 image encoder: Hiera trunk + FPN neck + sine position encoding (TorchScript-able).

Written from the public SAM2 2.0 code (facebookresearch/sam2 `sam2/modeling/backbones/
hieradet.py`, `image_encoder.py`, `utils.py`, `sam2/modeling/position_encoding.py`) and the copy
vendored by UniBiomed (`third_parts/sam2/...`, identical in behaviour). Attribute names give the
checkpoint names `image_encoder.trunk.*` and `image_encoder.neck.*`.

Shapes at the real config (image 1024): patch embed -> [B,256,256,144] (channels last);
stage outputs [B,144,256,256], [B,288,128,128], [B,576,64,64], [B,1152,32,32];
FPN outputs (d_model 256) at strides 4, 8, 16, 32; `scalp=1` drops the stride-32 level.

Numerics: attention softmax and all LayerNorms run in fp32 and cast back (upstream's SDPA and
nn.LayerNorm do so on GPU). The bicubic window position embedding is computed in fp32 then cast.
Upstream's FPN upsamples the top-down feature in fp32 and adds it, which leaves the stride-16
level in fp32 under bf16 weights; here the sum is also done in fp32 but cast back to the input
dtype so every output has the input's dtype.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import Sam2Config


# ---------------------------------------------------------------------------------------
# shared small modules (also used by mask_decoder.py)
# ---------------------------------------------------------------------------------------
class Fp32LayerNorm(nn.LayerNorm):
    """nn.LayerNorm over the last dim that computes in fp32 and returns the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class LayerNorm2d(nn.Module):
    """Channel LayerNorm of [B,C,H,W] (SAM's LayerNorm2d, eps 1e-6), computed in fp32."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        u = xf.mean(1, keepdim=True)
        s = (xf - u).pow(2).mean(1, keepdim=True)
        xf = (xf - u) / torch.sqrt(s + self.eps)
        xf = self.weight.float()[:, None, None] * xf + self.bias.float()[:, None, None]
        return xf.to(x.dtype)


class MLP(nn.Module):
    """SAM2's MLP: `num_layers` Linear layers (`layers.{i}`), activation between them,
    optional sigmoid on the output. [..., input_dim] -> [..., output_dim]."""

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: str = "relu",
        sigmoid_output: bool = False,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            [nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim])]
        )
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.sigmoid_output = sigmoid_output

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = self.act(x)
        if self.sigmoid_output:
            x = torch.sigmoid(x)
        return x


def scaled_dot_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention, [B,h,Nq,d] x [B,h,Nk,d] x [B,h,Nk,dv] -> [B,h,Nq,dv].

    Scale 1/sqrt(d) (SDPA's default); softmax in fp32, cast back to v's dtype."""
    scale = 1.0 / math.sqrt(float(q.shape[-1]))
    attn = torch.matmul(q, k.transpose(-2, -1)).float() * scale
    attn = torch.softmax(attn, dim=-1).to(v.dtype)
    return torch.matmul(attn, v)


def sine_position_encoding(
    h: int, w: int, num_pos_feats: int, temperature: float, scale: float, device: torch.device
) -> Tensor:
    """SAM2 PositionEmbeddingSine (normalize=True) for an h x w map -> [1, num_pos_feats, h, w]
    fp32; channels are [pos_y (sin,cos interleaved), pos_x (...)], each num_pos_feats/2."""
    npf = num_pos_feats // 2
    eps = 1e-6
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    dim_t = torch.arange(npf, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / npf)
    py = y[:, None] / dim_t  # [h, npf]
    px = x[:, None] / dim_t  # [w, npf]
    py = torch.stack((py[:, 0::2].sin(), py[:, 1::2].cos()), dim=2).flatten(1)
    px = torch.stack((px[:, 0::2].sin(), px[:, 1::2].cos()), dim=2).flatten(1)
    pos_y = py[:, None, :].expand(h, w, npf)
    pos_x = px[None, :, :].expand(h, w, npf)
    return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1).unsqueeze(0).contiguous()


# ---------------------------------------------------------------------------------------
# Hiera
# ---------------------------------------------------------------------------------------
def window_partition(x: Tensor, window_size: int) -> Tuple[Tensor, int, int]:
    """[B,H,W,C] -> ([B*nW, ws, ws, C], Hp, Wp), zero-padding H, W up to multiples of ws."""
    B, H, W, C = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    pad_h = (window_size - H % window_size) % window_size
    pad_w = (window_size - W % window_size) % window_size
    if pad_h > 0 or pad_w > 0:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.reshape(B, Hp // window_size, window_size, Wp // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, C)
    return windows, Hp, Wp


def window_unpartition(windows: Tensor, window_size: int, Hp: int, Wp: int, H: int, W: int) -> Tensor:
    """[B*nW, ws, ws, C] -> [B, H, W, C] (drops the padding)."""
    B = windows.shape[0] // (Hp * Wp // window_size // window_size)
    x = windows.reshape(B, Hp // window_size, Wp // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, -1)
    if Hp > H or Wp > W:
        x = x[:, :H, :W, :]
    return x


def _max_pool_hw(x: Tensor, stride: int) -> Tensor:
    """Max-pool a channels-last [B,H,W,C] map by `stride` (kernel = stride, floor mode)."""
    y = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return y.permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """Conv 7x7 stride 4 pad 3: [B,3,S,S] -> [B,S/4,S/4,embed_dim] (channels last)."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        k, s, p = cfg.trunk_patch_kernel_size, cfg.trunk_patch_stride, cfg.trunk_patch_padding
        self.proj = nn.Conv2d(cfg.trunk_in_chans, cfg.trunk_embed_dim, (k, k), (s, s), (p, p))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Hiera attention on [B', H, W, dim] -> [B', H', W', dim_out]; with q pooling (stride
    `q_stride` > 0) the queries, and so the output, are max-pooled by q_stride."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int) -> None:
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        B, H, W = x.shape[0], x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(B, H * W, 3, self.num_heads, -1)
        q, k, v = qkv.unbind(2)  # [B, HW, heads, hd]
        if self.q_stride > 0:
            q = _max_pool_hw(q.reshape(B, H, W, -1), self.q_stride)
            H, W = q.shape[1], q.shape[2]
            q = q.reshape(B, H * W, self.num_heads, -1)
        o = scaled_dot_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        o = o.transpose(1, 2).reshape(B, H, W, -1)
        return self.proj(o)


class MultiScaleBlock(nn.Module):
    """Hiera block: [B,H,W,dim] -> [B,H/q,W/q,dim_out]. Windowed attention when
    window_size > 0 (global when 0); q pooling and a projected, pooled shortcut at stage
    transitions."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        q_stride: int,
        window_size: int,
        eps: float,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.dim_out = dim_out
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = Fp32LayerNorm(dim, eps=eps)
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_stride)
        self.norm2 = Fp32LayerNorm(dim_out, eps=eps)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, activation="gelu")
        self.has_proj = dim != dim_out
        # nn.Identity has no state: the checkpoint has `proj` only where dim changes
        self.proj: nn.Module = nn.Linear(dim, dim_out) if self.has_proj else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.has_proj:
            shortcut = self.proj(x)
            if self.q_stride > 0:
                shortcut = _max_pool_hw(shortcut, self.q_stride)
        H, W = x.shape[1], x.shape[2]
        Hp, Wp = H, W
        window_size = self.window_size
        if window_size > 0:
            x, Hp, Wp = window_partition(x, window_size)
        x = self.attn(x)
        if self.q_stride > 0:
            window_size = self.window_size // self.q_stride
            H, W = shortcut.shape[1], shortcut.shape[2]
            if window_size > 0:
                Hp = H + (window_size - H % window_size) % window_size
                Wp = W + (window_size - W % window_size) % window_size
        if self.window_size > 0:
            x = window_unpartition(x, window_size, Hp, Wp, H, W)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """Hiera trunk: [B,3,S,S] -> list of 4 stage outputs [B,C_i,S/4/2^i,S/4/2^i] (C_i =
    144, 288, 576, 1152 at the real config), highest resolution first."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        stages = list(cfg.trunk_stages)
        depth = sum(stages)
        self.stage_ends: List[int] = [sum(stages[:i]) - 1 for i in range(1, len(stages) + 1)]
        q_pool_blocks = [x + 1 for x in self.stage_ends[:-1]][: cfg.trunk_q_pool]
        self.window_spec = list(cfg.trunk_window_spec)
        self.patch_embed = PatchEmbed(cfg)
        embed_dim = cfg.trunk_embed_dim
        self.pos_embed = nn.Parameter(
            torch.zeros(1, embed_dim, *cfg.trunk_window_pos_embed_bkg_spatial_size)
        )
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, embed_dim, self.window_spec[0], self.window_spec[0])
        )
        num_heads = cfg.trunk_num_heads
        cur_stage = 1
        blocks: List[nn.Module] = []
        for i in range(depth):
            dim_out = embed_dim
            # the first block of a stage still uses the previous stage's window size
            window_size = self.window_spec[cur_stage - 1]
            if i in cfg.trunk_global_att_blocks:
                window_size = 0
            if i - 1 in self.stage_ends:
                dim_out = int(embed_dim * cfg.trunk_dim_mul)
                num_heads = int(num_heads * cfg.trunk_head_mul)
                cur_stage += 1
            q_stride = cfg.trunk_q_stride[0] if i in q_pool_blocks else 0
            assert cfg.trunk_q_stride[0] == cfg.trunk_q_stride[1]
            blocks.append(
                MultiScaleBlock(
                    embed_dim, dim_out, num_heads, cfg.trunk_mlp_ratio, q_stride,
                    window_size, cfg.trunk_norm_eps,
                )
            )
            embed_dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self.channel_list: List[int] = [
            cfg.trunk_stage_dims()[j] for j in range(len(stages) - 1, -1, -1)
        ]

    def _get_pos_embed(self, h: int, w: int, dtype: torch.dtype) -> Tensor:
        """Background embedding (bicubic-resized to h x w) + tiled window embedding,
        [1,h,w,C] in `dtype` (computed in fp32)."""
        pe = F.interpolate(self.pos_embed.float(), size=(h, w), mode="bicubic", align_corners=False)
        win = self.pos_embed_window.float()
        pe = pe + win.tile([1, 1, h // win.shape[2], w // win.shape[3]])
        return pe.permute(0, 2, 3, 1).to(dtype)

    def forward(self, x: Tensor) -> List[Tensor]:
        x = self.patch_embed(x)
        x = x + self._get_pos_embed(x.shape[1], x.shape[2], x.dtype)
        outputs: List[Tensor] = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs


# ---------------------------------------------------------------------------------------
# FPN neck and image encoder
# ---------------------------------------------------------------------------------------
class FpnNeck(nn.Module):
    """1x1 lateral convs (`convs.{j}.conv`, j=0 for the lowest resolution) + nearest top-down
    fusion on `fpn_top_down_levels`. Input: the 4 trunk outputs (high-res first); output: 4
    maps [B, d_model, ., .] in the same order."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        k = cfg.neck_kernel_size
        convs: List[nn.Module] = []
        for dim in cfg.neck_backbone_channel_list:
            seq = nn.Sequential()
            seq.add_module("conv", nn.Conv2d(dim, cfg.neck_d_model, kernel_size=k, stride=1, padding=0))
            convs.append(seq)
        self.convs = nn.ModuleList(convs)
        self.backbone_channel_list: List[int] = list(cfg.neck_backbone_channel_list)
        self.fpn_top_down_levels: List[int] = list(cfg.neck_fpn_top_down_levels)

    def forward(self, xs: List[Tensor]) -> List[Tensor]:
        n = len(xs) - 1
        laterals: List[Tensor] = []
        for j, conv in enumerate(self.convs):  # j = n - i (lowest resolution first)
            laterals.append(conv(xs[n - j]))
        out: List[Tensor] = []
        prev = laterals[0]
        out.append(prev)
        for j in range(1, n + 1):
            i = n - j
            lateral = laterals[j]
            if i in self.fpn_top_down_levels:
                top_down = F.interpolate(prev.float(), scale_factor=2.0, mode="nearest")
                prev = (lateral.float() + top_down).to(lateral.dtype)
            else:
                prev = lateral
            out.append(prev)
        out.reverse()  # high resolution first
        return out


class ImageEncoder(nn.Module):
    """`image_encoder`: trunk + neck. [B,3,S,S] -> (backbone_fpn, vision_pos_enc), each a list
    of 3 maps [B,256,S/4,S/4], [B,256,S/8,S/8], [B,256,S/16,S/16] after `scalp` (pos maps
    are [B,256,h,w] in the feature dtype)."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        cfg.validate()
        self.trunk = Hiera(cfg)
        self.neck = FpnNeck(cfg)
        assert self.trunk.channel_list == self.neck.backbone_channel_list
        self.scalp = cfg.scalp
        self.num_pos_feats = cfg.neck_pos_num_pos_feats
        self.pos_temperature = cfg.neck_pos_temperature
        self.pos_scale = cfg.neck_pos_scale

    def position_encoding(self, x: Tensor) -> Tensor:
        """Sine position encoding of a [B,C,h,w] map -> [B,256,h,w] in x's dtype."""
        pe = sine_position_encoding(
            x.shape[2], x.shape[3], self.num_pos_feats, self.pos_temperature, self.pos_scale, x.device
        )
        return pe.to(x.dtype).expand(x.shape[0], -1, -1, -1)

    def forward(self, sample: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        feats = self.neck(self.trunk(sample))
        feats = feats[: len(feats) - self.scalp]
        pos: List[Tensor] = []
        for f in feats:
            pos.append(self.position_encoding(f))
        return feats, pos
