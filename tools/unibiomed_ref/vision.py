"""InternViT-300M-448px-V2_5 vision encoder, pixel shuffle and the `mlp1` projector.

This is the vision half of InternVL2.5-1B as used by UniBiomed (via Sa2VA). Parameter names
reproduce the checkpoint's, under the prefixes ``vision_model.`` (:class:`InternVisionModel`)
and ``mlp1.`` (:func:`build_mlp1`)::

    vision_model.embeddings.class_embedding              [1, 1, C]
    vision_model.embeddings.patch_embedding.{weight,bias} [C, 3, P, P], [C]
    vision_model.embeddings.position_embedding           [1, G*G + 1, C]   (G = image / patch)
    vision_model.encoder.layers.{i}.norm1.{weight,bias}  [C]          (LayerNorm, eps 1e-6)
    vision_model.encoder.layers.{i}.attn.qkv.{weight,bias} [3C, C], [3C]
    vision_model.encoder.layers.{i}.attn.proj.{weight,bias} [C, C], [C]
    vision_model.encoder.layers.{i}.ls1 / ls2            [C]          (layer scale)
    vision_model.encoder.layers.{i}.norm2.{weight,bias}  [C]
    vision_model.encoder.layers.{i}.mlp.fc1.{weight,bias} [I, C], [I]
    vision_model.encoder.layers.{i}.mlp.fc2.{weight,bias} [C, I], [C]
    mlp1.0.{weight,bias} [C*r*r]   mlp1.1.{weight,bias} [D, C*r*r], [D]   mlp1.3.{weight,bias} [D, D], [D]

with r = 1 / downsample_ratio and D the LLM hidden size. There is no final norm after the last
encoder layer; with ``select_layer == -1`` the output of the last layer is used as is.

Order of operations (InternVL2.5 ``extract_feature``):
  patch conv -> [CLS | patches] + position embedding (the patch part bicubically resized,
  align_corners=False, in fp32, when the patch grid differs from the trained G x G) ->
  N x (x + ls1 * attn(norm1(x)); x + ls2 * mlp(norm2(x))) -> drop CLS -> [N, h, w, C] ->
  pixel shuffle (ps_version v2) -> [N, h*w/r^2, C*r^2] -> mlp1 (LayerNorm eps 1e-5, Linear,
  exact GELU, Linear).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass(frozen=True)
class InternVitConfig:
    """InternViT-300M-448px-V2_5 plus the InternVL2.5 projector settings (real defaults)."""

    image_size: int = 448
    patch_size: int = 14
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    qkv_bias: bool = True
    qk_normalization: bool = False
    norm_type: str = "layer_norm"  # "layer_norm" (V2_5) or "rms_norm" (older InternViT)
    layer_norm_eps: float = 1e-6
    initializer_factor: float = 0.1  # initial layer-scale value (checkpoint overrides it)
    # InternVL2.5 glue: which layer's output is used, pixel shuffle and projector.
    select_layer: int = -1
    downsample_ratio: float = 0.5
    ps_version: str = "v2"
    llm_hidden_size: int = 896  # mlp1 output = language-model hidden size
    projector_ln_eps: float = 1e-5  # mlp1.0 is a default nn.LayerNorm

    @property
    def grid(self) -> int:
        """Patches per side of a trained-size tile (32 for 448 / 14)."""
        return self.image_size // self.patch_size

    @property
    def shuffle_factor(self) -> int:
        """r = 1 / downsample_ratio (2 for 0.5)."""
        r = int(round(1.0 / self.downsample_ratio))
        if abs(r * self.downsample_ratio - 1.0) > 1e-9:
            raise ValueError("downsample_ratio must be 1/r for an integer r")
        return r

    @property
    def projector_in(self) -> int:
        """mlp1 input width C * r^2 (4096)."""
        return self.hidden_size * self.shuffle_factor ** 2

    @property
    def tokens_per_tile(self) -> int:
        """Vision tokens per tile after pixel shuffle (256)."""
        return (self.grid // self.shuffle_factor) ** 2

    @property
    def layers_used(self) -> int:
        """Encoder layers that run: hidden_states[select_layer] needs that many."""
        n = self.num_hidden_layers
        return n + 1 + self.select_layer if self.select_layer < 0 else self.select_layer


class InternRMSNorm(nn.Module):
    """RMSNorm computed in fp32 and cast back (weight only). x: [..., C] -> [..., C]."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


def _make_norm(config: InternVitConfig, size: int) -> nn.Module:
    if config.norm_type == "layer_norm":
        return nn.LayerNorm(size, eps=config.layer_norm_eps)
    if config.norm_type == "rms_norm":
        return InternRMSNorm(size, config.layer_norm_eps)
    raise ValueError(f"unknown norm_type {config.norm_type!r}")


