"""The reference pipeline for a volume (or any frame sequence): SAM2 video mode, as the release.

The language model sees a few frames (the release: the first ``video_llm_frames``, one tile
each, the frame resized straight to the tile size); each ``[SEG]`` embedding conditions those
frames and SAM2's memory carries the mask through the other frames (``sam2/video.py``).
``cond_frames`` lets a caller show the language model other frames (a better default for CT
is issue 6's business); the same frames are the conditioning frames.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from unibiomed_ref import prompt as P
from unibiomed_ref.pipeline import (Generation, ModelParts, embed_prompt, generate,
                                    sam_image_input)
from unibiomed_ref.pipeline import PRE  # tools/reference/preprocess.py
from unibiomed_ref.sam2.video import run_video
from unibiomed_ref.settings import InferenceSettings


@dataclasses.dataclass
class ResultVideo:
    llm_frames: List[int]  # frames the language model saw (the conditioning frames, with "seen")
    generation: Generation
    language_embeddings: torch.Tensor  # [K, D]
    low_res: torch.Tensor  # [K, F, 1, h, w] chosen mask logits per frame
    masks: np.ndarray  # [K, F, H, W] bool
    phrases: List[str]


def release_llm_frames(num_frames: int, s: InferenceSettings) -> List[int]:
    """The release's rule: the first ``video_llm_frames`` frames."""
    return list(range(min(s.video_llm_frames, num_frames)))


def frame_tile(rgb: np.ndarray, s: InferenceSettings) -> np.ndarray:
    """One vision tile of a frame: resized straight to the tile size (BICUBIC), normalised."""
    img = Image.fromarray(rgb, "RGB").resize((s.tile_size, s.tile_size), Image.BICUBIC)
    return PRE.normalize_imagenet(img)


@torch.inference_mode()
def interpret_frames(parts: ModelParts, tokenizer, s: InferenceSettings,
                     frames: Sequence[np.ndarray], task: str = "segment", target: str = "",
                     question: str = "", llm_frames: Optional[Sequence[int]] = None,
                     max_new_tokens: Optional[int] = None,
                     dtype: torch.dtype = torch.float32,
                     prompt_frames: Optional[str] = None) -> ResultVideo:
    """Run the video pipeline on RGB uint8 frames [H, W, 3] (all the same size). The [SEG]
    embeddings prompt the frames the language model saw (``prompt_frames`` "seen", as the
    release; SAM2's memory does the rest) or every frame ("every"); None: the settings'."""
    if not frames:
        raise ValueError("interpret_frames needs at least one frame")
    height, width = frames[0].shape[:2]
    seen = sorted(set(release_llm_frames(len(frames), s) if llm_frames is None else llm_frames))
    if not seen or seen[0] < 0 or seen[-1] >= len(frames):
        raise ValueError(f"language-model frames {seen} outside 0..{len(frames) - 1}")
    prompted = prompt_frames or s.video_prompt_frames
    if prompted not in ("seen", "every"):
        raise ValueError(f"prompt_frames {prompted!r}: expected seen or every")
    cond = list(range(len(frames))) if prompted == "every" else seen
    tiles = torch.from_numpy(np.stack([frame_tile(frames[i], s) for i in seen]))
    tokens = parts.vision(tiles.to(dtype))
    user = P.task_text(s.chat, task, target, question)
    text = P.chat_prompt(s.chat, P.expand_image_tokens(
        user, [tokens.shape[1]] * len(seen), s.chat.image_placeholder))
    ids = tokenizer.encode(text)
    embeds = embed_prompt(parts, torch.tensor(ids, dtype=torch.long),
                          tokens.reshape(-1, tokens.shape[-1]),
                          tokenizer.token_to_id(P.IMG_CONTEXT))
    gen = generate(parts, tokenizer, s, embeds, ids, max_new_tokens)
    language = parts.grounding(gen.seg_hidden)
    sam_frames = torch.cat([sam_image_input(f, s) for f in frames]).to(dtype)
    lows, masks = [], []
    for k in range(language.shape[0]):
        out = run_video(parts.sam_image, parts.sam_decoder, parts.sam_tracker, sam_frames,
                        language[k], cond_frames=cond, orig_size=(height, width))
        lows.append(out.low_res)
        masks.append(out.masks.numpy())
    f = len(frames)
    h = s.sam_low_res_size
    low = torch.stack(lows) if lows else torch.zeros(0, f, 1, h, h)
    mask_arr = np.stack(masks) if masks else np.zeros((0, f, height, width), dtype=bool)
    return ResultVideo(seen, gen, language, low, mask_arr,
                       P.seg_phrases(gen.text, [target] if target else []))
