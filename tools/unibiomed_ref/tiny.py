"""The tiny test model: its tokenizer corpus and a short, deterministic language-model training.

A model with random weights almost never writes ``[SEG]``, so goldens made with one would not
exercise the grounding path. The tiny bundle's vision encoder, projector and language model are
therefore trained for a few hundred steps (seconds on one CPU core) to answer the release's task
prompts in the release's style ("It is [SEG].", "There is a lesion <p>lesion</p> [SEG] ...").
The SAM2 part keeps its seeded random weights: the goldens test parity, not quality (the demo
model of issue 7 is the one trained to segment).
"""

from __future__ import annotations

import dataclasses
import random
from typing import List, Sequence, Tuple

import numpy as np
import torch

from unibiomed_ref import prompt as P
from unibiomed_ref.language import rope_cos_sin
from unibiomed_ref.pipeline import ModelParts, embed_prompt, vision_tiles
from unibiomed_ref.settings import InferenceSettings

TARGETS = ("brain", "liver", "left lung", "right kidney", "lateral ventricles", "the lesion",
           "optic disc", "gland", "nuclei", "pancreas", "spleen", "heart")
DISEASES = ("brain tumor", "liver tumor", "colon cancer", "no findings", "skin lesion",
            "breast tumor", "lung nodule")
REGIONS = ("left frontal lobe", "right temporal lobe", "liver", "left lung", "cerebellum")
QUESTIONS = ("Where is the lesion?", "Which organ is enlarged?", "Is the ventricle dilated?")


@dataclasses.dataclass(frozen=True)
class Example:
    task: str
    user_text: str
    answer: str


def examples(settings: InferenceSettings) -> List[Example]:
    """Every (task, prompt, answer) the tiny model is trained on, in a fixed order."""
    out: List[Example] = []
    for target in TARGETS:
        out.append(Example("segment", P.task_text(settings.chat, "segment", target=target),
                           "It is [SEG]."))
    for i, disease in enumerate(DISEASES):
        out.append(Example("diagnose", P.task_text(settings.chat, "diagnose"),
                           f"It is [SEG]. {disease}." if i == 0 else ""))
    for region in REGIONS[:1]:
        out.append(Example("report", P.task_text(settings.chat, "report"),
                           f"There is a lesion <p>lesion</p> [SEG] in the {region}."))
    for question in QUESTIONS[:1]:
        out.append(Example("vqa", P.task_text(settings.chat, "vqa", question=question),
                           "The <p>lateral ventricles</p> [SEG] are not dilated."))
    return [e for e in out if e.answer]


def tokenizer_corpus(settings: InferenceSettings) -> List[str]:
    """Lines the tiny SentencePiece model is trained on: templates, prompts, answers, words."""
    lines = [settings.chat.template, settings.chat.system, *settings.chat.stop_words]
    lines += [text for _, text in settings.chat.tasks]
    for e in examples(settings):
        lines.append(P.chat_prompt(settings.chat, e.user_text) + e.answer
                     + settings.chat.stop_words[0])
    lines += list(TARGETS) + list(DISEASES) + list(REGIONS) + list(QUESTIONS)
    lines += ["Please segment {target}.".replace("{target}", t) for t in TARGETS]
    return [line for line in lines if line]


def _sequence(tokenizer, settings: InferenceSettings, e: Example,
              tokens_per_tile: int) -> Tuple[List[int], List[int]]:
    text = P.chat_prompt(settings.chat, P.expand_image_tokens(
        e.user_text, [tokens_per_tile], settings.chat.image_placeholder))
    return tokenizer.encode(text), tokenizer.encode(e.answer + settings.chat.stop_words[0])


def training_forward(lm: torch.nn.Module,
                     embeds: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Full causal forward for training: the decoder layers with one scratch cache per layer
    (the export's single [L, ...] cache is written in place, which autograd cannot see through
    across layers). Same arithmetic as ``LanguageDecoder.forward``; returns (logits [B, T, V],
    hidden [B, T, H], the final-norm output from which [SEG] states are read)."""
    b, t, _ = embeds.shape
    cfg = lm.config
    cos, sin = rope_cos_sin(0, t, cfg.head_dim, cfg.rope_theta, embeds)
    x = embeds
    for layer in lm.model.layers:
        k = embeds.new_zeros(b, cfg.num_key_value_heads, t, cfg.head_dim)
        x = layer(x, cos, sin, 0, k, torch.zeros_like(k))
    hidden = lm.model.norm(x)
    return lm.lm_head(hidden), hidden


def train_language(parts: ModelParts, modules: Sequence[torch.nn.Module], tokenizer,
                   settings: InferenceSettings, images: Sequence[np.ndarray], steps: int,
                   seed: int, lr: float = 3e-3, batch: int = 6) -> List[float]:
    """Teacher-forced training of the answers; returns the loss per step.

    ``modules`` are the trainable modules (vision encoder, projector, language model);
    ``images`` are RGB uint8 arrays, each shown as one tile (resized to the tile size).
    The language model is the last of ``modules``.
    """
    language_model = modules[-1]
    rng = random.Random(seed)
    data = examples(settings)
    tiles = [vision_tiles(np.asarray(_resize(img, settings.tile_size)), settings)
             for img in images]
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    context_id = tokenizer.token_to_id(P.IMG_CONTEXT)
    lang = settings.language
    losses: List[float] = []
    for _step in range(steps):
        picks = [(rng.choice(data), rng.randrange(len(tiles))) for _ in range(batch)]
        seqs = [_sequence(tokenizer, settings, e, settings.tokens_per_tile) for e, _ in picks]
        length = max(len(p) + len(a) for p, a in seqs)
        rows, targets = [], []
        for (prompt_ids, answer_ids), (_e, img) in zip(seqs, picks):
            ids = prompt_ids + answer_ids
            pad = length - len(ids)
            ids_t = torch.tensor(ids + [0] * pad, dtype=torch.long)
            tokens = parts.vision(tiles[img]).reshape(-1, lang.hidden_size)
            rows.append(embed_prompt(parts, ids_t, tokens, context_id)[0])
            target = [-100] * (len(prompt_ids) - 1) + answer_ids + [-100] * (pad + 1)
            targets.append(torch.tensor(target[:length], dtype=torch.long))
        logits, _ = training_forward(language_model, torch.stack(rows))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 torch.stack(targets).reshape(-1),
                                                 ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    for p in params:
        p.requires_grad_(False)
    return losses


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb, "RGB").resize((size, size), Image.BICUBIC))
