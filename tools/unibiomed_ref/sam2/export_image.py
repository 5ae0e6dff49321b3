"""TorchScript export wrappers for the image side of SAM2, plus the 2-D mask post-processing.

The release (UniBiomed `projects/unibiomed/hf/models/sam2.py` + `modeling_sa2va_chat.py`,
identical to Sa2VA) segments a 2-D image as SAM2 *video* inference on one frame:
  1. `forward_image`: Hiera + FPN; levels 0/1 go through `sam_mask_decoder.conv_s0/conv_s1`.
  2. `track_step` on an initial conditioning frame: with `directly_add_no_mem_embed` the
     stride-16 feature gets `no_mem_embed` added (no memory attention).
  3. `_forward_sam_heads` (extension): `point_inputs=None` -> SAM2Base pads with one point
     (0,0) of label -1; the prompt encoder (`pad=True`, no boxes) appends another label -1
     point; both embeddings are *replaced* by `not_a_point_embed` -> sparse
     [not_a_point, not_a_point]; the extension concatenates the language embedding
     [B,1,256] -> 3 sparse tokens. Dense = `no_mask_embed`. `multimask_output` is True
     (multimask_output_in_sam, 0 points within [min 0, max 1]).
  4. The extension comments out the NO_OBJ_SCORE suppression: mask logits are used as they
     come regardless of `object_score_logits` (which still gates the object pointer:
     fixed_no_obj_ptr -> obj_ptr = [score > 0] * proj(token) + [score <= 0] * no_obj_ptr).
  5. The best-IoU mask (argmax of the sigmoid IoU head) [B,1,256,256] -> bilinear to
     1024x1024 (`_get_orig_video_res_output`, video size = image_size) -> bilinear to the
     original size (align_corners=False) -> `sigmoid() > 0.5`.

`SamImageEncoder` covers step 1, `SamMaskDecoder` step 3 (after the caller's step 2), and
`decode_best` step 5. Both modules are `torch.jit.script`-able and dtype/device agnostic.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .image_encoder import sine_position_encoding
from .model import Sam2Model


class SamImageEncoder(nn.Module):
    """forward(image [B,3,S,S], normalised: (pixels/255 - mean)/std, S = image_size)
    -> (feat_s0 [B,32,S/4,S/4], feat_s1 [B,64,S/8,S/8], image_embed [B,256,S/16,S/16],
        image_pos [1,256,S/16,S/16]).

    feat_s0 / feat_s1 are already through `sam_mask_decoder.conv_s0 / conv_s1` (as
    `SAM2Base.forward_image`). image_embed is the raw stride-16 FPN feature: the caller adds
    `no_mem_embed` ([1,1,256], broadcast over channels) for a frame without memory, or runs
    memory attention. image_pos is the sine position encoding of that level (used by memory
    attention, not by the mask decoder). Channel counts are C/8, C/4, C with C = hidden_dim.
    """

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        enc = model.image_encoder
        self.trunk = enc.trunk
        self.neck = enc.neck
        self.conv_s0 = model.sam_mask_decoder.conv_s0
        self.conv_s1 = model.sam_mask_decoder.conv_s1
        self.num_pos_feats = enc.num_pos_feats
        self.pos_temperature = enc.pos_temperature
        self.pos_scale = enc.pos_scale

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        feats: List[Tensor] = self.neck(self.trunk(image))
        feat_s0 = self.conv_s0(feats[0])
        feat_s1 = self.conv_s1(feats[1])
        image_embed = feats[2]
        h, w = image_embed.shape[2], image_embed.shape[3]
        image_pos = sine_position_encoding(
            h, w, self.num_pos_feats, self.pos_temperature, self.pos_scale, image.device
        ).to(image_embed.dtype)
        return feat_s0, feat_s1, image_embed, image_pos


class SamMaskDecoder(nn.Module):
    """forward(image_embed [B,256,h,w] (with no_mem_embed added or memory-conditioned),
               feat_s0 [B,32,4h,4w], feat_s1 [B,64,2h,2w], language_embed [B,256])
    -> (masks [B,3,4h,4w] low-res mask logits of the 3 multimask outputs,
        iou_pred [B,3] (sigmoid IoU estimates),
        object_score_logits [B,1],
        mask_tokens [B,3,256] SAM output tokens of the 3 multimask outputs; the object
          pointer is obj_ptr_proj(mask_tokens[b, argmax iou_pred[b]]) gated by the score).

    Sparse prompt: [not_a_point, not_a_point, language_embed] (see module docstring);
    dense prompt: `no_mask_embed`. Candidates are returned raw: the release does NOT apply
    the NO_OBJ_SCORE (-1024) suppression to the masks; choosing is left to the caller
    (`decode_best` for 2-D). Outputs are in the model's dtype.
    """

    def __init__(self, model: Sam2Model) -> None:
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = model.sam_mask_decoder

    def forward(
        self, image_embed: Tensor, feat_s0: Tensor, feat_s1: Tensor, language_embed: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        b, h, w = image_embed.shape[0], image_embed.shape[2], image_embed.shape[3]
        sparse = self.prompt_encoder.language_sparse_embeddings(language_embed)
        dense = self.prompt_encoder.dense_no_mask(b, h, w)
        image_pe = self.prompt_encoder.get_dense_pe(h, w)
        masks, iou_pred, mask_tokens, obj_logits = self.mask_decoder.predict_masks(
            image_embed, image_pe, sparse, dense, feat_s0, feat_s1
        )
        # multimask output: tokens 1..3 (use_multimask_token_for_obj_ptr)
        return masks[:, 1:], iou_pred[:, 1:], obj_logits, mask_tokens[:, 1:]


def decode_best(
    masks: Tensor, iou_pred: Tensor, image_size: int, orig_h: int, orig_w: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Release post-processing of one 2-D frame.

    masks [B,M,h4,w4] low-res logits, iou_pred [B,M] -> (mask [B,orig_h,orig_w] bool,
    logits [B,orig_h,orig_w] fp32, best [B] int64 index of the chosen candidate).
    The candidate with the highest IoU estimate is taken (first one on a tie, argmax on the
    given dtype as the release does), cast to fp32, bilinearly resized to image_size x
    image_size, then to the original size (align_corners=False), and thresholded at logit > 0
    (the release's `sigmoid() > 0.5`; they differ only for 0 < logit < ~6e-8 in fp32).
    """
    b = masks.shape[0]
    best = torch.argmax(iou_pred, dim=-1)
    idx = torch.arange(b, device=masks.device)
    low = masks[idx, best].unsqueeze(1).float()  # [B,1,h4,w4]
    hi = F.interpolate(low, size=(image_size, image_size), mode="bilinear", align_corners=False)
    out = F.interpolate(hi, size=(orig_h, orig_w), mode="bilinear", align_corners=False)[:, 0]
    return out > 0, out, best
