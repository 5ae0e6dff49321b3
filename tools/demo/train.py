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

import math
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from demo import texts
from demo.lesion_attention import attention_loss, forward_with_head
from demo.samples import Case, Sampler
from demo.token_labels import LOCATIONS, cell_shares, location_index, token_positions
from demo.train_options import TrainOptions
from demo.vision_terms import lesion_patch_loss, patches_and_tokens
from unibiomed_ref import prompt as P
from unibiomed_ref.model import UniBiomedModel, model_parts
from unibiomed_ref.pipeline import PRE, embed_prompt, sam_image_input, vision_tiles
from unibiomed_ref.pipeline_video import frame_tile
from unibiomed_ref.sam2.video import select_memory
from unibiomed_ref.settings import InferenceSettings
from unibiomed_ref.tiny import training_forward


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
        self.name_index = {n: i for i, n in enumerate(self.target_names)}
        gen = torch.Generator().manual_seed(opts.seed)
        self.codes = torch.nn.Parameter(
            opts.code_scale * torch.randn(len(self.target_names),
                                          model.config.grounding.out_dim, generator=gen))
        self.token_head = torch.nn.Linear(model.config.language.hidden_size,
                                          len(self.target_names))
        self.location_head = torch.nn.Linear(model.config.language.hidden_size,
                                             len(LOCATIONS))
        self.location_query = torch.nn.Linear(model.config.language.hidden_size, 1)
        self.patch_head = torch.nn.Linear(model.config.vision.hidden_size, 1)
        self.position_head = torch.nn.Linear(model.config.language.hidden_size, 2)
        # the training-only heads (not exported), trained with the model
        self.heads = torch.nn.ModuleList([self.token_head, self.location_head,
                                          self.location_query, self.patch_head,
                                          self.position_head])
        params = [p for p in model.parameters() if p.requires_grad] + list(self.heads.parameters())
        decay = [p for p in params if p.ndim >= 2]
        other = [p for p in params if p.ndim < 2] + [self.codes]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": opts.weight_decay},
                                      {"params": other, "weight_decay": 0.0}], lr=opts.lr)
        self.step_no = 0
        self.skipped: List[object] = []  # facts of the cases of steps with a non-finite loss
        self.low = settings.sam_image_size // 4
        # the reading phase's pool (reading_pool > 0): its slices and their image tokens
        self.reading_slices: Optional[Tuple[List[Case], torch.Tensor]] = None

    def lr_at(self, step: int) -> float:
        o = self.opts
        if step < o.warmup:
            return o.lr * (step + 1) / o.warmup
        q = (step - o.warmup) / max(1, o.steps - o.warmup)
        return o.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(q, 1.0))))

    def _target(self, mask: np.ndarray) -> torch.Tensor:
        m = torch.from_numpy(mask.astype(np.float32))[None, None]
        return F.interpolate(m, size=(self.low, self.low), mode="area")[0, 0]

    def training_state(self) -> Dict[str, object]:
        """The training-only parameters (codes, token, location and patch heads), for continuing
        from a checkpoint."""
        return {"codes": self.codes.detach().clone(), "token_head": self.token_head.state_dict(),
                "location_head": self.location_head.state_dict(),
                "location_query": self.location_query.state_dict(),
                "patch_head": self.patch_head.state_dict(),
                "position_head": self.position_head.state_dict()}

    def load_training_state(self, state: Dict[str, object]) -> None:
        with torch.no_grad():
            self.codes.copy_(state["codes"])
        self.token_head.load_state_dict(state["token_head"])
        # checkpoints before the location term (or its attention form) have none
        if "location_head" in state and "location_query" in state:
            self.location_head.load_state_dict(state["location_head"])
            self.location_query.load_state_dict(state["location_query"])
        if "patch_head" in state:
            self.patch_head.load_state_dict(state["patch_head"])
        if "position_head" in state:
            self.position_head.load_state_dict(state["position_head"])

    def _code_losses(self, rows: Sequence[Tuple[int, Case]], embed: torch.Tensor,
                     s0: torch.Tensor, s1: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Mask losses of the codes of up to ``codes_per_picture`` labelled structures (the
        lesion always among them) and of up to ``absent_per_picture`` structures not in the
        picture (an empty mask, object score 'absent') of each (row in the encoder batch,
        slice case)."""
        cidx, cnames, ctarget = [], [], []
        rng = self.sampler.rng
        for row, case in rows:
            names = sorted(case.labels)
            names = [names[int(i)] for i in rng.permutation(len(names))]
            names = names[:self.opts.codes_per_picture]
            if "lesion" in case.labels and "lesion" not in names:
                names[-1] = "lesion"
            for name in names:
                cidx.append(row)
                cnames.append(self.name_index[name])
                ctarget.append(self._target(case.labels[name][0]))
            absent = list(case.facts.get("absent", []))
            for i in rng.permutation(len(absent))[:self.opts.absent_per_picture]:
                cidx.append(row)
                cnames.append(self.name_index[absent[int(i)]])
                ctarget.append(torch.zeros(self.low, self.low))
        ci_t = torch.tensor(cidx)
        tracker = self.parts["sam_tracker"]
        masks, iou, obj, _ = self.parts["sam_mask_decoder"](
            tracker.no_memory(embed[ci_t]), s0[ci_t], s1[ci_t], self.codes[torch.tensor(cnames)])
        return mask_losses(masks, iou, obj, torch.stack(ctarget), self.opts)

    def sam_step(self, lr: float) -> Dict[str, float]:
        """One step of the mask-decoder phase: SAM2 and the codes only, on the codes of every
        labelled structure of ``sam_pictures`` slice cases."""
        t0 = time.perf_counter()
        cases = [self.sampler.image_case(seg_turns=0) for _ in range(self.opts.sam_pictures)]
        images = torch.cat([sam_image_input(PRE.grey_to_rgb(c.pictures[0]), self.s)
                            for c in cases])
        s0, s1, embed, _ = self.parts["sam_image_encoder"](images)
        code = self._code_losses(list(enumerate(cases)), embed, s0, s1)
        total = code["mask"] + code["iou"] + 0.5 * code["object"]
        return self._apply(total, lr, t0, {"code": code["mask"], "iou": code["iou"],
                                           "object": code["object"]})

    def _apply(self, total: torch.Tensor, lr: float, t0: float,
               stats: Dict[str, torch.Tensor]) -> Dict[str, float]:
        """Backward, clip and update of a phase step (the codes and the token head included)."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(total):
            return {"skipped": 1.0, "seconds": time.perf_counter() - t0}
        total.backward()
        params = [p for p in self.model.parameters() if p.grad is not None] + \
            [p for p in [self.codes, *self.heads.parameters()] if p.grad is not None]
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(params, self.opts.clip)):
            self.opt.zero_grad(set_to_none=True)
            return {"skipped": 1.0, "seconds": time.perf_counter() - t0}
        self.opt.step()
        return {**{k: float(v) for k, v in stats.items()}, "seconds": time.perf_counter() - t0}

    def _distill(self, emb: torch.Tensor, targets: Sequence[str]) -> torch.Tensor:
        """Mean squared error of the [SEG] embeddings ``emb`` to their targets' codes (0 when
        no target has one)."""
        named = [(i, self.name_index[t]) for i, t in enumerate(targets) if t in self.name_index]
        if not named:
            return emb.new_zeros(())
        return F.mse_loss(emb[[i for i, _ in named]], self.codes[[t for _, t in named]].detach())

    def language_step(self, lr: float) -> Dict[str, float]:
        """One step of the vision-language phase: the vision encoder, projector and language
        model on the report, diagnose and VQA turns of ``language_pictures`` slices (most with
        a lesion), with the token labels and one segmentation turn each whose [SEG] embedding
        is held at its target's code (no SAM2: a step costs a fraction of a full one), and
        ``language_volumes`` video-mode cases (frames spread over a volume, one tile each, as
        the engine shows a volume) whose [SEG] embedding is held at the code too. The full
        step has one text turn per slice case, too few for the model to learn to read the
        lesion's place off the image tokens."""
        t0 = time.perf_counter()
        cases = [self.sampler.image_case(seg_turns=1, lesion_rate=self.opts.language_lesion_rate,
                                         text_turns=self.opts.language_text_turns)
                 for _ in range(self.opts.language_pictures)]
        volumes = [self.sampler.volume_case() for _ in range(self.opts.language_volumes)]
        ce, emb, where, aux = self._language(cases)
        # the volumes in a batch of their own (their rows are five tiles long: padding the
        # slices' rows to them would cost three times the step)
        _, vemb, vwhere, _ = self._language(volumes) if volumes else (None, emb[:0], [], None)
        emb = torch.cat([emb, vemb])
        targets = [cases[ci].turns[ti].target for ci, ti, _ in where] + \
            [volumes[ci].turns[ti].target for ci, ti, _ in vwhere]
        distill = self._distill(emb, targets)
        total = ce + self.opts.distill * distill + self.opts.token_labels * aux["tokens"] + \
            self.opts.lesion_attention * aux["attention"]
        stats = {"ce": ce, "distill": distill, "tokens": aux["tokens"]}
        if self.opts.lesion_attention > 0:
            stats["attention"] = aux["attention"]
        return self._apply(total, lr, t0, stats)

    def reading_step(self, lr: float) -> Dict[str, float]:
        """One step of the reading phase: the language model alone (the vision encoder and
        projector frozen, their tokens computed without gradients) on the report, diagnose and
        VQA turns of ``reading_pictures`` slices, a share ``language_lesion_rate`` with a
        lesion, and one segmentation turn each whose [SEG] embedding is held at its target's
        code. The slices are fresh each step, or with ``reading_pool`` drawn from a pool of
        that many drawn (and their tokens computed) at the first step."""
        t0 = time.perf_counter()
        o = self.opts

        def draw(n: int) -> List[Case]:
            return [self.sampler.image_case(seg_turns=1, lesion_rate=o.language_lesion_rate,
                                            text_turns=o.language_text_turns) for _ in range(n)]

        if not o.reading_pool:
            cases = draw(o.reading_pictures)
            tokens = self.image_tokens(cases, grad=False)
        else:
            if self.reading_slices is None:
                pool = draw(o.reading_pool)
                encoded = torch.cat([self.image_tokens(pool[i:i + 50], False)[0]
                                     for i in range(0, len(pool), 50)])
                if encoded.shape[0] != len(pool):
                    raise ValueError("reading pool: one tile a slice expected")
                self.reading_slices = (pool, encoded)
            pool, pool_tokens = self.reading_slices
            pick = self.sampler.rng.choice(len(pool), o.reading_pictures, replace=False)
            cases = [pool[i] for i in pick]
            tokens = (pool_tokens[torch.from_numpy(pick)], torch.arange(len(cases)))
        ce, emb, where, _ = self._language(cases, train_vision=False, tokens=tokens)
        distill = self._distill(emb, [cases[ci].turns[ti].target for ci, ti, _ in where])
        return self._apply(ce + o.distill * distill, lr, t0, {"ce": ce, "distill": distill})

    def vision_step(self, lr: float) -> Dict[str, float]:
        """One step of the vision phase: the vision encoder, projector and token head on the
        token labels of ``vision_pictures`` slices, the lesion-touching term weighed by
        ``vision_lesion_touch``, a share ``vision_dark_lesions`` of the lesions dark."""
        t0 = time.perf_counter()
        cases = [self.sampler.image_case(seg_turns=0, lesion_rate=self.opts.vision_lesion_rate,
                                         bright_rate=1.0 - self.opts.vision_dark_lesions)
                 for _ in range(self.opts.vision_pictures)]
        tiles = torch.cat([vision_tiles(PRE.grey_to_rgb(c.pictures[0]), self.s) for c in cases])
        if tiles.shape[0] != len(cases):
            raise ValueError(f"vision phase: {tiles.shape[0]} tiles for {len(cases)} slices "
                             "(the demo model sees one tile a slice)")
        patches, tokens, side = patches_and_tokens(self.parts["vision_encoder"], tiles)
        losses = [self._token_loss(tokens[i], c, self.opts.vision_lesion_touch)
                  for i, c in enumerate(cases)]
        loss = torch.stack([a for a, _ in losses]).mean()
        touch = torch.stack([b for _, b in losses]).mean()
        stats = {"tokens": loss, "touch": touch}
        if self.opts.lesion_patches > 0:
            rows = [i for i, c in enumerate(cases) if "lesion" in c.labels]
            if rows:
                shares = torch.stack([cell_shares(cases[i].labels["lesion"][0], side)
                                      for i in rows])
                stats["patches"] = lesion_patch_loss(self.patch_head(patches[rows])[..., 0],
                                                     shares)
                loss = loss + self.opts.lesion_patches * stats["patches"]
        return self._apply(loss, lr, t0, stats)

    @torch.no_grad()
    def estimate_codes(self, min_count: int = 3, max_cases: int = 60) -> Dict[str, int]:
        """Set each target's code to the mean [SEG] embedding the model gives for it on
        training slices: the codes of a model continued from an exported bundle (which keeps
        no codes), so that the distillation holds the [SEG] embeddings where SAM2 reads them.
        Returns the number of embeddings behind each code."""
        sums = torch.zeros_like(self.codes)
        counts = [0] * len(self.target_names)
        for _ in range(max_cases):
            if min(counts) >= min_count:
                break
            case = self.sampler.image_case(seg_turns=self.opts.seg_turns, lesion_rate=0.8)
            _, emb, where, _ = self._language([case])
            for row, (ci, ti, _) in enumerate(where):
                name = case.turns[ti].target
                if name in self.name_index:
                    sums[self.name_index[name]] += emb[row]
                    counts[self.name_index[name]] += 1
        for i, n in enumerate(counts):
            if n:
                self.codes[i] = sums[i] / n
        return dict(zip(self.target_names, counts))

    def track_step(self, lr: float) -> Dict[str, float]:
        """One step of the tracking phase: SAM2 alone on a stack of ``track_frames`` slices,
        the first decoded from its target's code, the others tracked through memory as the
        engine tracks a volume. Stacks often run past the end of the structure, so that the
        object score learns to say 'absent' and the memory to let go."""
        t0 = time.perf_counter()
        case = self.sampler.stack_case(frames=self.opts.track_frames, max_step=4)
        turn = case.turns[0]
        images = torch.cat([sam_image_input(PRE.grey_to_rgb(p), self.s) for p in case.pictures])
        enc, dec, tracker = (self.parts["sam_image_encoder"], self.parts["sam_mask_decoder"],
                             self.parts["sam_tracker"])
        s0, s1, embed, pos = enc(images)
        code = self.codes[self.name_index[turn.target]][None]
        masks, iou, obj, mtok = dec(tracker.no_memory(embed[:1]), s0[:1], s1[:1], code)
        first = mask_losses(masks, iou, obj, self._target(turn.masks[0][0])[None], self.opts)
        track = self._track(embed, s0, s1, pos, 0, masks, iou, obj, mtok, turn.masks[0])
        total = (first["mask"] + first["iou"] + 0.5 * first["object"]
                 + track["mask"] + track["iou"] + 0.5 * track["object"])
        return self._apply(total, lr, t0, {"code": first["mask"], "track": track["mask"],
                                           "object": track["object"]})

    def _track(self, embed: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor,
               pos: torch.Tensor, first: int, masks: torch.Tensor, iou: torch.Tensor,
               obj: torch.Tensor, mtok: torch.Tensor, truth: np.ndarray
               ) -> Dict[str, torch.Tensor]:
        """Mask losses of frames 1.. of a stack whose frame 0 (row ``first`` of the encoder
        batch, decoded into masks/iou/obj/mtok [1,...]) conditions them through memory."""
        tracker = self.parts["sam_tracker"]
        frames = truth.shape[0]
        low, high = tracker.best_mask(masks, iou, obj)
        mem = {0: tracker.encode_memory(embed[first:first + 1], high, obj, True)[0]}
        ptr = {0: tracker.object_pointer(mtok, iou, obj)}
        tracked: List[int] = []
        losses = []
        for f in range(1, frames):
            fi = first + f
            sel = select_memory(f, [0], tracked, tracker.num_maskmem, 1, frames)
            m = torch.stack([mem[t] for t in sel.mem_frames])
            tpos = torch.tensor(sel.tpos_index, dtype=torch.long)
            ptrs = torch.stack([ptr[t] for t in sel.ptr_frames])
            pix = tracker.condition(embed[fi:fi + 1], pos, m, tpos, ptrs)
            fm, fiou, fobj, ftok = tracker.decode_tracked(pix, s0[fi:fi + 1], s1[fi:fi + 1])
            losses.append(mask_losses(fm, fiou, fobj, self._target(truth[f])[None], self.opts))
            _, fhigh = tracker.best_mask(fm, fiou, fobj)
            mem[f] = tracker.encode_memory(embed[fi:fi + 1], fhigh, fobj, False)[0]
            ptr[f] = tracker.object_pointer(ftok, fiou, fobj)
            tracked.append(f)
        return {key: sum(d[key] for d in losses) / len(losses) for key in losses[0]}

    def _token_loss(self, tokens: torch.Tensor, case: Case,
                    lesion_touch: float | None = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """BCE of the token head on one slice's vision tokens [T, H] against the share of each
        labelled structure in each token's cell (the tile is the whole picture, row-major)."""
        grid = int(round(math.sqrt(tokens.shape[0])))
        target = torch.zeros(tokens.shape[0], len(self.target_names))
        for name, m in case.labels.items():
            target[:, self.name_index[name]] = cell_shares(m[0], grid)
        logits = self.token_head(tokens)
        loss = F.binary_cross_entropy_with_logits(logits, target)
        # The lesion covers a few per cent of one or two cells: its soft share alone is too
        # weak a signal (the token head stayed at chance), so with lesion_touch each token must
        # also say whether it touches the lesion at all, positives weighing as much as negatives.
        # Returns (loss, the touching term alone).
        weight_touch = self.opts.lesion_touch if lesion_touch is None else lesion_touch
        li = self.name_index["lesion"]
        touched = (target[:, li] > 0).float()
        touch = loss * 0
        if weight_touch > 0:
            weight = (touched.numel() - touched.sum()) / touched.sum().clamp(min=1)
            touch = F.binary_cross_entropy_with_logits(logits[:, li], touched,
                                                       pos_weight=weight.clamp(min=1))
            loss = loss + weight_touch * touch
        if self.opts.token_position > 0:
            loss = loss + self.opts.token_position * F.mse_loss(
                self.position_head(tokens), token_positions(grid))
        if self.opts.lesion_location > 0:
            where = torch.tensor([location_index(case)])
            loss = loss + self.opts.lesion_location * F.cross_entropy(
                self.location_logits(tokens)[None], where)
        return loss, touch

    def location_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """The location head's logits [len(LOCATIONS)] on one slice's image tokens [T, H], read
        as an attention head reads them: a softmax over the tokens of a learned score picks the
        tokens, the head classifies their weighted sum. (The head on the tokens' mean, its first
        form, never left 'none': the lesion's one or two tokens are a 64th of a mean.)"""
        weights = torch.softmax(self.location_query(tokens)[:, 0], 0)
        return self.location_head(weights @ tokens)

    def image_tokens(self, cases: Sequence[Case], grad: bool = True
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The vision encoder's tokens of the cases' tiles [n, tpt, H] and each tile's case."""
        tiles, owner = [], []
        for ci, c in enumerate(cases):
            if c.facts.get("llm_frames"):  # one tile per frame, as the engine's video mode
                tiles += [torch.from_numpy(frame_tile(PRE.grey_to_rgb(p), self.s))[None]
                          for p in c.pictures]
                owner += [ci] * c.pictures.shape[0]
            else:
                tiles.append(vision_tiles(PRE.grey_to_rgb(c.pictures[0]), self.s))
                owner += [ci] * tiles[-1].shape[0]
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return self.parts["vision_encoder"](torch.cat(tiles)), torch.tensor(owner)

    def _language(self, cases: Sequence[Case], train_vision: bool = True,
                  tokens: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        """Teacher-forced answers of every turn: (CE loss, [SEG] embeddings [N,C], for each
        [SEG]: (case index, turn, mask index), token-label loss). With ``train_vision`` off
        the image tokens carry no gradient and the token labels are not asked; ``tokens``
        (as ``image_tokens`` gives them) saves computing them again."""
        parts = self.parts
        tokens_all, owner_t = tokens if tokens is not None else \
            self.image_tokens(cases, train_vision)
        rows, targets, weights, segs, token_losses = [], [], [], [], []
        looks = []  # (row, query positions, lesion share of each image token, their positions)
        for ci, case in enumerate(cases):
            tokens_c = tokens_all[owner_t == ci]
            if train_vision and case.labels and tokens_c.shape[0] == 1:
                token_losses.append(self._token_loss(tokens_c[0], case)[0])
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
                weights.append([1.0] * len(targets[-1]))
                if self.opts.lesion_attention > 0 and turn.task != "segment" and \
                        "lesion" in case.labels and tokens_c.shape[0] == 1:
                    share = cell_shares(case.labels["lesion"][0],
                                        int(round(math.sqrt(tokens_c.shape[1]))))
                    if share.sum() > 0:
                        looks.append((len(rows) - 1,
                                      range(len(prompt) - 1, len(prompt) + len(answer) - 1),
                                      share, (ids == self.context_id).nonzero()[:, 0].tolist()))
                if turn.task != "segment" and self.opts.fact_weight != 1.0:
                    # the tokens that carry the facts: the first (is there a lesion) and those
                    # after the first [SEG] (its side and region)
                    first = len(prompt) - 1
                    weights[-1][first] = self.opts.fact_weight
                    if self.seg_id in answer:
                        for i in range(answer.index(self.seg_id) + 1, len(answer)):
                            weights[-1][first + i] = self.opts.fact_weight
                seg_at = [len(prompt) + i for i, a in enumerate(answer) if a == self.seg_id]
                if len(seg_at) != len(turn.masks):
                    raise ValueError(f"answer {turn.answer!r}: {len(seg_at)} [SEG] for "
                                     f"{len(turn.masks)} masks")
                segs += [(len(rows) - 1, pos, ci, ti, mi) for mi, pos in enumerate(seg_at)]
        length = max(r.shape[0] for r in rows)
        batch = torch.stack([F.pad(r, (0, 0, 0, length - r.shape[0])) for r in rows])
        tgt = torch.tensor([t + [-100] * (length - len(t)) for t in targets])
        wts = torch.tensor([w + [0.0] * (length - len(w)) for w in weights]) * (tgt != -100)
        lm = self.model.language_model
        if self.opts.lesion_attention > 0:
            logits, hidden, probs = forward_with_head(lm, batch, self.opts.attention_layer,
                                                      self.opts.attention_head)
        else:  # the head's probabilities are not needed
            (logits, hidden), probs = training_forward(lm, batch), None
        per_token = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                    ignore_index=-100, reduction="none")
        ce = (per_token * wts.reshape(-1)).sum() / wts.sum().clamp(min=1.0)
        if segs:
            h = torch.stack([hidden[r, pos] for r, pos, *_ in segs])
            emb = parts["grounding_projector"](h)
        else:
            emb = hidden.new_zeros(0, self.model.config.grounding.out_dim)
        aux = {"tokens": torch.stack(token_losses).mean() if token_losses else ce * 0,
               "attention": attention_loss(probs, looks) if probs is not None else ce * 0}
        return ce, emb, [(ci, ti, mi) for _r, _p, ci, ti, mi in segs], aux

    def step(self) -> Dict[str, float]:
        t0 = time.perf_counter()
        n = self.opts.seg_turns
        second = self.sampler.volume_case() if self.step_no % 3 == 1 else \
            self.sampler.image_case(seg_turns=n)
        cases = [self.sampler.image_case(seg_turns=n), second, self.sampler.stack_case()]
        extra = [self.sampler.image_case(seg_turns=0) for _ in range(self.opts.extra_pictures)]
        ce, emb, where, aux = self._language(cases)
        enc, dec, tracker = (self.parts["sam_image_encoder"], self.parts["sam_mask_decoder"],
                             self.parts["sam_tracker"])
        # the frame each case's [SEG] masks are decoded on: the first, or for a volume case
        # the frame where the target is largest
        shown = [int(np.argmax(c.turns[0].masks[0].sum((1, 2)))) if c.facts.get("llm_frames")
                 else 0 for c in cases]
        pictures = [c.pictures[f] for c, f in zip(cases, shown)] + list(cases[2].pictures[1:]) + \
            [c.pictures[0] for c in extra]
        images = torch.cat([sam_image_input(PRE.grey_to_rgb(p), self.s) for p in pictures])
        s0, s1, embed, pos = enc(images)
        # every [SEG]: decoded on its case's first frame with the language prompt
        idx = torch.tensor([ci for ci, _, _ in where])
        masks, iou, obj, mtok = dec(tracker.no_memory(embed[idx]), s0[idx], s1[idx], emb)
        target = torch.stack([self._target(cases[ci].turns[ti].masks[mi][shown[ci]])
                              for ci, ti, mi in where])
        losses = mask_losses(masks, iou, obj, target, self.opts)
        # the codes of every labelled structure of the slice pictures
        code_rows = [(0, cases[0])] + ([(1, cases[1])] if not cases[1].facts.get("llm_frames")
                                       else []) + \
            [(len(pictures) - len(extra) + i, c) for i, c in enumerate(extra)]
        code = self._code_losses(code_rows, embed, s0, s1)
        distill = self._distill(emb, [cases[ci].turns[ti].target for ci, ti, _ in where])
        # the stack: its first frame (the last [SEG]) conditions frames 1.. through memory
        k = len(where) - 1
        assert where[k][0] == 2
        stack = cases[2]
        track = self._track(embed, s0, s1, pos, 2, masks[k:k + 1], iou[k:k + 1],
                            obj[k:k + 1], mtok[k:k + 1], stack.turns[0].masks[0])
        total = (ce + losses["mask"] + losses["iou"] + 0.5 * losses["object"]
                 + track["mask"] + track["iou"] + 0.5 * track["object"]
                 + self.opts.code_weight * (code["mask"] + code["iou"] + 0.5 * code["object"])
                 + self.opts.distill * distill + self.opts.token_labels * aux["tokens"]
                 + self.opts.lesion_attention * aux["attention"])
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
                "track": float(track["mask"]), "code": float(code["mask"]),
                "distill": float(distill), "tokens": float(aux["tokens"]),
                "seconds": time.perf_counter() - t0}
