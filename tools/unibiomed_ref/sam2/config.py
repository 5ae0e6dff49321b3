"""SAM2 configuration: the single source of SAM2 sizes for the reference implementation.

`Sam2Config()` holds the values of SAM2 **2.0** `sam2_hiera_l.yaml` exactly as the UniBiomed
release builds it (`projects/unibiomed/hf/models/sam2.py`, class `SAM2`, which hard-codes the
yaml values and adds `sam_mask_decoder_extra_args`), plus the `SAM2Base` / Hiera / FpnNeck /
MemoryEncoder / MemoryAttention constructor defaults that the yaml leaves implicit, so that
every part (image side here, memory side in `memory.py`) reads its sizes from one place.

Field groups (prefix -> yaml node):
  trunk_*            image_encoder.trunk (Hiera)
  neck_*             image_encoder.neck (FpnNeck) and its PositionEmbeddingSine
  scalp              image_encoder.scalp
  prompt_* / decoder_*  SAM heads built in SAM2Base._build_sam_heads
  memory_attention_* memory_attention (MemoryAttention / MemoryAttentionLayer / RoPEAttention)
  memory_encoder_*   memory_encoder (MemoryEncoder / MaskDownSampler / Fuser / CXBlock)
  (no prefix)        SAM2Base / SAM2VideoPredictor top-level arguments

Tiny test configs are made with `dataclasses.replace(Sam2Config(), ...)`; Hiera's constraints
are checked by `Sam2Config.validate()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class Sam2Config:
    """SAM2 2.0 Hiera-L (`sam2_hiera_l.yaml`) as used by UniBiomed; defaults are the real sizes."""

    # ---- image_encoder ---------------------------------------------------------------
    image_size: int = 1024  # square input, pixels
    scalp: int = 1  # drop this many lowest-resolution FPN levels (the stride-32 one)
    # trunk: Hiera
    trunk_embed_dim: int = 144
    trunk_num_heads: int = 2
    trunk_stages: Tuple[int, ...] = (2, 6, 36, 4)
    trunk_global_att_blocks: Tuple[int, ...] = (23, 33, 43)
    trunk_window_spec: Tuple[int, ...] = (8, 4, 16, 8)
    trunk_window_pos_embed_bkg_spatial_size: Tuple[int, int] = (7, 7)
    trunk_q_pool: int = 3  # number of q-pooling stage transitions
    trunk_q_stride: Tuple[int, int] = (2, 2)
    trunk_dim_mul: float = 2.0
    trunk_head_mul: float = 2.0
    trunk_mlp_ratio: float = 4.0
    trunk_drop_path_rate: float = 0.0
    trunk_norm_eps: float = 1e-6  # LayerNorm eps in MultiScaleBlock
    trunk_patch_kernel_size: int = 7
    trunk_patch_stride: int = 4
    trunk_patch_padding: int = 3
    trunk_in_chans: int = 3
    # neck: FpnNeck + PositionEmbeddingSine
    neck_d_model: int = 256
    neck_backbone_channel_list: Tuple[int, ...] = (1152, 576, 288, 144)
    neck_fpn_top_down_levels: Tuple[int, ...] = (2, 3)
    neck_fpn_interp_model: str = "nearest"
    neck_fuse_type: str = "sum"
    neck_kernel_size: int = 1
    neck_pos_num_pos_feats: int = 256
    neck_pos_normalize: bool = True
    neck_pos_scale: float = 6.283185307179586  # yaml `scale: null` -> 2*pi
    neck_pos_temperature: float = 10000.0

    # ---- SAM heads (SAM2Base._build_sam_heads) ------------------------------------------
    backbone_stride: int = 16  # image_size // backbone_stride = image-embedding side (64)
    prompt_mask_in_chans: int = 16
    decoder_num_multimask_outputs: int = 3
    decoder_transformer_depth: int = 2
    decoder_transformer_mlp_dim: int = 2048
    decoder_transformer_num_heads: int = 8
    decoder_attention_downsample_rate: int = 2
    decoder_iou_head_depth: int = 3
    decoder_iou_head_hidden_dim: int = 256
    # release's sam_mask_decoder_extra_args (only used when multimask_output is False)
    decoder_dynamic_multimask_via_stability: bool = True
    decoder_dynamic_multimask_stability_delta: float = 0.05
    decoder_dynamic_multimask_stability_thresh: float = 0.98

    # ---- memory_attention ---------------------------------------------------------------
    memory_attention_d_model: int = 256
    memory_attention_pos_enc_at_input: bool = True
    memory_attention_num_layers: int = 4
    memory_attention_activation: str = "relu"
    memory_attention_dim_feedforward: int = 2048
    memory_attention_dropout: float = 0.1
    memory_attention_pos_enc_at_attn: bool = False
    memory_attention_pos_enc_at_cross_attn_keys: bool = True
    memory_attention_pos_enc_at_cross_attn_queries: bool = False
    memory_attention_rope_theta: float = 10000.0
    # UniBiomed's yaml/HF code says [32, 32] (upstream 2.0 yaml: [64, 64]); RoPEAttention
    # recomputes its table whenever the token count differs, so at 1024 input both give 64x64.
    memory_attention_rope_feat_sizes: Tuple[int, int] = (32, 32)
    memory_attention_num_heads: int = 1
    memory_attention_downsample_rate: int = 1
    memory_attention_self_rope_k_repeat: bool = False
    memory_attention_cross_rope_k_repeat: bool = True
    memory_attention_cross_kv_in_dim: int = 64
    memory_attention_layer_norm_eps: float = 1e-5  # nn.LayerNorm default

    # ---- memory_encoder -----------------------------------------------------------------
    memory_encoder_in_dim: int = 256
    memory_encoder_out_dim: int = 64  # == mem_dim
    memory_encoder_pos_num_pos_feats: int = 64
    memory_encoder_pos_normalize: bool = True
    memory_encoder_pos_scale: float = 6.283185307179586
    memory_encoder_pos_temperature: float = 10000.0
    memory_encoder_downsampler_kernel_size: int = 3
    memory_encoder_downsampler_stride: int = 2
    memory_encoder_downsampler_padding: int = 1
    memory_encoder_downsampler_total_stride: int = 16
    memory_encoder_downsampler_embed_dim: int = 256
    memory_encoder_fuser_num_layers: int = 2
    memory_encoder_fuser_input_projection: bool = False
    memory_encoder_cx_dim: int = 256
    memory_encoder_cx_kernel_size: int = 7
    memory_encoder_cx_padding: int = 3
    memory_encoder_cx_layer_scale_init_value: float = 1e-6
    memory_encoder_cx_use_dwconv: bool = True
    memory_encoder_cx_drop_path: float = 0.0

    # ---- SAM2Base top level -------------------------------------------------------------
    num_maskmem: int = 7
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = False
    use_mask_input_as_output_without_sam: bool = True
    max_cond_frames_in_attn: int = -1
    directly_add_no_mem_embed: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    memory_temporal_stride_for_eval: int = 1
    add_all_frames_to_correct_as_cond: bool = False
    non_overlap_masks_for_mem_enc: bool = False
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = False
    proj_tpos_enc_in_obj_ptrs: bool = False
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    compile_image_encoder: bool = False
    # SAM2VideoPredictor (release defaults)
    fill_hole_area: int = 0
    non_overlap_masks: bool = False
    clear_non_cond_mem_around_input: bool = False
    clear_non_cond_mem_for_multi_obj: bool = False
    # image normalisation used by the release (ImageNet), applied to pixels / 255
    pixel_mean: Tuple[float, float, float] = (0.485, 0.456, 0.406)
    pixel_std: Tuple[float, float, float] = (0.229, 0.224, 0.225)

    # ---- derived sizes ------------------------------------------------------------------
    @property
    def hidden_dim(self) -> int:
        """SAM2Base.hidden_dim = memory_attention.d_model (256); also the prompt embed dim."""
        return self.memory_attention_d_model

    @property
    def mem_dim(self) -> int:
        """Memory channel dim (64): the memory encoder's out_proj output channels."""
        return self.memory_encoder_out_dim

    @property
    def image_embedding_size(self) -> int:
        """Side of the lowest-resolution kept feature map (64 at 1024)."""
        return self.image_size // self.backbone_stride

    @property
    def num_mask_tokens(self) -> int:
        return self.decoder_num_multimask_outputs + 1

    def trunk_stage_dims(self) -> Tuple[int, ...]:
        """Hiera channels per stage, high resolution first (144, 288, 576, 1152)."""
        dims = []
        d = self.trunk_embed_dim
        for _ in range(len(self.trunk_stages)):
            dims.append(d)
            d = int(d * self.trunk_dim_mul)
        return tuple(dims)

    def validate(self) -> None:
        """Check the constraints Hiera / FpnNeck / the SAM heads put on the sizes."""
        st = self.trunk_stages
        assert len(st) == len(self.trunk_window_spec)
        assert 0 <= self.trunk_q_pool <= len(st) - 1
        assert self.trunk_q_pool == len(st) - 1, "feature strides assume every stage pools"
        assert self.image_size % (self.trunk_patch_stride * 2 ** (len(st) - 1)) == 0
        tokens = self.image_size // self.trunk_patch_stride
        assert tokens % self.trunk_window_spec[0] == 0, "window pos-embed tiling needs this"
        assert tuple(reversed(self.trunk_stage_dims())) == tuple(self.neck_backbone_channel_list)
        assert self.scalp == 1 and len(st) == 4, "image side assumes 4 levels minus 1"
        assert self.image_size // self.backbone_stride == tokens // 4
        assert self.use_high_res_features_in_sam and self.pred_obj_scores
        assert self.neck_d_model == self.hidden_dim
        assert self.neck_fpn_interp_model == "nearest" and self.neck_fuse_type == "sum"
