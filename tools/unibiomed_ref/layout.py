"""The released UniBiomed checkpoint's tensor table, computed from the public configs.

This module is written independently of the reference modules: it reads only the sizes published
in the upstream configs and the parameter-creating code of the upstream classes (cited per group
below), so that the table can cross-check both the reference model and a downloaded checkpoint.

Row format of ``data/unibiomed_checkpoint_layout.tsv``::

    name <TAB> dtype <TAB> shape (comma-separated) <TAB> source

Run ``/usr/bin/python3 tools/unibiomed_ref/layout.py`` to regenerate the table (``--check``
compares the file on disk with the computed table instead of writing it).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from typing import Dict, List, NamedTuple, Sequence, Tuple

Shape = Tuple[int, ...]

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
LAYOUT_TSV = os.path.join(DATA_DIR, "unibiomed_checkpoint_layout.tsv")

# Bytes per element for the safetensors dtype names used in the table.
DTYPE_BYTES: Dict[str, int] = {"BF16": 2, "F16": 2, "F32": 4}


class LayoutRow(NamedTuple):
    """One tensor of the checkpoint."""

    name: str
    dtype: str
    shape: Shape
    source: str


@dataclasses.dataclass(frozen=True)
class LayoutConfig:
    """Config numbers that decide the checkpoint's shapes (defaults: the release)."""

    # InternViT-300M-448px-V2_5 (InternVL2_5-1B config.json "vision_config").
    vit_hidden: int = 1024
    vit_layers: int = 24
    vit_intermediate: int = 4096
    vit_image: int = 448
    vit_patch: int = 14
    vit_qkv_bias: bool = True
    vit_qk_norm: bool = False
    # Pixel shuffle downsample 0.5 -> mlp1 input is hidden * (1/0.5)**2.
    downsample_inv: int = 2
    # Qwen2.5-0.5B-Instruct as shipped inside InternVL2_5-1B ("llm_config").
    llm_hidden: int = 896
    llm_layers: int = 24
    llm_heads: int = 14
    llm_kv_heads: int = 2
    llm_intermediate: int = 4864
    # 151674 (InternVL2_5-1B tokenizer incl. <img>,</img>,<IMG_CONTEXT>,<quad>,</quad>,<ref>,
    # </ref>,<box>,</box>) + 5 Sa2VA tokens [SEG],<p>,</p>,<vp>,</vp> -> resize_token_embeddings.
    vocab_size: int = 151679
    # SAM2 Hiera-L (sam2_hiera_l.yaml, SAM2 not 2.1).
    sam_embed: int = 144
    sam_stages: Tuple[int, ...] = (2, 6, 36, 4)
    sam_window_spec: Tuple[int, ...] = (8, 4, 16, 8)
    sam_pos_bkg: Tuple[int, int] = (7, 7)
    sam_d_model: int = 256
    sam_mem_dim: int = 64
    sam_num_maskmem: int = 7
    sam_mem_attn_layers: int = 4
    sam_mem_attn_ff: int = 2048
    sam_fuser_layers: int = 2
    sam_decoder_depth: int = 2
    sam_decoder_mlp: int = 2048
    sam_num_multimask: int = 3
    sam_mask_in_chans: int = 16
    dtype: str = "BF16"


