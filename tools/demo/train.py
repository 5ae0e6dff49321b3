"""Training of the demo model: the release's losses on cases from ``samples.Sampler``.

One step holds two slice cases (two segmentation turns and one report, diagnose or VQA turn
each) and one stack of adjacent slices whose first frame is decoded with the language prompt
and whose next frames are tracked through SAM2's memory (memory attention, memory encoder,
object pointers), as the engine runs volumes. Losses: the language model's cross-entropy on
the answers; per [SEG], BCE + Dice on the best of the three mask candidates (multimask, as
SAM), the IoU head's squared error and the object-score BCE (is the structure in the slice).
Everything runs through the export wrappers, so the trained graph is the exported one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from demo import texts
from demo.samples import Case, Sampler
from unibiomed_ref import prompt as P
from unibiomed_ref.model import UniBiomedModel, model_parts
from unibiomed_ref.pipeline import PRE, embed_prompt, sam_image_input, vision_tiles
from unibiomed_ref.pipeline_video import frame_tile
from unibiomed_ref.sam2.video import select_memory
from unibiomed_ref.settings import InferenceSettings
from unibiomed_ref.tiny import training_forward


@dataclasses.dataclass
class TrainOptions:
    steps: int = 6000
    lr: float = 6e-4
    warmup: int = 200
    weight_decay: float = 0.01
    clip: float = 1.0
    # The release weighs 2 x BCE + 0.5 x Dice; at this size that lets the masks settle on empty
    # (most targets are small), so Dice weighs as much as BCE here.
    bce_weight: float = 1.0
    dice_weight: float = 1.0
    seed: int = 7
    # Loss on every candidate mask, not only the best one: with SAM's min-over-candidates loss
    # the three candidates settle on three prompt-independent masks (head, brain, ...) and the
    # [SEG] embedding is ignored; the release trains a single mask.
    all_candidates: bool = True
    # Segmentation turns per slice case: several distinct targets on one picture per step make
    # the prompt the only way to lower the mask loss.
    seg_turns: int = 6
    # Weight of an auxiliary loss (training only, not exported): a linear classifier must tell
    # the segmentation target from the [SEG] embedding, so that the prompt reaches the mask
    # decoder from the first steps instead of the masks settling on a prompt-free average.
    target_aux: float = 0.5
    # BCE with the foreground and the background weighing half each. With the plain pixel mean
    # the small targets (ventricles, lobes) settled on empty masks: their pixels are a few per
    # cent of the picture and the sigmoid saturates, so Dice's gradient vanishes.
    balanced_bce: bool = True


def _deconv2x2_for_training(x: torch.Tensor, weight: torch.Tensor,
                            bias: torch.Tensor | None) -> torch.Tensor:
    """fp32 ConvTranspose2d (kernel 2, stride 2). The export keeps the reference's matmul form
    (torch 1.13's CPU bf16 conv_transpose2d is broken); its backward in torch 1.13 gives
    garbage weight gradients (1e29 and up) for the permuted input, so training uses this."""
    return F.conv_transpose2d(x, weight, bias, stride=2)


def use_training_kernels() -> None:
    """Swap in the training forms of ops whose torch 1.13 backward is wrong (same forward)."""
    from unibiomed_ref.sam2 import mask_decoder

    mask_decoder._deconv2x2 = _deconv2x2_for_training


def mask_losses(masks: torch.Tensor, iou_pred: torch.Tensor, obj: torch.Tensor,
                target: torch.Tensor, opts: TrainOptions) -> Dict[str, torch.Tensor]:
    """masks [N,3,h,w] logits, iou_pred [N,3], obj [N,1], target [N,h,w] soft in 0..1."""
    t = target[:, None].expand_as(masks)
    pixel = F.binary_cross_entropy_with_logits(masks, t, reduction="none")
    if opts.balanced_bce:  # foreground and background pixels weigh half each
        pos = (pixel * t).sum((2, 3)) / t.sum((2, 3)).clamp(min=1e-6)
        neg = (pixel * (1 - t)).sum((2, 3)) / (1 - t).sum((2, 3)).clamp(min=1e-6)
        bce = torch.where(t.sum((2, 3)) > 0, 0.5 * (pos + neg), neg)
    else:
        bce = pixel.mean((2, 3))
    p = torch.sigmoid(masks)
    dice = 1 - (2 * (p * t).sum((2, 3)) + 1) / (p.sum((2, 3)) + t.sum((2, 3)) + 1)
    per = opts.bce_weight * bce + opts.dice_weight * dice  # [N,3]
    best = per.argmin(1)
    rows = torch.arange(masks.shape[0])
    mask_loss = per.mean(1) if opts.all_candidates else per[rows, best]
    with torch.no_grad():
        hard_p = masks > 0
        hard_t = t > 0.5
        inter = (hard_p & hard_t).sum((2, 3)).float()
        union = (hard_p | hard_t).sum((2, 3)).float()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    present = (target.flatten(1).amax(1) > 0.5).float()
    return {"mask": mask_loss.mean(),
            "iou": F.mse_loss(iou_pred, iou),
            "object": F.binary_cross_entropy_with_logits(obj[:, 0], present)}


class Trainer:
    def __init__(self, model: UniBiomedModel, tokenizer, settings: InferenceSettings,
                 sampler: Sampler, opts: TrainOptions) -> None:
        use_training_kernels()
        self.model = model
        self.parts = model.export_parts()
        self.model_parts = model_parts(self.parts)
        self.tok = tokenizer
        self.s = settings
        self.sampler = sampler
        self.opts = opts
        self.context_id = tokenizer.token_to_id(P.IMG_CONTEXT)
        self.seg_id = tokenizer.token_to_id(P.SEG)
        self.stop = settings.chat.stop_words[0]
        self.target_names = sorted(set(texts.MR_TARGETS) | set(texts.CT_TARGETS) | {"lesion"})
        self.aux = torch.nn.Linear(model.config.grounding.out_dim, len(self.target_names))
        params = [p for p in model.parameters() if p.requires_grad] + \
            list(self.aux.parameters())
        decay = [p for p in params if p.ndim >= 2]
        other = [p for p in params if p.ndim < 2]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": opts.weight_decay},
                                      {"params": other, "weight_decay": 0.0}], lr=opts.lr)
        self.step_no = 0
        self.skipped: List[object] = []  # facts of the cases of steps with a non-finite loss
        self.low = settings.sam_image_size // 4

    def lr_at(self, step: int) -> float:
        o = self.opts
        if step < o.warmup:
            return o.lr * (step + 1) / o.warmup
        q = (step - o.warmup) / max(1, o.steps - o.warmup)
        return o.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(q, 1.0))))

    def _target(self, mask: np.ndarray) -> torch.Tensor:
        m = torch.from_numpy(mask.astype(np.float32))[None, None]
        return F.interpolate(m, size=(self.low, self.low), mode="area")[0, 0]

    def _language(self, cases: Sequence[Case]):
        """Teacher-forced answers of every turn: (CE loss, [SEG] embeddings [N,C], for each
        [SEG]: (case index, turn, mask index))."""
        parts = self.parts
        tiles, owner = [], []
        for ci, c in enumerate(cases):
            if c.facts.get("llm_frames"):  # one tile per frame, as the engine's video mode
                tiles += [torch.from_numpy(frame_tile(PRE.grey_to_rgb(p), self.s))[None]
                          for p in c.pictures]
                owner += [ci] * c.pictures.shape[0]
            else:
                tiles.append(vision_tiles(PRE.grey_to_rgb(c.pictures[0]), self.s))
                owner += [ci] * tiles[-1].shape[0]
        tokens_all = parts["vision_encoder"](torch.cat(tiles))  # [n, tpt, H]
        owner_t = torch.tensor(owner)
        rows, targets, segs = [], [], []
        for ci, case in enumerate(cases):
            tokens_c = tokens_all[owner_t == ci]
            for ti, turn in enumerate(case.turns):
                text = P.chat_prompt(self.s.chat, P.expand_image_tokens(
                    turn.user_text, [self.s.tokens_per_tile] * tokens_c.shape[0],
                    self.s.chat.image_placeholder))
                prompt = self.tok.encode(text)
                answer = self.tok.encode(turn.answer + self.stop)
                ids = torch.tensor(prompt + answer, dtype=torch.long)
                rows.append(embed_prompt(self.model_parts, ids,
                                         tokens_c.reshape(-1, tokens_c.shape[-1]),
                                         self.context_id)[0])
                targets.append([-100] * (len(prompt) - 1) + answer + [-100])
                seg_at = [len(prompt) + i for i, a in enumerate(answer) if a == self.seg_id]
                if len(seg_at) != len(turn.masks):
                    raise ValueError(f"answer {turn.answer!r}: {len(seg_at)} [SEG] for "
                                     f"{len(turn.masks)} masks")
                segs += [(len(rows) - 1, pos, ci, ti, mi) for mi, pos in enumerate(seg_at)]
        length = max(r.shape[0] for r in rows)
        batch = torch.stack([F.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows])
        tgt = torch.tensor([t + [-100] * (length - len(t)) for t in targets])
        logits, hidden = training_forward(self.model.language_model, batch)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                             ignore_index=-100)
        if segs:
            h = torch.stack([hidden[r, pos] for r, pos, *_ in segs])
            emb = parts["grounding_projector"](h)
        else:
            emb = hidden.new_zeros(0, self.model.config.grounding.out_dim)
        return ce, emb, [(ci, ti, mi) for _r, _p, ci, ti, mi in segs]

    def step(self) -> Dict[str, float]:
        t0 = time.perf_counter()
        n = self.opts.seg_turns
        second = self.sampler.volume_case() if self.step_no % 3 == 1 else \
            self.sampler.image_case(seg_turns=n)
        cases = [self.sampler.image_case(seg_turns=n), second, self.sampler.stack_case()]
        ce, emb, where = self._language(cases)
        enc, dec, tracker = (self.parts["sam_image_encoder"], self.parts["sam_mask_decoder"],
                             self.parts["sam_tracker"])
        # the frame each case's [SEG] masks are decoded on: the first, or for a volume case
        # the frame where the target is largest
        shown = [int(np.argmax(c.turns[0].masks[0].sum((1, 2)))) if c.facts.get("llm_frames")
                 else 0 for c in cases]
        pictures = [c.pictures[f] for c, f in zip(cases, shown)] + list(cases[2].pictures[1:])
        images = torch.cat([sam_image_input(PRE.grey_to_rgb(p), self.s) for p in pictures])
        s0, s1, embed, pos = enc(images)
        # every [SEG]: decoded on its case's first frame with the language prompt
        idx = torch.tensor([ci for ci, _, _ in where])
        masks, iou, obj, mtok = dec(tracker.no_memory(embed[idx]), s0[idx], s1[idx], emb)
        target = torch.stack([self._target(cases[ci].turns[ti].masks[mi][shown[ci]])
                              for ci, ti, mi in where])
        losses = mask_losses(masks, iou, obj, target, self.opts)
        named = [(i, self.target_names.index(cases[ci].turns[ti].target))
                 for i, (ci, ti, _) in enumerate(where)
                 if cases[ci].turns[ti].target in self.target_names]
        aux = F.cross_entropy(self.aux(emb[[i for i, _ in named]]),
                              torch.tensor([t for _, t in named])) if named else ce * 0
        # the stack: its first frame (the last [SEG]) conditions frames 1.. through memory
        k = len(where) - 1
        assert where[k][0] == 2
        stack = cases[2]
        frames = stack.pictures.shape[0]
        low, high = tracker.best_mask(masks[k:k + 1], iou[k:k + 1], obj[k:k + 1])
        mem = {0: tracker.encode_memory(embed[2:3], high, obj[k:k + 1], True)[0]}
        ptr = {0: tracker.object_pointer(mtok[k:k + 1], iou[k:k + 1], obj[k:k + 1])}
        tracked: List[int] = []
        track_losses = []
        for f in range(1, frames):
            fi = 2 + f
            sel = select_memory(f, [0], tracked, tracker.num_maskmem, 1, frames)
            m = torch.stack([mem[t] for t in sel.mem_frames])
            tpos = torch.tensor(sel.tpos_index, dtype=torch.long)
            ptrs = torch.stack([ptr[t] for t in sel.ptr_frames])
            pix = tracker.condition(embed[fi:fi + 1], pos, m, tpos, ptrs)
            fm, fiou, fobj, ftok = tracker.decode_tracked(pix, s0[fi:fi + 1], s1[fi:fi + 1])
            track_losses.append(mask_losses(fm, fiou, fobj, self._target(
                stack.turns[0].masks[0][f])[None], self.opts))
            _, fhigh = tracker.best_mask(fm, fiou, fobj)
            mem[f] = tracker.encode_memory(embed[fi:fi + 1], fhigh, fobj, False)[0]
            ptr[f] = tracker.object_pointer(ftok, fiou, fobj)
            tracked.append(f)
        track = {key: sum(d[key] for d in track_losses) / len(track_losses)
                 for key in track_losses[0]}
        total = (ce + losses["mask"] + losses["iou"] + 0.5 * losses["object"]
                 + track["mask"] + track["iou"] + 0.5 * track["object"]
                 + self.opts.target_aux * aux)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step_no)
        self.opt.zero_grad(set_to_none=True)
        self.step_no += 1
        if not torch.isfinite(total):
            parts = {"ce": ce, **{f"decode {k}": v for k, v in losses.items()},
                     **{f"track {k}": v for k, v in track.items()}}
            self.skipped.append([c.facts for c in cases] +
                                [k for k, v in parts.items() if not torch.isfinite(v)])
            return {"skipped": 1.0, "seconds": time.perf_counter() - t0}
        total.backward()
        worst = max(((float(p.grad.double().abs().max()), n)
                     for n, p in self.model.named_parameters() if p.grad is not None))
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.opts.clip)
        if not torch.isfinite(norm):
            bad = [worst]
            self.skipped.append([c.facts for c in cases] + bad[:6])
            self.opt.zero_grad(set_to_none=True)
            return {"skipped": 1.0, "seconds": time.perf_counter() - t0}
        self.opt.step()
        return {"loss": float(total), "ce": float(ce), "mask": float(losses["mask"]),
                "iou": float(losses["iou"]), "object": float(losses["object"]),
                "track": float(track["mask"]), "aux": float(aux), "seconds": time.perf_counter() - t0}


    @torch.no_grad()
    def probe(self, case: Case) -> Dict[str, float]:
        """Dice (at the low resolution) of the best candidate of each segmentation turn of a
        slice case: a check, during training, that the masks follow the prompt."""
        turns = [t for t in case.turns if t.task == "segment"]
        one = Case(case.pictures, turns, case.facts)
        _, emb, where = self._language([one])
        s0, s1, embed, _ = self.parts["sam_image_encoder"](
            sam_image_input(PRE.grey_to_rgb(case.pictures[0]), self.s))
        tracker = self.parts["sam_tracker"]
        n = len(where)
        masks, iou, obj, _ = self.parts["sam_mask_decoder"](
            tracker.no_memory(embed.expand(n, -1, -1, -1)), s0.expand(n, -1, -1, -1),
            s1.expand(n, -1, -1, -1), emb)
        out = {}
        for i, (_, ti, mi) in enumerate(where):
            pred = masks[i, int(iou[i].argmax())] > 0
            truth = self._target(turns[ti].masks[mi][0]) > 0.5
            total = int(pred.sum() + truth.sum())
            out[turns[ti].target] = 2.0 * int((pred & truth).sum()) / total if total else 1.0
        return out
