"""Training and evaluation cases drawn from the subjects: pictures, prompts, answers, masks.

A case is one axial slice (or a short stack of adjacent slices for the memory path, or a few
slices spread over the volume for the video prompt) rendered one of several ways (the stored
values, a CT window, a synthetic contrast), optionally with a synthetic lesion, flipped left to
right (the side words follow), padded or cropped, with turns: a prompt, the answer and one
ground-truth mask per [SEG] of the answer. Held-out slice ranges are never drawn for training.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from demo import slices, synth, texts
from demo.anatomy import REGION_NAMES, Subject
from unibiomed_ref import prompt as P

#: Axial slice ranges [start, end) kept out of training, per subject.
HOLDOUT: Dict[str, Tuple[Tuple[int, int], ...]] = {
    "ch2": ((50, 58), (88, 96), (120, 128)),
    "invesalius-ct": ((30, 36), (60, 66), (85, 90)),
}
GAP = 2  # slices next to a held-out range are not trained on either
MIN_AREA = 20  # pixels for a structure to count as present in a slice
# Pixels of a lesion's cut through a slice for the slice to show it (about 1 cm across at the
# scans' 1 mm): a blob's pole grazed by a slice is a few pixels that the 8 x 8 image tokens of
# the language model cannot see, and no report would be asked of it.
LESION_MIN_AREA = 80


@dataclasses.dataclass
class Turn:
    task: str
    user_text: str
    answer: str
    masks: List[np.ndarray]  # one per [SEG] in the answer, [frames, rows, cols] bool
    target: str = ""


@dataclasses.dataclass
class Case:
    """pictures [frames, rows, cols] uint8; turns; facts (subject, slices, rendering, lesion);
    labels: the mask of every structure present (and the lesion), keyed by target name, for
    the training-only losses that see every structure of a picture."""

    pictures: np.ndarray
    turns: List[Turn]
    facts: Dict[str, object]
    labels: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def slice_ranges(subject: Subject, held_out: bool) -> List[int]:
    """Axial slices with head in them: the held-out ones, or those kept for training."""
    ranges = HOLDOUT.get(subject.name, ())
    n = subject.image.shape[2]
    present = [k for k in range(n) if subject.structures["head"][:, :, k].sum() > 500]
    if held_out:
        return [k for k in present if any(a <= k < b for a, b in ranges)]
    return [k for k in present if not any(a - GAP <= k < b + GAP for a, b in ranges)]


class Sampler:
    """Draws cases from ``subjects`` over the given slices (training or held-out)."""

    def __init__(self, subjects: Sequence[Subject], chat: P.ChatSettings, held_out: bool,
                 seed: int) -> None:
        self.subjects = list(subjects)
        self.chat = chat
        self.rng = np.random.default_rng(seed)
        self.slices = {s.name: slice_ranges(s, held_out) for s in subjects}
        self.midline = {s.name: float(np.argwhere(s.structures["brain"])[:, 0].mean())
                        for s in subjects}
        self.mr_range = {s.name: slices.mr_range(s.image) for s in subjects}
        # The share of lesion cases that may be drawn on a synthetic contrast; the others are
        # rendered from the scan itself (the lesion inserted into the real scan). 1: any
        # rendering, as the shipped model was trained.
        self.synthetic_lesions = 1.0
        # The share of lesions drawn bright (hyperintense, hyperdense) when a draw does not say
        # (image_case's bright_rate); held-out draws keep 0.5.
        self.bright_lesions = 0.5

    # -- rendering -------------------------------------------------------------------------
    def _slab(self, subject: Subject, ks: Sequence[int], lesion: Optional[synth.Lesion],
              mode: str) -> np.ndarray:
        """Pictures [n, rows, cols] float 0..255 of axial slices ``ks``, rendered by ``mode``:
        'stored' (the scan's values, as the engine shows 8-bit data), 'window' (CT, brain
        window unless told), 'synth' (random contrast from the tissue labels)."""
        rng = self.rng
        k0, k1 = min(ks), max(ks) + 1
        if mode == "synth":
            labels = np.stack([slices.take(subject.tissues[:, :, k0:k1], "axial", k - k0)
                               for k in ks])
            pics = synth.synthesize(labels, rng, ct_like=subject.modality == "CT" or
                                    rng.random() < 0.2)
            if lesion is not None:
                shape = subject.image.shape[:2] + (k1 - k0,)
                shifted = _in_slab(lesion, k0, shape)
                inside = synth.lesion_volume_mask(shape, shifted)
                texture = synth.lesion_volume_texture(shape, shifted)
                space = subject.lesion_space[:, :, k0:k1]
                for n, k in enumerate(ks):  # each picture against its own parenchyma
                    cut = slices.take(inside, "axial", k - k0)
                    if cut.any():
                        ref = synth.parenchyma_levels(
                            pics[n][slices.take(space, "axial", k - k0)])
                        one = synth.Lesion(cut[:, :, None], (0, 0, 0),
                                           slices.take(texture, "axial", k - k0)[:, :, None],
                                           lesion.bright)
                        plane = pics[n][:, :, None].copy()
                        synth.paint_lesion(plane, one, rng, "MR", ref)
                        pics[n] = np.clip(plane[:, :, 0], 0, 255)
            return pics
        slab = subject.image[:, :, k0:k1].copy()
        if lesion is not None:
            ref = synth.parenchyma_levels(slab[subject.lesion_space[:, :, k0:k1]]) \
                if subject.modality == "MR" else None
            synth.paint_lesion(slab, _in_slab(lesion, k0, slab.shape), rng, subject.modality,
                               ref)
        pics = np.stack([slices.take(slab, "axial", k - k0) for k in ks]).astype(np.float32)
        if subject.modality == "CT":
            names = list(slices.CT_WINDOWS)
            name = "brain" if mode == "window" or rng.random() < 0.6 else \
                names[int(rng.integers(len(names)))]
            lo, hi = slices.CT_WINDOWS[name]
            return np.clip((pics - lo) / (hi - lo) * 255.0, 0, 255)
        if mode == "percentile":
            lo, hi = self.mr_range[subject.name]
            return np.clip((pics - lo) / (hi - lo) * 255.0, 0, 255)
        return np.clip(pics, 0, 255)

    def _lesion(self, subject: Subject, k: int,
                bright_rate: Optional[float] = None) -> Optional[synth.Lesion]:
        space = subject.lesion_space[:, :, k]
        where = np.argwhere(space)
        if len(where) == 0:
            return None
        i, j = where[int(self.rng.integers(len(where)))]
        kc = int(np.clip(k + self.rng.integers(-2, 3), 0, subject.image.shape[2] - 1))
        return synth.make_lesion(self.rng, (int(i), int(j), kc), subject.spacing,
                                 subject.lesion_space,
                                 self.bright_lesions if bright_rate is None else bright_rate)

    def _structure(self, subject: Subject, name: str, ks: Sequence[int]) -> np.ndarray:
        k0, k1 = min(ks), max(ks) + 1
        m = subject.structures[name][:, :, k0:k1]
        return np.stack([slices.take(m, "axial", k - k0) for k in ks])

    def _lesion_facts(self, subject: Subject, lesion: synth.Lesion, k: int) -> Optional[dict]:
        cut = synth.lesion_volume_mask(subject.image.shape[:2] + (1,),
                                       _in_slab(lesion, k, subject.image.shape[:2] + (1,)))
        if cut.sum() < LESION_MIN_AREA:
            return None
        regions = subject.regions[:, :, k][cut[:, :, 0]]
        regions = regions[regions > 0]
        if len(regions) == 0:
            return None
        region = int(np.bincount(regions).argmax())
        name = REGION_NAMES[region] if subject.modality == "MR" else "cerebral hemisphere"
        i_centre = float(np.argwhere(cut[:, :, 0])[:, 0].mean())
        side = "left" if i_centre < self.midline[subject.name] else "right"
        return {"side": side, "region": name, "bright": lesion.bright, "cut": cut}

    # -- cases -----------------------------------------------------------------------------
    def _subject(self) -> Subject:
        """The MR template 70% of the time, else the CT."""
        if self.rng.random() < 0.7 or len(self.subjects) == 1:
            return self.subjects[0]
        return self.subjects[1]

    def pick(self) -> Tuple[Subject, int]:
        subject = self._subject()
        ks = self.slices[subject.name]
        return subject, ks[int(self.rng.integers(len(ks)))]

    def render_mode(self, subject: Subject) -> str:
        r = self.rng.random()
        if subject.modality == "CT":
            return "window" if r < 0.6 else "synth"
        return "stored" if r < 0.35 else ("percentile" if r < 0.45 else "synth")

    def real_mode(self, subject: Subject) -> str:
        """A rendering of the scan's own values: a CT window, or the MR's stored values or
        percentile range (in the proportions of ``render_mode``)."""
        if subject.modality == "CT":
            return "window"
        return "stored" if self.rng.random() < 0.35 / 0.45 else "percentile"

    def image_case(self, subject: Optional[Subject] = None, k: Optional[int] = None,
                   lesion_rate: float = 0.6, mode: Optional[str] = None,
                   seg_turns: int = 2, text_turns: int = 1,
                   bright_rate: Optional[float] = None) -> Case:
        """One slice with ``seg_turns`` segmentation turns (distinct targets, so that one step
        contrasts several targets on the same picture) and one report, diagnose or VQA turn (or
        ``text_turns`` of them, up to 3, the report always among them). A lesion, if drawn, is
        bright with ``bright_rate`` (the sampler's ``bright_lesions`` unless given)."""
        rng = self.rng
        if subject is None or k is None:
            subject, k = self.pick()
        mode = mode or self.render_mode(subject)
        lesion, facts = None, None
        if rng.random() < lesion_rate:
            for _ in range(5):
                lesion = self._lesion(subject, k, bright_rate)
                facts = self._lesion_facts(subject, lesion, k) if lesion else None
                if facts:
                    break
            if facts is None:
                lesion = None
        if facts is not None and mode == "synth" and self.synthetic_lesions < 1.0 and \
                rng.random() >= self.synthetic_lesions:
            mode = self.real_mode(subject)
        pics = self._slab(subject, [k], lesion, mode)
        targets = texts.CT_TARGETS if subject.modality == "CT" else texts.MR_TARGETS
        masks = {t: self._structure(subject, t, [k]) for t in targets}
        if facts is not None:
            masks["lesion"] = slices.take(facts["cut"], "axial", 0)[None]
        present = [t for t, m in masks.items() if m.sum() >= MIN_AREA]
        absent = [t for t in targets if t not in present]
        turns: List[Turn] = []
        order = [present[int(i)] for i in rng.permutation(len(present))]
        for n in range(seg_turns):
            if absent and rng.random() < 0.1:
                t = absent[int(rng.integers(len(absent)))]
            else:
                t = order[n % len(order)]
            name = "the lesion" if t == "lesion" else texts.target_text(t, rng)
            turns.append(Turn("segment", texts.user_text(self.chat, "segment", name),
                              texts.SEGMENT_ANSWER, [masks[t]], t))
        tasks = ("report", "diagnose", "vqa")
        if text_turns == 1:
            picked = [tasks[int(rng.integers(3))]]
        else:  # distinct tasks, the report always among them
            picked = ["report"] + [tasks[1 + int(i)] for i in rng.permutation(2)]
            picked = picked[:text_turns]
        for task in picked:
            turns.append(self._text_turn(task, subject, masks, facts))
        case = Case(pics.astype(np.uint8), turns,
                    {"subject": subject.name, "slices": [k], "mode": mode,
                     "lesion": None if facts is None else
                     {key: v for key, v in facts.items() if key != "cut"},
                     "absent": [t for t in targets if not masks[t].any()]},
                    {t: masks[t] for t in present})
        return self._geometry(case)

    def _text_turn(self, task: str, subject: Subject, masks: Dict[str, np.ndarray],
                   facts: Optional[dict]) -> Turn:
        """A report, diagnose or VQA turn on a slice with ``masks`` and lesion ``facts``."""
        rng = self.rng
        lesion_mask = masks.get("lesion")
        if task == "report":
            vent = subject.modality == "MR" and masks["lateral ventricles"].sum() >= 150
            ans = texts.report_answer(rng, subject.modality, facts, vent)
            seg_masks = [lesion_mask] if facts else ([masks["lateral ventricles"]] if vent else [])
            return Turn("report", texts.user_text(self.chat, "report"), ans, seg_masks,
                        "lesion" if facts else ("lateral ventricles" if vent else ""))
        if task == "diagnose":
            ans = texts.diagnose_answer(rng, subject.modality, facts)
            return Turn("diagnose", texts.user_text(self.chat, "diagnose"), ans,
                        [lesion_mask] if facts else [], "lesion" if facts else "")
        q, ans = texts.vqa(rng, subject.modality, facts)
        return Turn("vqa", texts.user_text(self.chat, "vqa", question=q), ans,
                    [lesion_mask] * ans.count(P.SEG),
                    "lesion" if facts and P.SEG in ans else "")

    def stack_case(self, frames: int = 3, max_step: int = 3) -> Case:
        """Adjacent slices (step 1 to ``max_step``, upwards or downwards) with one target
        present on the first: the first is the conditioning frame, the others are tracked
        through memory (the target may end inside the stack)."""
        rng = self.rng
        while True:
            subject, k = self.pick()
            step = int(rng.integers(1, max_step + 1)) * (1 if rng.random() < 0.5 else -1)
            ks = [k + step * f for f in range(frames)]
            allowed = set(self.slices[subject.name])
            if all(x in allowed for x in ks):
                break
        targets = texts.CT_TARGETS if subject.modality == "CT" else texts.MR_TARGETS
        present = [t for t in targets
                   if subject.structures[t][:, :, ks[0]].sum() >= MIN_AREA * 3]
        t = present[int(rng.integers(len(present)))]
        pics = self._slab(subject, ks, None, self.render_mode(subject))
        mask = self._structure(subject, t, ks)
        turn = Turn("segment", texts.user_text(self.chat, "segment", texts.target_text(t, rng)),
                    texts.SEGMENT_ANSWER, [mask], t)
        return self._geometry(Case(pics.astype(np.uint8), [turn],
                                   {"subject": subject.name, "slices": ks}))

    def volume_case(self, frames: int = 5) -> Case:
        """Slices spread over the head (as the engine's spread rule picks the frames the
        language model sees), one segmentation turn whose mask is given on every frame."""
        rng = self.rng
        subject = self._subject()
        ks_all = self.slices[subject.name]
        edges = np.linspace(0, len(ks_all), frames + 1)
        picks = [ks_all[int(min(len(ks_all) - 1, rng.uniform(a, b)))]
                 for a, b in zip(edges[:-1], edges[1:])]
        targets = texts.CT_TARGETS if subject.modality == "CT" else texts.MR_TARGETS
        present = [t for t in targets
                   if max(subject.structures[t][:, :, k].sum() for k in picks) >= MIN_AREA * 3]
        t = present[int(rng.integers(len(present)))]
        pics = np.concatenate([self._slab(subject, [k], None, mode)
                               for k, mode in zip(picks, [self.render_mode(subject)] * frames)])
        mask = np.concatenate([self._structure(subject, t, [k]) for k in picks])
        turn = Turn("segment", texts.user_text(self.chat, "segment", texts.target_text(t, rng)),
                    texts.SEGMENT_ANSWER, [mask], t)
        return self._geometry(Case(pics.astype(np.uint8), [turn],
                                   {"subject": subject.name, "slices": picks,
                                    "llm_frames": frames}))

    def _geometry(self, case: Case) -> Case:
        """Random left-right flip (side words swapped), padding or cropping."""
        rng = self.rng
        pics = case.pictures
        if rng.random() < 0.5:
            pics = pics[:, :, ::-1]
            case.labels = {_swap_sides(t): m[:, :, ::-1] for t, m in case.labels.items()}
            for turn in case.turns:
                turn.masks = [m[:, :, ::-1] for m in turn.masks]
                turn.user_text, turn.answer = _swap_sides(turn.user_text), _swap_sides(turn.answer)
                turn.target = _swap_sides(turn.target)
            if case.facts.get("lesion"):
                case.facts["lesion"]["side"] = _swap_sides(case.facts["lesion"]["side"])
            if "absent" in case.facts:
                case.facts["absent"] = [_swap_sides(t) for t in case.facts["absent"]]
        r = rng.random()
        rows, cols = pics.shape[1:]
        if r < 0.3:
            pad = [(0, 0)] + [tuple(int(x) for x in rng.integers(0, n // 4 + 1, 2))
                              for n in (rows, cols)]
            pics = np.pad(pics, pad)
            case.labels = {t: np.pad(m, pad) for t, m in case.labels.items()}
            for turn in case.turns:
                turn.masks = [np.pad(m, pad) for m in turn.masks]
        elif r < 0.5:
            cut = [tuple(int(x) for x in rng.integers(0, n // 12 + 1, 2)) for n in (rows, cols)]
            sl = (slice(None), slice(cut[0][0], rows - cut[0][1]), slice(cut[1][0], cols - cut[1][1]))
            pics = pics[sl]
            case.labels = {t: m[sl] for t, m in case.labels.items()}
            for turn in case.turns:
                turn.masks = [m[sl] for m in turn.masks]
        case.pictures = np.ascontiguousarray(pics)
        case.labels = {t: np.ascontiguousarray(m) for t, m in case.labels.items()}
        for turn in case.turns:
            turn.masks = [np.ascontiguousarray(m) for m in turn.masks]
        return case


def _swap_sides(text: str) -> str:
    return text.replace("left", "\0").replace("right", "left").replace("\0", "right")


def _in_slab(lesion: synth.Lesion, k0: int, shape: Tuple[int, ...]) -> synth.Lesion:
    """The lesion in the coordinates of a slab of ``shape`` starting at axial slice k0."""
    i, j, k = lesion.corner
    return _clip_lesion(dataclasses.replace(lesion, corner=(i, j, k - k0)), shape)


def _clip_lesion(lesion: synth.Lesion, shape: Tuple[int, ...]) -> synth.Lesion:
    """The part of a lesion box inside a volume of ``shape`` (corner may be negative)."""
    lo = np.asarray(lesion.corner)
    hi = lo + np.asarray(lesion.mask.shape)
    a = np.maximum(-lo, 0)
    b = np.asarray(lesion.mask.shape) - np.maximum(hi - np.asarray(shape), 0)
    sl = tuple(slice(int(x), int(y)) for x, y in zip(a, b))
    corner = tuple(int(x) for x in np.maximum(lo, 0))
    return dataclasses.replace(lesion, mask=lesion.mask[sl], texture=lesion.texture[sl],
                               corner=corner)