class _Builder:
    """Collects rows; small helpers mirror torch's parameter shapes."""

    def __init__(self, dtype: str) -> None:
        self.rows: List[LayoutRow] = []
        self.dtype = dtype

    def param(self, name: str, shape: Sequence[int], source: str) -> None:
        self.rows.append(LayoutRow(name, self.dtype, tuple(int(s) for s in shape), source))

    def linear(self, name: str, n_in: int, n_out: int, source: str, bias: bool = True) -> None:
        """torch.nn.Linear: weight (out, in), bias (out)."""
        self.param(name + ".weight", (n_out, n_in), source)
        if bias:
            self.param(name + ".bias", (n_out,), source)

    def norm(self, name: str, dim: int, source: str, bias: bool = True) -> None:
        """LayerNorm / LayerNorm2d (weight, bias) or RMSNorm (weight only)."""
        self.param(name + ".weight", (dim,), source)
        if bias:
            self.param(name + ".bias", (dim,), source)

    def conv(self, name: str, c_in: int, c_out: int, k: int, source: str, groups: int = 1) -> None:
        """torch.nn.Conv2d: weight (out, in/groups, k, k), bias (out)."""
        self.param(name + ".weight", (c_out, c_in // groups, k, k), source)
        self.param(name + ".bias", (c_out,), source)

    def conv_t(self, name: str, c_in: int, c_out: int, k: int, source: str) -> None:
        """torch.nn.ConvTranspose2d: weight (in, out, k, k), bias (out)."""
        self.param(name + ".weight", (c_in, c_out, k, k), source)
        self.param(name + ".bias", (c_out,), source)

    def mlp(self, name: str, dims: Sequence[int], source: str) -> None:
        """SAM2 ``MLP``: ``layers.i`` = Linear(dims[i], dims[i+1])."""
        for i in range(len(dims) - 1):
            self.linear(f"{name}.layers.{i}", dims[i], dims[i + 1], source)


def _vision(b: _Builder, c: LayoutConfig) -> None:
    # InternVL modeling_intern_vit.py (InternVisionEmbeddings, InternVisionEncoderLayer);
    # InternVL2_5-1B vision_config: norm_type layer_norm, qkv_bias true, qk_normalization false.
    src_e = "InternVL2.5 modeling_intern_vit.py InternVisionEmbeddings"
    src_l = "InternVL2.5 modeling_intern_vit.py InternVisionEncoderLayer"
    d = c.vit_hidden
    n_pos = (c.vit_image // c.vit_patch) ** 2 + 1  # patches + CLS
    b.param("vision_model.embeddings.class_embedding", (1, 1, d), src_e)
    b.conv("vision_model.embeddings.patch_embedding", 3, d, c.vit_patch, src_e)
    b.param("vision_model.embeddings.position_embedding", (1, n_pos, d), src_e)
    for i in range(c.vit_layers):
        p = f"vision_model.encoder.layers.{i}"
        b.linear(p + ".attn.qkv", d, 3 * d, src_l, bias=c.vit_qkv_bias)
        if c.vit_qk_norm:
            b.norm(p + ".attn.q_norm", d, src_l, bias=False)
            b.norm(p + ".attn.k_norm", d, src_l, bias=False)
        b.linear(p + ".attn.proj", d, d, src_l)
        b.linear(p + ".mlp.fc1", d, c.vit_intermediate, src_l)
        b.linear(p + ".mlp.fc2", c.vit_intermediate, d, src_l)
        b.norm(p + ".norm1", d, src_l)
        b.norm(p + ".norm2", d, src_l)
        b.param(p + ".ls1", (d,), src_l)
        b.param(p + ".ls2", (d,), src_l)


def _projector(b: _Builder, c: LayoutConfig) -> None:
    # InternVL modeling_internvl_chat.py / Sa2VA modeling_sa2va_chat.py: mlp1 = Sequential(
    # LayerNorm(4096), Linear(4096, 896), GELU, Linear(896, 896)).
    src = "InternVL2.5 modeling_internvl_chat.py mlp1"
    d_in = c.vit_hidden * c.downsample_inv ** 2
    b.norm("mlp1.0", d_in, src)
    b.linear("mlp1.1", d_in, c.llm_hidden, src)
    b.linear("mlp1.3", c.llm_hidden, c.llm_hidden, src)


def _language(b: _Builder, c: LayoutConfig) -> None:
    # HF transformers modeling_qwen2.py: Qwen2Attention (q/k/v bias, o no bias), Qwen2MLP, RMSNorm.
    # rotary inv_freq is a non-persistent buffer (not saved). LoRA (r=128) merged before export.
    src = "Qwen2 modeling_qwen2.py Qwen2DecoderLayer (LoRA merged)"
    h = c.llm_hidden
    hd = h // c.llm_heads
    kv = c.llm_kv_heads * hd
    b.param("language_model.model.embed_tokens.weight", (c.vocab_size, h),
            "Qwen2 modeling_qwen2.py embed_tokens, resized for Sa2VA special tokens")
    for i in range(c.llm_layers):
        p = f"language_model.model.layers.{i}"
        b.linear(p + ".self_attn.q_proj", h, h, src)
        b.linear(p + ".self_attn.k_proj", h, kv, src)
        b.linear(p + ".self_attn.v_proj", h, kv, src)
        b.linear(p + ".self_attn.o_proj", h, h, src, bias=False)
        b.linear(p + ".mlp.gate_proj", h, c.llm_intermediate, src, bias=False)
        b.linear(p + ".mlp.up_proj", h, c.llm_intermediate, src, bias=False)
        b.linear(p + ".mlp.down_proj", c.llm_intermediate, h, src, bias=False)
        b.norm(p + ".input_layernorm", h, src, bias=False)
        b.norm(p + ".post_attention_layernorm", h, src, bias=False)
    b.norm("language_model.model.norm", h, "Qwen2 modeling_qwen2.py Qwen2Model.norm", bias=False)
    # InternVL2_5-1B llm_config tie_word_embeddings false: lm_head is its own tensor.
    b.linear("language_model.lm_head", h, c.vocab_size,
             "Qwen2 modeling_qwen2.py lm_head (untied), resized for Sa2VA special tokens", bias=False)


def _text_hidden_fcs(b: _Builder, c: LayoutConfig) -> None:
    # Sa2VA llava_sam2.py / modeling_sa2va_chat.py: Linear(896,896), ReLU, Linear(896,256), Dropout.
    src = "Sa2VA text_hidden_fcs"
    b.linear("text_hidden_fcs.0", c.llm_hidden, c.llm_hidden, src)
    b.linear("text_hidden_fcs.2", c.llm_hidden, c.sam_d_model, src)


def _sam_image_encoder(b: _Builder, c: LayoutConfig, root: str) -> None:
    # SAM2 hieradet.py Hiera / PatchEmbed / MultiScaleBlock; image_encoder.py FpnNeck.
    src_h = "SAM2 hieradet.py Hiera"
    src_b = "SAM2 hieradet.py MultiScaleBlock"
    p = root + "image_encoder.trunk"
    dim = c.sam_embed
    b.param(p + ".pos_embed", (1, dim, *c.sam_pos_bkg), src_h)
    w0 = c.sam_window_spec[0]
    b.param(p + ".pos_embed_window", (1, dim, w0, w0), src_h)
    b.conv(p + ".patch_embed.proj", 3, dim, 7, "SAM2 hieradet.py PatchEmbed")
    stage_ends = [sum(c.sam_stages[: i + 1]) - 1 for i in range(len(c.sam_stages))]
    channels: List[int] = []
    for i in range(sum(c.sam_stages)):
        dim_out = dim * 2 if (i - 1) in stage_ends else dim  # dim_mul 2.0 at a stage change
        q = f"{p}.blocks.{i}"
        b.norm(q + ".norm1", dim, src_b)
        b.linear(q + ".attn.qkv", dim, 3 * dim_out, src_b)
        b.linear(q + ".attn.proj", dim_out, dim_out, src_b)
        b.norm(q + ".norm2", dim_out, src_b)
        b.mlp(q + ".mlp", (dim_out, 4 * dim_out, dim_out), src_b)
        if dim != dim_out:
            b.linear(q + ".proj", dim, dim_out, src_b)
        if i in stage_ends:
            channels.append(dim_out)
        dim = dim_out
    # FpnNeck: one 1x1 conv per backbone level, highest channel count first.
    for j, ch in enumerate(reversed(channels)):
        b.conv(f"{root}image_encoder.neck.convs.{j}.conv", ch, c.sam_d_model, 1,
               "SAM2 image_encoder.py FpnNeck")


def _sam_memory(b: _Builder, c: LayoutConfig, root: str) -> None:
    # SAM2 memory_attention.py MemoryAttention(Layer) + transformer.py RoPEAttention.
    d = c.sam_d_model
    src = "SAM2 memory_attention.py MemoryAttentionLayer"
    for i in range(c.sam_mem_attn_layers):
        p = f"{root}memory_attention.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            b.linear(f"{p}.self_attn.{proj}", d, d, src)
        b.linear(p + ".cross_attn_image.q_proj", d, d, src)
        b.linear(p + ".cross_attn_image.k_proj", c.sam_mem_dim, d, src)  # kv_in_dim 64
        b.linear(p + ".cross_attn_image.v_proj", c.sam_mem_dim, d, src)
        b.linear(p + ".cross_attn_image.out_proj", d, d, src)
        b.linear(p + ".linear1", d, c.sam_mem_attn_ff, src)
        b.linear(p + ".linear2", c.sam_mem_attn_ff, d, src)
        for n in ("norm1", "norm2", "norm3"):
            b.norm(f"{p}.{n}", d, src)
    b.norm(root + "memory_attention.norm", d, "SAM2 memory_attention.py MemoryAttention")
    # SAM2 memory_encoder.py MaskDownSampler(kernel 3, stride 2, padding 1, total_stride 16):
    # encoder = [Conv, LayerNorm2d, GELU] x log2(16)/log2(2) + final 1x1 Conv.
    src = "SAM2 memory_encoder.py MaskDownSampler"
    n_down = int(math.log2(16) // math.log2(2))
    c_in, idx = 1, 0
    for _ in range(n_down):
        c_out = c_in * 4
        b.conv(f"{root}memory_encoder.mask_downsampler.encoder.{idx}", c_in, c_out, 3, src)
        b.norm(f"{root}memory_encoder.mask_downsampler.encoder.{idx + 1}", c_out, src)
        c_in, idx = c_out, idx + 3
    b.conv(f"{root}memory_encoder.mask_downsampler.encoder.{idx}", c_in, d, 1, src)
    b.conv(root + "memory_encoder.pix_feat_proj", d, d, 1, "SAM2 memory_encoder.py MemoryEncoder")
    src = "SAM2 memory_encoder.py CXBlock"
    for i in range(c.sam_fuser_layers):
        p = f"{root}memory_encoder.fuser.layers.{i}"
        b.conv(p + ".dwconv", d, d, 7, src, groups=d)
        b.norm(p + ".norm", d, src)
        b.linear(p + ".pwconv1", d, 4 * d, src)
        b.linear(p + ".pwconv2", 4 * d, d, src)
        b.param(p + ".g_weight", (d,), "HF conversion: .gamma -> .g_weight (SAM2 CXBlock layer scale)")
    b.conv(root + "memory_encoder.out_proj", d, c.sam_mem_dim, 1, "SAM2 memory_encoder.py MemoryEncoder")


def _sam_heads(b: _Builder, c: LayoutConfig, root: str) -> None:
    d = c.sam_d_model
    # SAM2 prompt_encoder.py PromptEncoder (mask_in_chans 16); pe_layer's gaussian matrix is a
    # persistent buffer, so it is in the state dict and in the checkpoint.
    src = "SAM2 prompt_encoder.py PromptEncoder"
    p = root + "sam_prompt_encoder"
    b.param(p + ".pe_layer.positional_encoding_gaussian_matrix", (2, d // 2),
            "SAM2 position_encoding.py PositionEmbeddingRandom (buffer)")
    for i in range(4):
        b.param(f"{p}.point_embeddings.{i}.weight", (1, d), src)
    b.param(p + ".not_a_point_embed.weight", (1, d), src)
    m = c.sam_mask_in_chans
    b.conv(p + ".mask_downscaling.0", 1, m // 4, 2, src)
    b.norm(p + ".mask_downscaling.1", m // 4, src)
    b.conv(p + ".mask_downscaling.3", m // 4, m, 2, src)
    b.norm(p + ".mask_downscaling.4", m, src)
    b.conv(p + ".mask_downscaling.6", m, d, 1, src)
    b.param(p + ".no_mask_embed.weight", (1, d), src)
    # SAM2 mask_decoder.py MaskDecoder + transformer.py TwoWayTransformer (depth 2, 8 heads,
    # attention_downsample_rate 2 for the cross attentions).
    src = "SAM2 mask_decoder.py MaskDecoder"
    src_t = "SAM2 transformer.py TwoWayTransformer"
    p = root + "sam_mask_decoder"
    n_tok = c.sam_num_multimask + 1
    half = d // 2

    def attention(name: str, internal: int) -> None:
        b.linear(name + ".q_proj", d, internal, src_t)
        b.linear(name + ".k_proj", d, internal, src_t)
        b.linear(name + ".v_proj", d, internal, src_t)
        b.linear(name + ".out_proj", internal, d, src_t)

    for i in range(c.sam_decoder_depth):
        q = f"{p}.transformer.layers.{i}"
        attention(q + ".self_attn", d)
        b.norm(q + ".norm1", d, src_t)
        attention(q + ".cross_attn_token_to_image", half)
        b.norm(q + ".norm2", d, src_t)
        b.mlp(q + ".mlp", (d, c.sam_decoder_mlp, d), src_t)
        b.norm(q + ".norm3", d, src_t)
        b.norm(q + ".norm4", d, src_t)
        attention(q + ".cross_attn_image_to_token", half)
    attention(p + ".transformer.final_attn_token_to_image", half)
    b.norm(p + ".transformer.norm_final_attn", d, src_t)
    b.param(p + ".iou_token.weight", (1, d), src)
    b.param(p + ".mask_tokens.weight", (n_tok, d), src)
    b.param(p + ".obj_score_token.weight", (1, d), src)  # pred_obj_scores true
    b.conv_t(p + ".output_upscaling.0", d, d // 4, 2, src)
    b.norm(p + ".output_upscaling.1", d // 4, src)
    b.conv_t(p + ".output_upscaling.3", d // 4, d // 8, 2, src)
    b.conv(p + ".conv_s0", d, d // 8, 1, src)  # use_high_res_features_in_sam true
    b.conv(p + ".conv_s1", d, d // 4, 1, src)
    for i in range(n_tok):
        b.mlp(f"{p}.output_hypernetworks_mlps.{i}", (d, d, d, d // 8), src)
    b.mlp(p + ".iou_prediction_head", (d, 256, 256, n_tok), src)
    b.mlp(p + ".pred_obj_score_head", (d, d, d, 1), src)  # pred_obj_scores_mlp true


def _sam_base(b: _Builder, c: LayoutConfig, root: str) -> None:
    # SAM2 sam2_base.py SAM2Base.__init__ / _build_sam_heads, sam2_hiera_l.yaml (SAM2, not 2.1:
    # no no_obj_embed_spatial, no obj_ptr_tpos_proj since proj_tpos_enc_in_obj_ptrs is false).
    src = "SAM2 sam2_base.py SAM2Base"
    d = c.sam_d_model
    b.param(root + "maskmem_tpos_enc", (c.sam_num_maskmem, 1, 1, c.sam_mem_dim), src)
    b.param(root + "no_mem_embed", (1, 1, d), src)
    b.param(root + "no_mem_pos_enc", (1, 1, d), src)
    b.conv(root + "mask_downsample", 1, 1, 4, src)  # use_obj_ptrs_in_encoder true
    b.param(root + "no_obj_ptr", (1, d), src)  # pred_obj_scores and use_obj_ptrs_in_encoder
    b.mlp(root + "obj_ptr_proj", (d, d, d, d), src)  # use_mlp_for_obj_ptr_proj true


def layout_rows(cfg: LayoutConfig = LayoutConfig()) -> List[LayoutRow]:
    """Every tensor of the released checkpoint, in a stable order, for config ``cfg``."""
    b = _Builder(cfg.dtype)
    _vision(b, cfg)
    _projector(b, cfg)
    _language(b, cfg)
    _text_hidden_fcs(b, cfg)
    root = "grounding_encoder.sam2_model."
    _sam_image_encoder(b, cfg, root)
    _sam_memory(b, cfg, root)
    _sam_heads(b, cfg, root)
    _sam_base(b, cfg, root)
    names = [r.name for r in b.rows]
    assert len(set(names)) == len(names), "duplicate tensor names in the layout"
    return b.rows


def row_numel(row: LayoutRow) -> int:
    """Number of elements of one row."""
    return int(math.prod(row.shape)) if row.shape else 1


def totals(rows: Sequence[LayoutRow]) -> Tuple[int, int]:
    """(parameter count, bytes) of a layout."""
    n = sum(row_numel(r) for r in rows)
    nbytes = sum(row_numel(r) * DTYPE_BYTES[r.dtype] for r in rows)
    return n, nbytes


def format_tsv(rows: Sequence[LayoutRow]) -> str:
    """The TSV text (with a header line) of ``rows``."""
    lines = ["name\tdtype\tshape\tsource"]
    lines += [f"{r.name}\t{r.dtype}\t{','.join(str(s) for s in r.shape)}\t{r.source}" for r in rows]
    return "\n".join(lines) + "\n"


def read_tsv(path: str = LAYOUT_TSV) -> List[LayoutRow]:
    """Parse a layout TSV written by :func:`format_tsv`."""
    rows: List[LayoutRow] = []
    with open(path, "r", encoding="utf-8") as f:
        for k, line in enumerate(f):
            line = line.rstrip("\n")
            if not line or (k == 0 and line.startswith("name\t")):
                continue
            parts = line.split("\t")
            if len(parts) != 4:
                raise ValueError(f"{path}:{k + 1}: expected 4 tab-separated fields, got {len(parts)}")
            shape = tuple(int(s) for s in parts[2].split(",")) if parts[2] else ()
            rows.append(LayoutRow(parts[0], parts[1], shape, parts[3]))
    return rows


def main(argv: Sequence[str] = ()) -> int:
    """Write (or ``--check``) the TSV and print the totals."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=LAYOUT_TSV)
    ap.add_argument("--check", action="store_true", help="compare the file with the computed table")
    args = ap.parse_args(list(argv))
    rows = layout_rows()
    text = format_tsv(rows)
    if args.check:
        with open(args.out, "r", encoding="utf-8") as f:
            same = f.read() == text
        print("layout table up to date" if same else "layout table differs from layout.py")
        return 0 if same else 1
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    n, nbytes = totals(rows)
    print(f"{len(rows)} tensors, {n} parameters, {nbytes} bytes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
