"""`SamTracker`: the scriptable SAM2 memory side for video (volume) propagation.

Every tensor with learned or fixed values (memory encoder, memory attention, obj_ptr_proj,
maskmem_tpos_enc, no_mem_embed, no_obj_ptr, the sine position encodings, the sigmoid scale and
bias) lives in this module; the host keeps only small per-frame tensors and decides which past
frames enter the memory bank (`video.select_memory`). Per frame the host keeps:

  maskmem_features [B,64,h,w]   from `encode_memory`
  obj_ptr          [B,256]      from `object_pointer`
  (the low-res mask logits [B,1,4h,4w] only for the output)

At the real config: S = 1024, h = w = 64, C = 256, mem_dim = 64, 4h = 256.

Per frame, as the release does it (`video.py` is the Python peer of the C++ host):
  conditioning frame:  d = SamMaskDecoder(no_memory(image_embed), s0, s1, language)
  tracked frame:       d = decode_tracked(condition(image_embed, image_pos, mem, tpos, ptrs), s0, s1)
  then                 low, high = best_mask(d.masks, d.iou_pred, d.object_score_logits)
                       ptr = object_pointer(d.mask_tokens, d.iou_pred, d.object_score_logits)
                       mem, _ = encode_memory(image_embed, high, d.object_score_logits, is_cond)
  (the release passes is_mask_from_pts=True for conditioning frames, False for tracked ones;
  it only matters if binarize_mask_from_pts_for_mem_enc, which is False in 2.0)

Written from facebookresearch/sam2 `sam2/modeling/sam2_base.py` (`_forward_sam_heads`,
`_prepare_memory_conditioned_features`, `_encode_new_memory`) and the release's copy
(`Luffy03/UniBiomed` `projects/unibiomed/hf/models/sam2.py`, which comments out the
NO_OBJ_SCORE mask suppression: `suppress_no_object_masks=False` reproduces the release).
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .image_encoder import sine_position_encoding

NO_OBJ_SCORE = -1024.0  # SAM2 placeholder logit for "no object" (inlined in best_mask)


class SamTracker(nn.Module):
    """Memory side of a `Sam2Model` (shares its modules and parameters).

    Args:
      model: a `Sam2Model` (2.0 config: no temporal encoding of object pointers).
      suppress_no_object_masks: upstream SAM2 replaces the mask logits by -1024 where the object
        score is <= 0; the UniBiomed release has that line commented out (default False).
    """

    def __init__(self, model: nn.Module, suppress_no_object_masks: bool = False) -> None:
        super().__init__()
        cfg = model.config
        assert cfg.use_obj_ptrs_in_encoder and cfg.pred_obj_scores
        assert not cfg.add_tpos_enc_to_obj_ptrs, "SAM2 2.0: object pointers have zero pos enc"
        assert cfg.directly_add_no_mem_embed
        self.memory_encoder = model.memory_encoder
        self.memory_attention = model.memory_attention
        self.obj_ptr_proj = model.obj_ptr_proj
        self.maskmem_tpos_enc = model.maskmem_tpos_enc  # [num_maskmem,1,1,mem_dim]
        self.no_mem_embed = model.no_mem_embed  # [1,1,C]
        self.no_obj_ptr = model.no_obj_ptr  # [1,C]
        # SAM heads for tracked frames (sparse prompt without the language token)
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = model.sam_mask_decoder
        self.hidden_dim: int = cfg.hidden_dim
        self.mem_dim: int = cfg.mem_dim
        self.num_maskmem: int = cfg.num_maskmem
        self.image_size: int = cfg.image_size
        self.sigmoid_scale: float = cfg.sigmoid_scale_for_mem_enc
        self.sigmoid_bias: float = cfg.sigmoid_bias_for_mem_enc
        self.binarize_mask_from_pts: bool = cfg.binarize_mask_from_pts_for_mem_enc
        self.fixed_no_obj_ptr: bool = cfg.fixed_no_obj_ptr
        self.soft_no_obj_ptr: bool = cfg.soft_no_obj_ptr
        self.suppress_no_object_masks: bool = suppress_no_object_masks
        self.pos_feats: int = cfg.memory_encoder_pos_num_pos_feats
        self.pos_temperature: float = cfg.memory_encoder_pos_temperature
        self.pos_scale: float = cfg.memory_encoder_pos_scale

    @torch.jit.export
    def no_memory(self, image_embed: Tensor) -> Tensor:
        """Conditioning frame (no memory): image_embed [B,C,h,w] -> image_embed + no_mem_embed."""
        return image_embed + self.no_mem_embed.reshape(1, -1, 1, 1).to(image_embed.dtype)

    @torch.jit.export
    def decode_tracked(self, pix_feat_with_mem: Tensor, feat_s0: Tensor, feat_s1: Tensor
                       ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """SAM heads on a tracked (non-conditioning) frame: as `SamMaskDecoder.forward` but with
        the sparse prompt [not_a_point, not_a_point] (the release passes no language embedding
        to propagated frames). pix_feat_with_mem [B,C,h,w] (from `condition`),
        feat_s0 [B,C/8,4h,4w], feat_s1 [B,C/4,2h,2w]
        -> (masks [B,3,4h,4w], iou_pred [B,3], object_score_logits [B,1], mask_tokens [B,3,C])."""
        b, h, w = pix_feat_with_mem.shape[0], pix_feat_with_mem.shape[2], pix_feat_with_mem.shape[3]
        nap = self.prompt_encoder.not_a_point_embed.weight.to(pix_feat_with_mem.dtype)
        sparse = nap[None].expand(b, 2, -1)
        dense = self.prompt_encoder.dense_no_mask(b, h, w)
        image_pe = self.prompt_encoder.get_dense_pe(h, w)
        masks, iou_pred, tokens, obj = self.mask_decoder.predict_masks(
            pix_feat_with_mem, image_pe, sparse, dense, feat_s0, feat_s1)
        return masks[:, 1:], iou_pred[:, 1:], obj, tokens[:, 1:]

    @torch.jit.export
    def best_mask(self, masks: Tensor, iou_pred: Tensor, object_score_logits: Tensor) -> Tuple[Tensor, Tensor]:
        """Multimask output -> the best-IoU mask.

        masks [B,3,4h,4w] low-res logits, iou_pred [B,3], object_score_logits [B,1]
        -> (low_res [B,1,4h,4w] fp32, high_res [B,1,S,S] fp32; bilinear, align_corners=False).
        With `suppress_no_object_masks`, logits become -1024 where object_score_logits <= 0."""
        m = masks.float()
        if self.suppress_no_object_masks:
            appear = (object_score_logits > 0).reshape(-1, 1, 1, 1)
            m = torch.where(appear, m, torch.full_like(m, -1024.0))
        best = torch.argmax(iou_pred, dim=-1)
        b = torch.arange(m.shape[0], device=m.device)
        low = m[b, best].unsqueeze(1)
        high = F.interpolate(low, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return low, high

    @torch.jit.export
    def object_pointer(self, mask_tokens: Tensor, iou_pred: Tensor, object_score_logits: Tensor) -> Tensor:
        """Object pointer of a decoded frame.

        mask_tokens [B,3,C] (multimask output tokens), iou_pred [B,3], object_score_logits [B,1]
        -> obj_ptr [B,C] = obj_ptr_proj(best-IoU token), mixed with no_obj_ptr by object presence
        (fixed_no_obj_ptr: ptr*lam + (1-lam)*no_obj_ptr, lam = [score > 0])."""
        best = torch.argmax(iou_pred, dim=-1)
        b = torch.arange(mask_tokens.shape[0], device=mask_tokens.device)
        ptr = self.obj_ptr_proj(mask_tokens[b, best])
        if self.soft_no_obj_ptr:
            lam = torch.sigmoid(object_score_logits.float())
        else:
            lam = (object_score_logits > 0).float()
        lam = lam.to(ptr.dtype)
        if self.fixed_no_obj_ptr:
            ptr = lam * ptr
        return ptr + (1.0 - lam) * self.no_obj_ptr.to(ptr.dtype)

    @torch.jit.export
    def encode_memory(self, pix_feat: Tensor, mask_high_res: Tensor, object_score_logits: Tensor,
                      is_mask_from_pts: bool) -> Tuple[Tensor, Tensor]:
        """Encode a frame's prediction into its memory.

        pix_feat [B,C,h,w]: the frame's raw stride-16 feature (image_embed, *without*
        no_mem_embed or memory conditioning); mask_high_res [B,1,S,S] mask logits (best_mask's
        high_res); object_score_logits [B,1] (unused by SAM2 2.0: no no_obj_embed_spatial);
        is_mask_from_pts: binarize instead of sigmoid if the config asks for it (False in 2.0).
        -> (maskmem_features [B,mem_dim,h,w], maskmem_pos [B,mem_dim,h,w]) in pix_feat's dtype."""
        if self.binarize_mask_from_pts and is_mask_from_pts:
            m = (mask_high_res > 0).float()
        else:
            m = torch.sigmoid(mask_high_res.float())
        m = m * self.sigmoid_scale + self.sigmoid_bias
        feats, pos = self.memory_encoder(pix_feat, m)
        return feats, pos.expand(feats.shape[0], -1, -1, -1)

    @torch.jit.export
    def condition(self, image_embed: Tensor, image_pos: Tensor, mem_features: Tensor, mem_tpos_index: Tensor,
                  obj_ptrs: Tensor) -> Tensor:
        """Memory attention of a tracked frame.

        image_embed [B,C,h,w] raw stride-16 feature; image_pos [1,C,h,w] its sine pos enc;
        mem_features [N,B,mem_dim,h,w] the selected memory frames (N >= 1); mem_tpos_index [N]
        int64, row of maskmem_tpos_enc per frame (num_maskmem-1 for conditioning frames,
        t_rel-1 for the frame t_rel steps before/after); obj_ptrs [P,B,C] selected object
        pointers (P may be 0; each becomes C/mem_dim tokens with zero pos enc, no RoPE)
        -> pix_feat_with_mem [B,C,h,w]."""
        b, c, h, w = image_embed.shape
        dtype = image_embed.dtype
        n = mem_features.shape[0]
        curr = image_embed.flatten(2).transpose(1, 2)
        curr_pos = image_pos.to(dtype).flatten(2).transpose(1, 2).expand(b, -1, -1)
        md = self.mem_dim
        memory = mem_features.to(dtype).permute(1, 0, 3, 4, 2).reshape(b, n * h * w, md)
        spatial = sine_position_encoding(h, w, self.pos_feats, self.pos_temperature, self.pos_scale,
                                         image_embed.device).to(dtype)
        spatial = spatial.flatten(2).transpose(1, 2)  # [1,hw,md]
        tpos = self.maskmem_tpos_enc.to(dtype).reshape(-1, 1, md).index_select(0, mem_tpos_index)
        memory_pos = (spatial + tpos).reshape(1, n * h * w, md).expand(b, -1, -1)
        p = obj_ptrs.shape[0]
        split = c // md
        ptr_tok = obj_ptrs.to(dtype).reshape(p, b, split, md).permute(1, 0, 2, 3).reshape(b, p * split, md)
        memory = torch.cat((memory, ptr_tok), dim=1)
        memory_pos = torch.cat((memory_pos, torch.zeros_like(ptr_tok)), dim=1)
        out = self.memory_attention(curr, curr_pos, memory, memory_pos, h, w, p * split)
        return out.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, image_embed: Tensor, image_pos: Tensor, mem_features: Tensor, mem_tpos_index: Tensor,
                obj_ptrs: Tensor) -> Tensor:
        """Same as `condition`."""
        return self.condition(image_embed, image_pos, mem_features, mem_tpos_index, obj_ptrs)