class InternVisionEmbeddings(nn.Module):
    """pixel_values [N, 3, H, W] -> tokens [N, 1 + (H/P)*(W/P), C] (CLS first)."""

    def __init__(self, config: InternVitConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.grid = config.grid
        self.class_embedding = nn.Parameter(torch.randn(1, 1, c))
        self.patch_embedding = nn.Conv2d(3, c, kernel_size=config.patch_size, stride=config.patch_size)
        self.position_embedding = nn.Parameter(torch.randn(1, self.grid * self.grid + 1, c))

    def _patch_positions(self, h: int, w: int) -> Tensor:
        """Position embeddings of the patches, [1, h*w, C]; bicubic-resized in fp32 if needed."""
        pos = self.position_embedding[:, 1:, :]
        if h == self.grid and w == self.grid:
            return pos  # bicubic resize to the same size is the identity
        dtype = pos.dtype
        grid = pos.float().reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.reshape(1, -1, h * w).permute(0, 2, 1).to(dtype)

    def forward(self, pixel_values: Tensor) -> Tensor:
        dtype = self.patch_embedding.weight.dtype
        patches = self.patch_embedding(pixel_values.to(dtype))  # [N, C, h, w]
        n, _, h, w = patches.shape
        patches = patches.flatten(2).transpose(1, 2)  # [N, h*w, C]
        cls = self.class_embedding.expand(n, 1, -1).to(dtype)
        pos = torch.cat([self.position_embedding[:, :1, :], self._patch_positions(h, w)], dim=1)
        return torch.cat([cls, patches], dim=1) + pos.to(dtype)


class InternAttention(nn.Module):
    """Bidirectional multi-head self-attention. x [N, S, C] -> [N, S, C].

    Upstream's eager path computes ``softmax((q * scale) @ k^T)`` in the model dtype and its
    flash-attention path in fp32; here the softmax runs in fp32 and is cast back.
    """

    def __init__(self, config: InternVitConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = c // self.num_heads
        if self.head_dim * self.num_heads != c:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(c, 3 * c, bias=config.qkv_bias)
        self.qk_normalization = config.qk_normalization
        # q_norm / k_norm exist only with qk_normalization (InternViT-6B); Identity otherwise.
        self.q_norm = InternRMSNorm(c, config.layer_norm_eps) if self.qk_normalization else nn.Identity()
        self.k_norm = InternRMSNorm(c, config.layer_norm_eps) if self.qk_normalization else nn.Identity()
        self.proj = nn.Linear(c, c)

    def forward(self, x: Tensor) -> Tensor:
        n, s, c = x.shape
        qkv = self.qkv(x).reshape(n, s, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(2)  # each [N, S, heads, D]
        if self.qk_normalization:
            q = self.q_norm(q.flatten(2)).view(n, s, self.num_heads, self.head_dim)
            k = self.k_norm(k.flatten(2)).view(n, s, self.num_heads, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [N, heads, S, D]
        scores = torch.matmul(q * self.scale, k.transpose(-2, -1))
        probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(n, s, c)
        return self.proj(out)


class InternMLP(nn.Module):
    """fc1 -> exact GELU -> fc2. x [..., C] -> [..., C]."""

    def __init__(self, config: InternVitConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class InternVisionEncoderLayer(nn.Module):
    """Pre-norm block with layer scale. x [N, S, C] -> [N, S, C]."""

    def __init__(self, config: InternVitConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.attn = InternAttention(config)
        self.mlp = InternMLP(config)
        self.norm1 = _make_norm(config, c)
        self.norm2 = _make_norm(config, c)
        self.ls1 = nn.Parameter(config.initializer_factor * torch.ones(c))
        self.ls2 = nn.Parameter(config.initializer_factor * torch.ones(c))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x).to(x.dtype)) * self.ls1
        x = x + self.mlp(self.norm2(x).to(x.dtype)) * self.ls2
        return x


class InternVisionEncoder(nn.Module):
    """Stack of encoder layers (``encoder.layers.{i}``)."""

    def __init__(self, config: InternVitConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([InternVisionEncoderLayer(config) for _ in range(config.num_hidden_layers)])


class InternVisionModel(nn.Module):
    """InternViT (``vision_model.``). pixel_values [N, 3, H, W] -> hidden [N, 1 + h*w, C].

    Returns ``hidden_states[select_layer]`` of upstream: with select_layer = -1 the output of the
    last layer (no final norm); otherwise only the first ``config.layers_used`` layers run.
    """

    def __init__(self, config: InternVitConfig) -> None:
        super().__init__()
        self.embeddings = InternVisionEmbeddings(config)
        self.encoder = InternVisionEncoder(config)
        self.layers_used = config.layers_used

    def forward(self, pixel_values: Tensor) -> Tensor:
        x = self.embeddings(pixel_values)
        for i, layer in enumerate(self.encoder.layers):
            if i < self.layers_used:
                x = layer(x)
        return x


def build_mlp1(config: InternVitConfig) -> nn.Sequential:
    """The projector ``mlp1``: LayerNorm(C r^2) -> Linear(C r^2, D) -> GELU -> Linear(D, D)."""
    return nn.Sequential(
        nn.LayerNorm(config.projector_in, eps=config.projector_ln_eps),
        nn.Linear(config.projector_in, config.llm_hidden_size),
        nn.GELU(),
        nn.Linear(config.llm_hidden_size, config.llm_hidden_size),
    )


def pixel_shuffle(x: Tensor, r: int) -> Tensor:
    """InternVL pixel shuffle, ps_version v2, scale 1/r. x [N, h, w, C] -> [N, h/r, w/r, C*r*r].

    Output cell (i, j), channel ``(di * r + dj) * C + c`` is input row ``i*r + di``, column
    ``j*r + dj``, channel ``c`` (as upstream's two view/permute steps produce); v2 swaps the
    spatial axes back so the output grid stays row-major.
    """
    n, h, w, c = x.shape
    x = x.reshape(n, h, w // r, c * r)  # merge r neighbouring columns into channels
    x = x.permute(0, 2, 1, 3).contiguous()  # [N, w/r, h, C r]
    x = x.reshape(n, w // r, h // r, c * r * r)  # merge r neighbouring rows into channels
    return x.permute(0, 2, 1, 3).contiguous()  # v2: back to [N, h/r, w/r, C r^2]


class VisionEncoder(nn.Module):
    """Scriptable ``extract_feature``: pixel_values [N, 3, S, S] -> vision tokens [N, T, D].

    For 448 x 448 tiles T = 256 and D = 896. Holds references to the checkpoint modules, so
    its state_dict keys are ``vision_model.*`` and ``mlp1.*``.
    """

    def __init__(self, vision_model: InternVisionModel, mlp1: nn.Sequential, config: InternVitConfig) -> None:
        super().__init__()
        if config.ps_version != "v2":
            raise ValueError("only ps_version v2 is implemented")
        self.vision_model = vision_model
        self.mlp1 = mlp1
        self.patch_size = config.patch_size
        self.r = config.shuffle_factor

    def forward(self, pixel_values: Tensor) -> Tensor:
        h = pixel_values.shape[2] // self.patch_size
        w = pixel_values.shape[3] // self.patch_size
        tokens = self.vision_model(pixel_values)[:, 1:, :]  # drop CLS: [N, h*w, C]
        grid = tokens.reshape(tokens.shape[0], h, w, tokens.shape[2])
        shuffled = pixel_shuffle(grid, self.r)
        shuffled = shuffled.reshape(shuffled.shape[0], -1, shuffled.shape[3])
        return self.mlp1(shuffled)


def checkpoint_shapes(config: InternVitConfig) -> Dict[str, List[int]]:
    """Expected checkpoint names -> shapes for ``vision_model.*`` and ``mlp1.*`` (by formula)."""
    c, i, p = config.hidden_size, config.intermediate_size, config.patch_size
    out: Dict[str, List[int]] = {
        "vision_model.embeddings.class_embedding": [1, 1, c],
        "vision_model.embeddings.patch_embedding.weight": [c, 3, p, p],
        "vision_model.embeddings.patch_embedding.bias": [c],
        "vision_model.embeddings.position_embedding": [1, config.grid ** 2 + 1, c],
    }
    norm_params = ["weight", "bias"] if config.norm_type == "layer_norm" else ["weight"]
    for n in range(config.num_hidden_layers):
        pre = f"vision_model.encoder.layers.{n}."
        out[pre + "attn.qkv.weight"] = [3 * c, c]
        if config.qkv_bias:
            out[pre + "attn.qkv.bias"] = [3 * c]
        if config.qk_normalization:
            out[pre + "attn.q_norm.weight"] = [c]
            out[pre + "attn.k_norm.weight"] = [c]
        out[pre + "attn.proj.weight"] = [c, c]
        out[pre + "attn.proj.bias"] = [c]
        out[pre + "mlp.fc1.weight"] = [i, c]
        out[pre + "mlp.fc1.bias"] = [i]
        out[pre + "mlp.fc2.weight"] = [c, i]
        out[pre + "mlp.fc2.bias"] = [c]
        for norm in ("norm1", "norm2"):
            for param in norm_params:
                out[pre + f"{norm}.{param}"] = [c]
        out[pre + "ls1"] = [c]
        out[pre + "ls2"] = [c]
    k, d = config.projector_in, config.llm_hidden_size
    out.update({
        "mlp1.0.weight": [k], "mlp1.0.bias": [k],
        "mlp1.1.weight": [d, k], "mlp1.1.bias": [d],
        "mlp1.3.weight": [d, d], "mlp1.3.bias": [d],
    })
    return out
