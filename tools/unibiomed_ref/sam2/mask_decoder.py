"""SAM2 prompt encoder and mask decoder (two-way transformer), TorchScript-able.

Written from the public SAM2 2.0 code (`sam2/modeling/sam/prompt_encoder.py`, `mask_decoder.py`,
`transformer.py`, `sam2/modeling/position_encoding.py` PositionEmbeddingRandom,
`sam2/modeling/sam2_utils.py`) and UniBiomed's vendored copy. Attribute names give the checkpoint
names `sam_prompt_encoder.*` and `sam_mask_decoder.*`.

Real sizes: transformer_dim C = 256, 8 heads, depth 2, MLP 2048, cross attention at C/2 = 128;
1 obj-score token + 1 IoU token + 4 mask tokens; low-res masks at 4x the embedding (256x256).

Dtypes follow upstream: the dense positional encoding is computed in the dtype of
`positional_encoding_gaussian_matrix` (bf16 in a bf16 model, as in the release), the decoder casts
its image and token inputs to that dtype. Softmax and LayerNorms compute in fp32 and cast back.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .config import Sam2Config
from .image_encoder import MLP, Fp32LayerNorm, LayerNorm2d, scaled_dot_attention


# ---------------------------------------------------------------------------------------
# prompt encoder
# ---------------------------------------------------------------------------------------
class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features: buffer `positional_encoding_gaussian_matrix` [2, C/2]."""

    def __init__(self, num_pos_feats: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn((2, num_pos_feats)))

    def pe_encoding(self, coords: Tensor) -> Tensor:
        """coords in [0,1]^2, [..., 2] (x, y) -> [..., C] = [sin, cos] of 2*pi*(2c-1) @ G,
        computed in G's dtype (as upstream)."""
        g = self.positional_encoding_gaussian_matrix
        c = (2 * coords - 1).to(g.dtype)
        c = 2 * math.pi * torch.matmul(c, g)
        return torch.cat([torch.sin(c), torch.cos(c)], dim=-1)

    def forward(self, h: int, w: int) -> Tensor:
        """Dense encoding of an h x w grid (pixel centres) -> [C, h, w]."""
        g = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, dtype=torch.float32, device=g.device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=g.device) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.pe_encoding(grid).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """`sam_prompt_encoder`: point / mask prompts -> sparse [B,N,C] and dense [B,C,h,w]."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        c = cfg.hidden_dim
        self.embed_dim = c
        self.input_image_size = cfg.image_size
        self.image_embedding_size = cfg.image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(c // 2)
        self.point_embeddings = nn.ModuleList([nn.Embedding(1, c) for _ in range(4)])
        self.not_a_point_embed = nn.Embedding(1, c)
        mic = cfg.prompt_mask_in_chans
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mic // 4, kernel_size=2, stride=2),
            LayerNorm2d(mic // 4),
            nn.GELU(),
            nn.Conv2d(mic // 4, mic, kernel_size=2, stride=2),
            LayerNorm2d(mic),
            nn.GELU(),
            nn.Conv2d(mic, c, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, c)

    def get_dense_pe(self, h: int, w: int) -> Tensor:
        """[1, C, h, w] positional encoding of the image-embedding grid."""
        return self.pe_layer(h, w).unsqueeze(0)

    def embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """points [B,N,2] (x, y pixels in the image_size frame), labels [B,N] int (-1 pad,
        0 neg, 1 pos, 2/3 box corners) -> [B, N(+1), C]. With `pad`, one (0,0) point of label
        -1 is appended (SAM2 does so when no box is given)."""
        points = points.float() + 0.5
        if pad:
            points = torch.cat([points, torch.zeros_like(points[:, :1])], dim=1)
            labels = torch.cat([labels, -torch.ones_like(labels[:, :1])], dim=1)
        emb = self.pe_layer.pe_encoding(points / float(self.input_image_size))
        lab = labels.unsqueeze(-1)
        emb = torch.where(lab == -1, torch.zeros_like(emb) + self.not_a_point_embed.weight.to(emb.dtype), emb)
        for i, pe in enumerate(self.point_embeddings):
            emb = torch.where(lab == i, emb + pe.weight.to(emb.dtype), emb)
        return emb

    def language_sparse_embeddings(self, language_embed: Tensor) -> Tensor:
        """The release's sparse prompt for a language embedding [B,C] -> [B,3,C]:
        [not_a_point, not_a_point, language_embed]. (SAM2Base pads the empty point set with
        one point of label -1 and the prompt encoder appends a pad point of label -1; both
        embeddings are *replaced* by not_a_point_embed, so no positional term remains; the
        extension then concatenates the language embedding.)"""
        b = language_embed.shape[0]
        nap = self.not_a_point_embed.weight.to(language_embed.dtype)  # [1, C]
        return torch.cat([nap[None].expand(b, 2, -1), language_embed[:, None, :]], dim=1)

    def dense_no_mask(self, b: int, h: int, w: int) -> Tensor:
        """`no_mask_embed` broadcast to [b, C, h, w]."""
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, h, w)

    def embed_masks(self, masks: Tensor) -> Tensor:
        """Mask prompt [B,1,4h,4w] (logits) -> dense [B,C,h,w]."""
        return self.mask_downscaling(masks)


# ---------------------------------------------------------------------------------------
# two-way transformer
# ---------------------------------------------------------------------------------------
class Attention(nn.Module):
    """SAM attention with optional internal down-projection (embedding_dim / downsample_rate)."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        assert self.internal_dim % num_heads == 0
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape[0], x.shape[1], x.shape[2]
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q [B,Nq,C], k/v [B,Nk,C] -> [B,Nq,C]."""
        o = scaled_dot_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        )
        b, nq = o.shape[0], o.shape[2]
        return self.out_proj(o.transpose(1, 2).reshape(b, nq, self.internal_dim))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attn, token->image cross-attn, token MLP, image->token cross-attn."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, downsample: int, skip_first_layer_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = Fp32LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample)
        self.norm2 = Fp32LayerNorm(dim)
        self.mlp = MLP(dim, mlp_dim, dim, 2, activation="relu")
        self.norm3 = Fp32LayerNorm(dim)
        self.norm4 = Fp32LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor) -> Tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """`sam_mask_decoder.transformer`: image [B,C,h,w] + pe [B,C,h,w] + tokens [B,N,C]
    -> (tokens [B,N,C], image tokens [B,hw,C])."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        c = cfg.hidden_dim
        heads = cfg.decoder_transformer_num_heads
        ds = cfg.decoder_attention_downsample_rate
        self.layers = nn.ModuleList(
            [
                TwoWayAttentionBlock(c, heads, cfg.decoder_transformer_mlp_dim, ds, i == 0)
                for i in range(cfg.decoder_transformer_depth)
            ]
        )
        self.final_attn_token_to_image = Attention(c, heads, ds)
        self.norm_final_attn = Fp32LayerNorm(c)

    def forward(self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor) -> Tuple[Tensor, Tensor]:
        image_embedding = image_embedding.flatten(2).permute(0, 2, 1)
        image_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        keys = image_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, image_pe)
        q = queries + point_embedding
        k = keys + image_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


