"""The reference inference pipeline for a 2-D image: what the release's ``predict_forward`` does.

preprocess (tiles for the vision encoder, a 1024 image for SAM2) -> vision encoding -> prompt
building -> prefill -> greedy decoding with a caller-owned KV cache -> the final-norm hidden state
where each ``[SEG]`` is fed -> grounding projector -> SAM2 image encoding and mask decoding with
the language embedding as the prompt -> best candidate by predicted IoU -> upsampling -> threshold.

The pipeline calls the model only through the methods the TorchScript exports have, so it runs
the same on the eager reference modules and on a bundle loaded with ``torch.jit.load``; the
C++ engine implements the same steps and is tested against this pipeline's goldens.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from unibiomed_ref import prompt as P
from unibiomed_ref.settings import InferenceSettings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "reference"))
import preprocess as PRE  # noqa: E402  (tools/reference/preprocess.py: the foundation's rules)


@dataclasses.dataclass
class ModelParts:
    """The six exported modules (eager wrappers or ``torch.jit.load``-ed ScriptModules)."""

    vision: torch.nn.Module  # forward(pixels [N,3,448,448]) -> [N, 256, H]
    language: torch.nn.Module  # embed(ids [B,T]); forward(embeds, start, k, v, logits_index)
    grounding: torch.nn.Module  # forward(hidden [K,H]) -> [K, 256]
    sam_image: torch.nn.Module  # forward(image [B,3,S,S]) -> (s0, s1, embed, pos)
    sam_decoder: torch.nn.Module  # forward(embed, s0, s1, lang [B,256]) -> (masks, iou, obj, tok)
    sam_tracker: torch.nn.Module  # no_memory(embed), encode_memory, object_pointer, condition


@dataclasses.dataclass
class Generation:
    """What the language model produced for one prompt."""

    prompt_ids: List[int]
    output_ids: List[int]  # generated ids, stop word and EOS included as generated
    text: str  # decoded answer, stop word removed, stripped
    seg_hidden: torch.Tensor  # [K, H] final-norm hidden states where each [SEG] was fed
    stopped_by: str  # "eos", "stop_word" or "max_new_tokens"


@dataclasses.dataclass
class Result2D:
    """The pipeline's output for one image and prompt, with every intermediate worth testing."""

    tiles: torch.Tensor  # [N, 3, 448, 448] vision input
    image_tokens: torch.Tensor  # [N, 256, H] vision encoder output
    sam_image: torch.Tensor  # [1, 3, 1024, 1024] SAM2 input
    generation: Generation
    language_embeddings: torch.Tensor  # [K, 256]
    mask_logits: torch.Tensor  # [K, 3, 256, 256] all candidates
    iou: torch.Tensor  # [K, 3]
    object_scores: torch.Tensor  # [K, 1]
    best: torch.Tensor  # [K] index of the chosen candidate
    masks: np.ndarray  # [K, H, W] bool, on the input's grid
    phrases: List[str]


def vision_tiles(rgb: np.ndarray, s: InferenceSettings) -> torch.Tensor:
    """InternVL dynamic tiling of an RGB uint8 image -> normalised [N, 3, size, size]."""
    image = Image.fromarray(rgb, "RGB")
    tiles = PRE.dynamic_tiles(image, s.max_tiles, s.tile_size, s.use_thumbnail)
    return torch.from_numpy(np.stack([PRE.normalize_imagenet(t) for t in tiles]))


def sam_image_input(rgb: np.ndarray, s: InferenceSettings) -> torch.Tensor:
    """SAM2 input: the RGB image resized straight to [1, 3, S, S], normalised."""
    return torch.from_numpy(PRE.sam_input(Image.fromarray(rgb, "RGB"), s.sam_image_size))[None]


def embed_prompt(parts: ModelParts, ids: torch.Tensor, image_tokens: torch.Tensor,
                 context_id: int) -> torch.Tensor:
    """Token embeddings [1, T, H] with the ``<IMG_CONTEXT>`` rows replaced by vision tokens."""
    embeds = parts.language.embed(ids[None])
    where = (ids == context_id).nonzero().flatten()
    if where.numel() != image_tokens.shape[0]:
        raise ValueError(f"prompt has {where.numel()} <IMG_CONTEXT> tokens for "
                         f"{image_tokens.shape[0]} vision tokens")
    embeds[0, where] = image_tokens.to(embeds.dtype)
    return embeds


