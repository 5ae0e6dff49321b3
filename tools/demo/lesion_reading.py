"""How a model reads a held-out lesion's side (make_demo_model.py reading): where the lesion
attention head looks from a report's side word, whether the teacher-forced side word is right,
and how much of the side the lesion's own image token carries (a linear probe fitted on
training slices, scored on held-out ones) beside what its column alone tells; and, with the
training run's lesion-patch head, how often the vision encoder singles the lesion out.

Every figure is on lesions inserted into the scans' own rendering, as the bar counts them."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from demo.anatomy import Subject
from demo.lesion_attention import forward_with_head
from demo.samples import Case, Sampler
from demo.token_labels import cell_shares
from demo.vision_terms import patches_and_tokens
from unibiomed_ref import prompt as P
from unibiomed_ref.model import model_parts
from unibiomed_ref.pipeline import PRE, embed_prompt, vision_tiles


def _lesion_cases(subjects: Sequence[Subject], chat, held_out: bool, seed: int,
                  n: int, with_report: bool = True) -> List[Case]:
    """``n`` slices with a lesion in the scans' own rendering (and, ``with_report``, a report
    turn)."""
    sampler = Sampler(subjects, chat, held_out, seed)
    sampler.synthetic_lesions = 0.0
    cases: List[Case] = []
    while len(cases) < n:
        case = sampler.image_case(seg_turns=0, lesion_rate=1.0)
        if case.facts.get("lesion") and \
                (not with_report or any(t.task == "report" for t in case.turns)):
            cases.append(case)
    return cases


def _lesion_token(encoder, case: Case, settings) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """(the slice's image tokens [T, H], the lesion's share of each, the column of the token
    most covered by the lesion)."""
    tokens = encoder(vision_tiles(PRE.grey_to_rgb(case.pictures[0]), settings))[0]
    grid = int(round(tokens.shape[0] ** 0.5))
    share = cell_shares(case.labels["lesion"][0], grid)
    return tokens, share, int(share.argmax()) % grid


def _side_probe(train: Sequence[Tuple[np.ndarray, bool]],
                test: Sequence[Tuple[np.ndarray, bool]]) -> float:
    """A logistic regression (standardised features, small L2) fitted on ``train``; its
    accuracy on ``test``."""
    x = torch.tensor(np.stack([f for f, _ in train]))
    y = torch.tensor([float(s) for _, s in train])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    with torch.enable_grad():  # the caller reads the model under no_grad
        for _ in range(500):
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits((x - mu) / sd @ w + b, y) + \
                1e-3 * (w * w).sum()
            loss.backward()
            opt.step()
    with torch.no_grad():
        xt = torch.tensor(np.stack([f for f, _ in test]))
        guess = ((xt - mu) / sd @ w + b) > 0
    return float(np.mean([bool(g) == s for g, (_, s) in zip(guess.tolist(), test)]))


@torch.no_grad()
def lesion_reading(model, tokenizer, settings, subjects: Sequence[Subject], chat,
                   head: Tuple[int, int] = (1, 0), cases: int = 10, probe_cases: int = 300,
                   seed: int = 99) -> Dict[str, float]:
    model.eval()
    parts = model.export_parts()
    encoder = parts["vision_encoder"]
    context_id = tokenizer.token_to_id(P.IMG_CONTEXT)
    sides = {tokenizer.encode(" left")[-1]: "left", tokenizer.encode(" right")[-1]: "right"}
    held = _lesion_cases(subjects, chat, True, seed, max(cases, 60))
    held_tokens = [_lesion_token(encoder, case, settings) for case in held]
    on_lesion, mass, side_ok = [], [], []
    for case, (tokens, share, _) in zip(held[:cases], held_tokens):
        turn = next(t for t in case.turns if t.task == "report")
        prompt = tokenizer.encode(P.chat_prompt(settings.chat, P.expand_image_tokens(
            turn.user_text, [settings.tokens_per_tile], settings.chat.image_placeholder)))
        answer = tokenizer.encode(turn.answer)
        at = [i for i, a in enumerate(answer) if a in sides]
        if not at:
            raise ValueError(f"report {turn.answer!r} names no side")
        ids = torch.tensor(prompt + answer)
        embeds = embed_prompt(model_parts(parts), ids, tokens, context_id)
        logits, _, probs = forward_with_head(model.language_model, embeds, *head)
        pos = len(prompt) + at[0] - 1  # the position that predicts the side word
        look = probs[0, pos, (ids == context_id).nonzero()[:, 0]]
        on_lesion.append(bool(share[int(look.argmax())] > 0))
        mass.append(float(look[share > 0].sum()))
        best = max(sides, key=lambda i: float(logits[0, pos, i]))
        side_ok.append(sides[best] == case.facts["lesion"]["side"])
    train = _lesion_cases(subjects, chat, False, seed + 1, probe_cases)
    train_tokens = [_lesion_token(encoder, case, settings) for case in train]

    def features(group, read):
        return [(tokens[int(share.argmax())].numpy(), case.facts["lesion"]["side"] == "left")
                for case, (tokens, share, _) in zip(group, read)]

    # radiological orientation: the patient's left on the picture's right half
    column_ok = [(column >= int(round(tokens.shape[0] ** 0.5)) // 2) ==
                 (case.facts["lesion"]["side"] == "left")
                 for case, (tokens, _, column) in zip(held, held_tokens)]
    return {"cases": float(cases), "head on the lesion": float(np.mean(on_lesion)),
            "head mass on the lesion": float(np.mean(mass)),
            "side word (teacher forced)": float(np.mean(side_ok)),
            "side from the lesion token (linear probe)":
                _side_probe(features(train, train_tokens), features(held, held_tokens)),
            "side from the lesion token's column": float(np.mean(column_ok))}


@torch.no_grad()
def lesion_detection(model, patch_head: Dict[str, torch.Tensor], settings,
                     subjects: Sequence[Subject], chat, cases: int = 100,
                     seed: int = 123) -> Dict[str, float]:
    """How often the training run's patch head (``patch_head``: its state) scores a patch of
    the lesion highest, on held-out lesions, over all and by scan and contrast (bright: hyper-
    intense or hyperdense) and by the lesion's area in the picture."""
    model.eval()
    encoder = model.export_parts()["vision_encoder"]
    head = torch.nn.Linear(patch_head["weight"].shape[1], 1)
    head.load_state_dict(patch_head)
    hits: Dict[str, List[bool]] = {}
    for case in _lesion_cases(subjects, chat, True, seed, cases, with_report=False):
        patches, _, side = patches_and_tokens(
            encoder, vision_tiles(PRE.grey_to_rgb(case.pictures[0]), settings))
        lesion = case.labels["lesion"][0]
        hit = bool(cell_shares(lesion, side)[int(head(patches[0])[:, 0].argmax())] > 0)
        area = int(lesion.sum())
        kind = f"{case.facts['subject']} {'bright' if case.facts['lesion']['bright'] else 'dark'}"
        size = "under 400 pixels" if area < 400 else "400 pixels or more"
        for group in ("all", kind, size):
            hits.setdefault(group, []).append(hit)
    return {f"top patch on the lesion, {g} ({len(v)})": float(np.mean(v))
            for g, v in sorted(hits.items())}
