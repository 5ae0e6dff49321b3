"""Reference SAM2 video-mode (3-D volume) pipeline of the UniBiomed release, plain PyTorch.

What the release does (`Luffy03/UniBiomed` `projects/unibiomed/hf/models/modeling_sa2va_chat.py`
`predict_forward` and `projects/unibiomed/hf/models/sam2.py` `SAM2.language_embd_inference`,
`SAM2VideoPredictor.add_language_embd` / `propagate_in_video`; Sa2VA's HF code is the same):

1. Every slice goes through SAM2's image side (`init_state` holds all F frames; features are
   computed one frame at a time and only the last one is cached). The MLLM sees only the first
   `min(5, F)` slices (`if frame_idx < 5`), and each `[SEG]` embedding is added as the prompt
   of exactly those frames: `language_embd_inference(state, [seg] * num_frames)` with
   num_frames = min(5, F). -> conditioning frames = {0, ..., min(5, F) - 1}.
2. `add_language_embd` on each of them: the frame is not yet tracked, so it is an *initial*
   conditioning frame: no memory, `no_mem_embed` added (directly_add_no_mem_embed), sparse
   prompt [not_a_point, not_a_point, language], multimask, best IoU -> each conditioning frame's
   mask equals the 2-D decode of that frame. Memory is not encoded yet (run_mem_encoder=False).
3. `propagate_in_video(state)` (reverse=False, start = min(cond) = 0): the preflight encodes the
   memory of every conditioning frame from its low-res mask upsampled bilinearly to 1024
   (is_mask_from_pts=True, a no-op since binarize_mask_from_pts_for_mem_enc is False); then
   frames start..F-1 in order: conditioning frames return their stored mask, other frames are
   tracked with memory attention and decoded with the sparse prompt [not_a_point, not_a_point]
   (NO language embedding), multimask + best IoU, and their memory is encoded.
   No backward pass is run by the release (its conditioning frames start at 0); `reverse=True`
   here adds SAM2's backward pass for conditioning frames that do not start at 0.
4. Output per frame: low-res logits [1,256,256] -> bilinear 1024 -> bilinear original size ->
   sigmoid > 0.5. Memory features are stored in bf16 by the release (`maskmem_features.to(
   torch.bfloat16)`); under its bf16 autocast they are bf16 already.

Only small per-frame tensors are kept: memory features [1,64,h,w], object pointer [1,256] and
the low-res logits for the output. Image features are recomputed per frame, never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .export_image import SamImageEncoder, SamMaskDecoder, decode_best
from .export_memory import SamTracker

RELEASE_NUM_LLM_FRAMES = 5  # `if frame_idx < 5` in predict_forward


def release_cond_frames(num_frames: int) -> List[int]:
    """Conditioning frames of the release for a volume of `num_frames` slices: the first
    min(5, F) (those the MLLM saw; they all get the same [SEG] embedding)."""
    return list(range(min(RELEASE_NUM_LLM_FRAMES, num_frames)))


@dataclass
class MemorySelection:
    """Which stored frames condition the current frame.

    mem_frames: frames whose memory features enter, in upstream order (selected conditioning
      frames first, then non-conditioning frames from the farthest to the nearest).
    tpos_index: for each of mem_frames, the row of maskmem_tpos_enc (num_maskmem-1 for the
      conditioning frames, t_rel-1 for the frame t_rel steps away).
    ptr_frames: frames whose object pointers enter (conditioning ones first, then by distance).
    """

    mem_frames: List[int]
    tpos_index: List[int]
    ptr_frames: List[int]


def select_cond_frames(frame_idx: int, cond_frames: Sequence[int], max_cond: int) -> Tuple[List[int], List[int]]:
    """SAM2's select_closest_cond_frames: (selected, unselected). With max_cond == -1 or few
    enough frames all are selected; else the nearest before, the nearest at/after, then the
    closest others up to max_cond."""
    cond = list(cond_frames)
    if max_cond == -1 or len(cond) <= max_cond:
        return cond, []
    assert max_cond >= 2
    sel: List[int] = []
    before = [t for t in cond if t < frame_idx]
    after = [t for t in cond if t >= frame_idx]
    if before:
        sel.append(max(before))
    if after:
        sel.append(min(after))
    rest = sorted((t for t in cond if t not in sel), key=lambda t: abs(t - frame_idx))
    sel.extend(rest[: max_cond - len(sel)])
    return sel, [t for t in cond if t not in sel]


def select_memory(frame_idx: int, cond_frames: Sequence[int], tracked: Collection[int], num_maskmem: int = 7,
                  direction: int = 1, num_frames: Optional[int] = None, max_obj_ptrs: int = 16,
                  max_cond_frames_in_attn: int = -1, stride: int = 1,
                  only_obj_ptrs_in_the_past: bool = True) -> MemorySelection:
    """Memory bank of a tracked frame (SAM2Base._prepare_memory_conditioned_features, eval).

    frame_idx: the frame being tracked; cond_frames: conditioning frames (ascending);
    tracked: non-conditioning frames that already have a memory and pointer; direction: +1
    forward, -1 backward (track_in_reverse); num_frames: video length (default: unbounded).
    Spatial memories: every selected conditioning frame (tpos row num_maskmem-1), then for
    t_rel = num_maskmem-1 .. 1 the frame t_rel steps back (stride r: t_rel=1 is the adjacent
    frame, others lie on multiples of r), if tracked (or an unselected conditioning frame),
    tpos row t_rel-1. Object pointers: selected conditioning frames (only those not in the
    future when only_obj_ptrs_in_the_past), then the tracked frames 1 .. min(F, max_obj_ptrs)-1
    steps back, nearest first.
    """
    assert direction in (1, -1)
    reverse = direction < 0
    tracked_set = set(tracked)
    sel, unsel = select_cond_frames(frame_idx, cond_frames, max_cond_frames_in_attn)
    unsel_set = set(unsel)
    mem = list(sel)
    tpos = [num_maskmem - 1] * len(sel)
    r = stride
    for t_pos in range(1, num_maskmem):
        t_rel = num_maskmem - t_pos
        if t_rel == 1:
            prev = frame_idx + t_rel if reverse else frame_idx - t_rel
        elif not reverse:
            prev = ((frame_idx - 2) // r) * r - (t_rel - 2) * r
        else:
            prev = -(-(frame_idx + 2) // r) * r + (t_rel - 2) * r
        if prev in tracked_set or prev in unsel_set:
            mem.append(prev)
            tpos.append(num_maskmem - t_pos - 1)
    if only_obj_ptrs_in_the_past:
        ptrs = [t for t in sel if (t >= frame_idx if reverse else t <= frame_idx)]
    else:
        ptrs = list(sel)
    n_ptr = max_obj_ptrs if num_frames is None else min(num_frames, max_obj_ptrs)
    for t_diff in range(1, n_ptr):
        t = frame_idx + t_diff if reverse else frame_idx - t_diff
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        if t in tracked_set or t in unsel_set:
            ptrs.append(t)
    return MemorySelection(mem, tpos, ptrs)


@dataclass
class VideoResult:
    """low_res [F,1,4h,4w] fp32 mask logits per frame; masks [F,H,W] bool final masks;
    order: the frames in the order they were decoded."""

    low_res: Tensor
    masks: Tensor
    order: List[int]


class _Bank:
    """Per-frame state of one object: memory features [B,64,h,w], pointer [B,256], low-res."""

    def __init__(self, store_dtype: Optional[torch.dtype]) -> None:
        self.store_dtype = store_dtype
        self.mem: Dict[int, Tensor] = {}
        self.ptr: Dict[int, Tensor] = {}
        self.low: Dict[int, Tensor] = {}


def _finish_frame(tracker: SamTracker, bank: _Bank, f: int, image_embed: Tensor,
                  dec: Tuple[Tensor, Tensor, Tensor, Tensor], from_pts: bool) -> None:
    masks, iou, obj, tokens = dec
    low, high = tracker.best_mask(masks, iou, obj)
    bank.low[f] = low
    bank.ptr[f] = tracker.object_pointer(tokens, iou, obj)
    mem = tracker.encode_memory(image_embed, high, obj, from_pts)[0]
    bank.mem[f] = mem if bank.store_dtype is None else mem.to(bank.store_dtype)


def decode_cond_frame(encoder: SamImageEncoder, decoder: SamMaskDecoder, tracker: SamTracker,
                      frame: Tensor, language_embed: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """2-D decode of one frame [1,3,S,S] with a language embedding [256] (also the video's
    conditioning-frame step) -> (masks, iou_pred, object_score_logits, mask_tokens, image_embed)."""
    _s0, _s1, embed, _pos = encoder(frame)
    masks, iou, obj, tokens = decoder(tracker.no_memory(embed), _s0, _s1, language_embed.reshape(1, -1))
    return masks, iou, obj, tokens, embed


@torch.no_grad()
def run_video(encoder: SamImageEncoder, decoder: SamMaskDecoder, tracker: SamTracker, frames: Tensor,
              language_embed: Tensor, cond_frames: Optional[Sequence[int]] = None,
              orig_size: Optional[Tuple[int, int]] = None, reverse: bool = True,
              memory_store_dtype: Optional[torch.dtype] = None) -> VideoResult:
    """SAM2 video inference as the release runs it.

    frames [F,3,S,S] normalised SAM2 inputs (only one is encoded at a time); language_embed [256]
    (text_hidden_fcs output of one [SEG]); cond_frames: frames prompted with it (default: the
    release's first min(5, F)); orig_size (H, W) of the final masks (default S x S); reverse: also
    run SAM2's backward pass from the first conditioning frame (a no-op when it is frame 0);
    memory_store_dtype: round stored memory features to this dtype (the release stores bf16).
    """
    nf = frames.shape[0]
    cond = sorted(set(release_cond_frames(nf) if cond_frames is None else cond_frames))
    assert cond and 0 <= cond[0] and cond[-1] < nf
    num_maskmem = tracker.num_maskmem
    bank = _Bank(memory_store_dtype)
    order: List[int] = []
    # 1) conditioning frames: independent 2-D decodes, then their memory (preflight)
    for f in cond:
        masks, iou, obj, tokens, embed = decode_cond_frame(encoder, decoder, tracker, frames[f:f + 1], language_embed)
        _finish_frame(tracker, bank, f, embed, (masks, iou, obj, tokens), True)
        order.append(f)
    # 2) forward from the first conditioning frame, then 3) backward from it
    tracked: List[int] = []
    passes = [(1, list(range(cond[0], nf)))]
    if reverse:
        passes.append((-1, list(range(cond[0] - 1, -1, -1))))
    cond_set = set(cond)
    for direction, frame_order in passes:
        for f in frame_order:
            if f in cond_set:
                continue
            sel = select_memory(f, cond, tracked, num_maskmem, direction, nf)
            s0, s1, embed, pos = encoder(frames[f:f + 1])
            mem = torch.stack([bank.mem[t] for t in sel.mem_frames], dim=0)
            tpos = torch.tensor(sel.tpos_index, dtype=torch.long, device=embed.device)
            if sel.ptr_frames:
                ptrs = torch.stack([bank.ptr[t] for t in sel.ptr_frames], dim=0)
            else:
                ptrs = embed.new_zeros(0, embed.shape[0], tracker.hidden_dim)
            pix = tracker.condition(embed, pos, mem, tpos, ptrs)
            _finish_frame(tracker, bank, f, embed, tracker.decode_tracked(pix, s0, s1), False)
            tracked.append(f)
            order.append(f)
    low = torch.cat([bank.low[f] for f in range(nf)], dim=0)
    size = orig_size if orig_size is not None else (frames.shape[-2], frames.shape[-1])
    ones = torch.ones(nf, 1, device=low.device)
    masks_out, _, _ = decode_best(low, ones, tracker.image_size, size[0], size[1])
    return VideoResult(low, masks_out, order)