@torch.inference_mode()
def generate(parts: ModelParts, tokenizer, s: InferenceSettings, embeds: torch.Tensor,
             prompt_ids: List[int], max_new_tokens: Optional[int] = None) -> Generation:
    """Greedy decoding with a KV cache allocated once, as the C++ engine does.

    The release's rules: stop when EOS is generated or when the decoded output (without CR/LF)
    ends with a stop word; the hidden state of a ``[SEG]`` is the one computed when that token
    is fed back in, so a ``[SEG]`` generated as the very last token has none and is dropped.
    """
    limit = s.chat.max_new_tokens if max_new_tokens is None else max_new_tokens
    seg_id = tokenizer.token_to_id(P.SEG)
    eos = set(s.eos_token_ids)
    lang = s.language
    total = embeds.shape[1] + limit
    dtype = embeds.dtype
    shape = (lang.num_layers, 1, lang.num_kv_heads, total, lang.head_dim)
    k_cache = torch.zeros(shape, dtype=dtype)
    v_cache = torch.zeros(shape, dtype=dtype)
    last = torch.tensor([embeds.shape[1] - 1], dtype=torch.long)
    logits, _ = parts.language(embeds, 0, k_cache, v_cache, last)
    pos = embeds.shape[1]
    out: List[int] = []
    seg_hidden: List[torch.Tensor] = []
    stopped_by = "max_new_tokens"
    zero = torch.zeros(1, dtype=torch.long)
    while len(out) < limit:
        token = int(logits[0, -1].argmax())
        out.append(token)
        if token in eos:
            stopped_by = "eos"
            break
        if P.find_stop(tokenizer.decode(out), s.chat.stop_words) is not None:
            stopped_by = "stop_word"
            break
        if len(out) == limit:
            break
        step = parts.language.embed(torch.tensor([[token]], dtype=torch.long))
        logits, hidden = parts.language(step, pos, k_cache, v_cache, zero)
        if token == seg_id:
            seg_hidden.append(hidden[0, 0])
        pos += 1
    text = tokenizer.decode([t for t in out if t not in eos])
    stop_at = P.find_stop(text, s.chat.stop_words)
    if stop_at is not None:
        text = text[:stop_at]
    hidden_size = embeds.shape[2]
    seg = torch.stack(seg_hidden) if seg_hidden else torch.zeros(0, hidden_size, dtype=dtype)
    return Generation(prompt_ids, out, text.strip(), seg, stopped_by)


def upsample_masks(low_res: torch.Tensor, sam_size: int, height: int, width: int) -> torch.Tensor:
    """[K, 1, 256, 256] logits -> bilinear to S x S -> bilinear to H x W (align_corners False)."""
    up = torch.nn.functional.interpolate(low_res.float(), size=(sam_size, sam_size),
                                         mode="bilinear", align_corners=False)
    return torch.nn.functional.interpolate(up, size=(height, width), mode="bilinear",
                                           align_corners=False)


@torch.inference_mode()
def segment_with_embeddings(parts: ModelParts, s: InferenceSettings, sam_image: torch.Tensor,
                            language: torch.Tensor, height: int, width: int):
    """SAM2 2-D decode of K language embeddings on one image; returns the candidates and masks."""
    s0, s1, embed, _pos = parts.sam_image(sam_image)
    embed = parts.sam_tracker.no_memory(embed)
    k = language.shape[0]
    masks, iou, obj, _tokens = parts.sam_decoder(
        embed.expand(k, -1, -1, -1), s0.expand(k, -1, -1, -1), s1.expand(k, -1, -1, -1),
        language.to(embed.dtype))
    best = iou.argmax(dim=1)
    chosen = masks[torch.arange(k), best][:, None]
    logits = upsample_masks(chosen, s.sam_image_size, height, width)[:, 0]
    return masks, iou, obj, best, (logits > s.mask_threshold).numpy()


@torch.inference_mode()
def interpret_image(parts: ModelParts, tokenizer, s: InferenceSettings, rgb: np.ndarray,
                    task: str = "segment", target: str = "", question: str = "",
                    raw_prompt: Optional[str] = None,
                    max_new_tokens: Optional[int] = None,
                    dtype: torch.dtype = torch.float32) -> Result2D:
    """Run the whole 2-D pipeline on an RGB uint8 image [H, W, 3]."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("interpret_image expects an RGB uint8 array [H, W, 3]")
    height, width = rgb.shape[:2]
    tiles = vision_tiles(rgb, s)
    image_tokens = parts.vision(tiles.to(dtype))
    flat = image_tokens.reshape(-1, image_tokens.shape[-1])
    user = raw_prompt if raw_prompt is not None else P.task_text(s.chat, task, target, question)
    text = P.chat_prompt(s.chat, P.expand_image_tokens(
        user, [flat.shape[0]], s.chat.image_placeholder))
    ids = tokenizer.encode(text)
    context_id = tokenizer.token_to_id(P.IMG_CONTEXT)
    embeds = embed_prompt(parts, torch.tensor(ids, dtype=torch.long), flat, context_id)
    gen = generate(parts, tokenizer, s, embeds, ids, max_new_tokens)
    language = parts.grounding(gen.seg_hidden)
    sam = sam_image_input(rgb, s)
    targets = [target] if target else []
    if language.shape[0] == 0:
        empty = torch.zeros(0)
        return Result2D(tiles, image_tokens, sam, gen, language, empty, empty, empty,
                        torch.zeros(0, dtype=torch.long),
                        np.zeros((0, height, width), dtype=bool), [])
    masks, iou, obj, best, final = segment_with_embeddings(parts, s, sam.to(dtype), language,
                                                           height, width)
    phrases = P.seg_phrases(gen.text, targets)
    return Result2D(tiles, image_tokens, sam, gen, language, masks, iou, obj, best, final, phrases)


def summary(result: Result2D) -> Dict[str, object]:
    """A JSON-able summary (text, ids, per-mask area and box) for goldens and printing."""
    items = []
    for i, mask in enumerate(result.masks):
        ys, xs = np.nonzero(mask)
        box: Sequence[int] = ([int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
                              if xs.size else [])
        items.append({"phrase": result.phrases[i] if i < len(result.phrases) else "",
                      "area_px": int(mask.sum()), "box": list(box),
                      "best": int(result.best[i]), "iou": result.iou[i].tolist()})
    return {"text": result.generation.text, "prompt_ids": result.generation.prompt_ids,
            "output_ids": result.generation.output_ids,
            "stopped_by": result.generation.stopped_by, "masks": items}