# ---------------------------------------------------------------------------------------
# mask decoder
# ---------------------------------------------------------------------------------------
def _deconv2x2(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """ConvTranspose2d with kernel 2, stride 2 (non-overlapping) as one matmul:
    x [B,Cin,H,W], weight [Cin,Cout,2,2] -> [B,Cout,2H,2W]. Same result as
    F.conv_transpose2d; used because torch 1.13's CPU bf16 conv_transpose2d is broken."""
    b, cin, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    cout = weight.shape[1]
    y = torch.matmul(x.permute(0, 2, 3, 1), weight.reshape(cin, cout * 4))  # [B,H,W,Cout*4]
    y = y.reshape(b, h, w, cout, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, cout, 2 * h, 2 * w)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y


class MaskDecoder(nn.Module):
    """`sam_mask_decoder` (SAM2 with high-res features and object-score prediction)."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        c = cfg.hidden_dim
        assert cfg.pred_obj_scores and cfg.use_high_res_features_in_sam
        self.transformer_dim = c
        self.transformer = TwoWayTransformer(cfg)
        self.num_mask_tokens = cfg.num_mask_tokens
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.obj_score_token = nn.Embedding(1, c)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.conv_s0 = nn.Conv2d(c, c // 8, kernel_size=1, stride=1)
        self.conv_s1 = nn.Conv2d(c, c // 4, kernel_size=1, stride=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            [MLP(c, c, c // 8, 3) for _ in range(self.num_mask_tokens)]
        )
        self.iou_prediction_head = MLP(
            c, cfg.decoder_iou_head_hidden_dim, self.num_mask_tokens, cfg.decoder_iou_head_depth,
            sigmoid_output=cfg.iou_prediction_use_sigmoid,
        )
        self.pred_obj_score_head: nn.Module = (
            MLP(c, c, 1, 3) if cfg.pred_obj_scores_mlp else nn.Linear(c, 1)
        )

    def predict_masks(
        self,
        image_embeddings: Tensor,
        image_pe: Tensor,
        sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor,
        feat_s0: Tensor,
        feat_s1: Tensor,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """All 4 mask outputs (token 0 = single-mask output, 1..3 = multimask).

        image_embeddings [B,C,h,w], image_pe [1,C,h,w], sparse [B,N,C], dense [B,C,h,w],
        feat_s0 [B,C/8,4h,4w], feat_s1 [B,C/4,2h,2w] (already through conv_s0 / conv_s1)
        -> masks [B,4,4h,4w], iou_pred [B,4], mask_tokens_out [B,4,C], obj_score_logits [B,1].
        """
        b = sparse_prompt_embeddings.shape[0]
        dtype = image_pe.dtype
        output_tokens = torch.cat(
            [self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], dim=0
        )
        tokens = torch.cat(
            [output_tokens.to(dtype)[None].expand(b, -1, -1), sparse_prompt_embeddings.to(dtype)], dim=1
        )
        src = (image_embeddings + dense_prompt_embeddings.to(image_embeddings.dtype)).to(dtype)
        pos_src = image_pe.expand(b, -1, -1, -1)
        c, h, w = src.shape[1], src.shape[2], src.shape[3]
        hs, src_t = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 1, :]
        mask_tokens_out = hs[:, 2 : 2 + self.num_mask_tokens, :]

        src = src_t.transpose(1, 2).reshape(b, c, h, w)
        dc1 = self.output_upscaling[0]
        dc2 = self.output_upscaling[3]
        up = _deconv2x2(src, dc1.weight, dc1.bias) + feat_s1.to(dtype)
        up = self.output_upscaling[2](self.output_upscaling[1](up))
        up = _deconv2x2(up, dc2.weight, dc2.bias) + feat_s0.to(dtype)
        up = self.output_upscaling[4](up)

        hyper: List[Tensor] = []
        for i, mlp in enumerate(self.output_hypernetworks_mlps):
            hyper.append(mlp(mask_tokens_out[:, i, :]))
        hyper_in = torch.stack(hyper, dim=1)  # [B, 4, C/8]
        uc, uh, uw = up.shape[1], up.shape[2], up.shape[3]
        masks = torch.matmul(hyper_in, up.reshape(b, uc, uh * uw)).reshape(b, -1, uh, uw)
        iou_pred = self.iou_prediction_head(iou_token_out)
        obj_score_logits = self.pred_obj_score_head(hs[:, 0, :])
        return masks, iou_pred, mask_tokens_out, obj_score_logits
