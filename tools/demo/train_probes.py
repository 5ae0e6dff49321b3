"""Checks of a training run on held-out slices (make_demo_model.py train prints them): what
the image tokens tell of a lesion through the training heads, and whether the masks follow the
prompt."""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch

from demo.samples import Case, Sampler
from demo.token_labels import LOCATIONS, cell_shares, location_index
from demo.train import Trainer
from demo.vision_terms import patches_and_tokens
from unibiomed_ref.pipeline import PRE, sam_image_input, vision_tiles


@torch.no_grad()
def location_probe(trainer: Trainer, sampler: Sampler, cases: int = 48) -> Dict[str, float]:
    """What the image tokens of held-out slices (``sampler``, most with a lesion) tell
    through the training heads: the location head's answer (its logits averaged over the
    tokens) right on lesion slices, its side right, 'none' on normal slices, and how often
    the token the lesion head (and the patch the patch head) scores highest touches the
    lesion."""
    li = trainer.name_index["lesion"]
    hits = {"location": 0, "side": 0, "normal": 0, "top token": 0, "top patch": 0}
    n_lesion = n_normal = 0
    for _ in range(cases):
        case = sampler.image_case(seg_turns=0, lesion_rate=0.75)
        patches, tokens, side = patches_and_tokens(
            trainer.parts["vision_encoder"],
            vision_tiles(PRE.grey_to_rgb(case.pictures[0]), trainer.s))
        tokens = tokens[0]
        guess = LOCATIONS[int(trainer.location_logits(tokens).argmax())]
        truth = LOCATIONS[location_index(case)]
        if truth == "none":
            n_normal += 1
            hits["normal"] += guess == "none"
            continue
        n_lesion += 1
        hits["location"] += guess == truth
        hits["side"] += guess.split(" ")[0] == truth.split(" ")[0]
        cell = cell_shares(case.labels["lesion"][0], int(round(math.sqrt(tokens.shape[0]))))
        hits["top token"] += bool(cell[int(trainer.token_head(tokens)[:, li].argmax())] > 0)
        cell = cell_shares(case.labels["lesion"][0], side)
        hits["top patch"] += bool(cell[int(trainer.patch_head(patches[0])[:, 0].argmax())] > 0)
    return {k: v / max(1, n_normal if k == "normal" else n_lesion) for k, v in hits.items()}


@torch.no_grad()
def mask_probe(trainer: Trainer, case: Case) -> Dict[str, Tuple[float, float]]:
    """Dice (at the low resolution) of the best candidate of each segmentation turn of a
    slice case, from its [SEG] embedding and from its target's code: a check, during
    training, that the masks follow the prompt."""
    turns = [t for t in case.turns if t.task == "segment"]
    one = Case(case.pictures, turns, case.facts)
    _, emb, where, _ = trainer._language([one])
    s0, s1, embed, _ = trainer.parts["sam_image_encoder"](
        sam_image_input(PRE.grey_to_rgb(case.pictures[0]), trainer.s))
    tracker = trainer.parts["sam_tracker"]
    n = len(where)
    codes = trainer.codes[torch.tensor([trainer.name_index[turns[ti].target]
                                        for _, ti, _ in where])]
    out: Dict[str, Tuple[float, float]] = {}
    dices = []
    for prompt in (emb, codes):
        masks, iou, _, _ = trainer.parts["sam_mask_decoder"](
            tracker.no_memory(embed.expand(n, -1, -1, -1)), s0.expand(n, -1, -1, -1),
            s1.expand(n, -1, -1, -1), prompt)
        row = []
        for i, (_, ti, mi) in enumerate(where):
            pred = masks[i, int(iou[i].argmax())] > 0
            truth = trainer._target(turns[ti].masks[mi][0]) > 0.5
            total = int(pred.sum() + truth.sum())
            row.append(2.0 * int((pred & truth).sum()) / total if total else 1.0)
        dices.append(row)
    for i, (_, ti, _) in enumerate(where):
        out[turns[ti].target] = (dices[0][i], dices[1][i])
    return out
