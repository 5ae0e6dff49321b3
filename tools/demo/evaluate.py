"""Held-out evaluation of a bundle: the figures of the model card.

Everything runs on the exported TorchScript files through the reference pipeline (the C++
engine reproduces it; its parity tests say so), or, for whole volumes, through the engine's
binary itself. Held out: the axial slice ranges of ``samples.HOLDOUT`` (never drawn for
training), a synthetic contrast drawn with a seed training never used, the ITK slices of
another scan (proton density and T1, with ITK's ventricle model) and synthetic lesions placed
on held-out slices.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from demo import slices, texts
from demo.anatomy import Subject
from demo.samples import MIN_AREA, Sampler
from unibiomed_ref.bundle import load_bundle
from unibiomed_ref.pipeline import PRE, interpret_image

EVAL_SEED = 99


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    s = int(pred.sum()) + int(gt.sum())
    return 1.0 if s == 0 else 2.0 * int((pred & gt).sum()) / s


class Scorer:
    """Per structure: pooled Dice (all held-out pixels together) and the mean per-slice Dice."""

    def __init__(self) -> None:
        self.acc: Dict[str, List[float]] = {}
        self.per: Dict[str, List[float]] = {}
        self.empty = 0
        self.runs = 0

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        a = self.acc.setdefault(name, [0.0, 0.0])
        a[0] += 2.0 * (pred & gt).sum()
        a[1] += pred.sum() + gt.sum()
        self.per.setdefault(name, []).append(dice(pred, gt))
        self.runs += 1
        self.empty += int(pred.sum() == 0)

    def table(self) -> Dict[str, Dict[str, float]]:
        return {n: {"dice": a[0] / max(a[1], 1.0), "mean_slice_dice": float(np.mean(self.per[n])),
                    "slices": len(self.per[n])} for n, a in sorted(self.acc.items())}


def _rgb(picture: np.ndarray) -> np.ndarray:
    return PRE.grey_to_rgb(picture) if picture.ndim == 2 else picture


class Evaluator:
    def __init__(self, bundle: str, subjects: Sequence[Subject], log=print) -> None:
        self.parts, self.settings, self.tok, self.manifest = load_bundle(
            bundle, compute_dtype=torch.float32)
        self.subjects = {s.name: s for s in subjects}
        self.chat = self.settings.chat
        self.log = log

    def segment(self, picture: np.ndarray, target: str) -> np.ndarray:
        r = interpret_image(self.parts, self.tok, self.settings, _rgb(picture), "segment", target)
        if r.masks.shape[0] == 0:
            return np.zeros(picture.shape[:2], bool)
        return r.masks[0]

    def held_out_slices(self, synthetic: bool) -> Scorer:
        """Every structure present on every held-out slice, the scan rendered as the engine
        shows it (stored 8-bit MR values, CT brain window) or in a held-out synthetic contrast."""
        scorer = Scorer()
        sampler = Sampler(list(self.subjects.values()), self.chat, True, EVAL_SEED)
        for subject in self.subjects.values():
            targets = texts.CT_TARGETS if subject.modality == "CT" else texts.MR_TARGETS
            for k in sampler.slices[subject.name]:
                mode = "synth" if synthetic else ("window" if subject.modality == "CT"
                                                  else "stored")
                pic = sampler._slab(subject, [k], None, mode)[0].astype(np.uint8)
                for t in targets:
                    gt = slices.take(subject.structures[t], "axial", k)
                    if gt.sum() < MIN_AREA:
                        continue
                    scorer.add(t, self.segment(pic, t), gt)
        return scorer

    def unseen_subject(self, data_dir: str) -> Dict[str, float]:
        """ITK's proton-density and T1 slices of another scan; ground truth: ITK's ventricle
        model, which outlines the ventricle on the image's left (the subject's right)."""
        itk = os.path.join(data_dir, "itk")
        gt = np.asarray(Image.open(os.path.join(itk, "VentricleModel.png"))) > 127
        out = {}
        for name in ("BrainProtonDensitySlice.png", "BrainT1Slice.png"):
            pic = np.asarray(Image.open(os.path.join(itk, name)).convert("RGB"))
            pred = self.segment(pic, "right lateral ventricle")
            out[name] = dice(pred, gt)
        return out

    def lesions(self, cases: int, synthetic: bool = False) -> Dict[str, object]:
        """Reports on held-out slices with synthetic lesions inserted into the scans as they
        are stored (MR) or windowed (CT), as the issue's bar counts them; or, ``synthetic``,
        painted onto synthetic contrasts of them."""
        sampler = Sampler(list(self.subjects.values()), self.chat, True,
                          EVAL_SEED + (2 if synthetic else 1))
        if synthetic:
            return lesion_reports(self.parts, self.tok, self.settings, sampler, cases, "synth")
        sampler.synthetic_lesions = 0.0
        return lesion_reports(self.parts, self.tok, self.settings, sampler, cases)


def report_row(parts, tok, settings, case) -> Dict[str, object]:
    """The report of one held-out slice case and what it gets right: a lesion's side and
    region named (and the other side not), or no lesion claimed on a normal slice."""
    r = interpret_image(parts, tok, settings, _rgb(case.pictures[0]), "report")
    text = r.generation.text
    facts = case.facts["lesion"]
    row: Dict[str, object] = {"subject": case.facts["subject"], "slice": case.facts["slices"][0],
                              "answer": text}
    if facts is None:
        row.update(truth="no lesion", correct=not claims_lesion(text))
        return row
    place = f"{facts['side']} {facts['region']}"
    other = ("right" if facts["side"] == "left" else "left") + " "
    row.update(truth=place, correct=place in text and other not in text,
               side=f"{facts['side']} " in text and other not in text)
    gt = next((t.masks[0][0] for t in case.turns if t.target == "lesion"), None)
    if gt is not None and r.masks.shape[0]:
        row["dice"] = dice(r.masks[0], gt)
    return row


def claims_lesion(text: str) -> bool:
    """Whether a report says there is a lesion (the negative forms start 'No')."""
    return "lesion" in text and not text.startswith("No")


def lesion_reports(parts, tok, settings, sampler: Sampler, cases: int,
                   mode: Optional[str] = None) -> Dict[str, object]:
    """Synthetic lesions on held-out slices (rendered by ``mode``, or as the sampler draws):
    does the report name the right side and region, how well does its mask cover the lesion;
    and on half as many held-out slices without a lesion, how often does the report claim one."""
    rows = []
    for _ in range(cases):
        case = sampler.image_case(lesion_rate=1.0, mode=mode)
        if case.facts["lesion"] is not None:
            rows.append(report_row(parts, tok, settings, case))
    normal = [report_row(parts, tok, settings, sampler.image_case(lesion_rate=0.0, mode=mode))
              for _ in range(cases // 2)]
    n = len(rows)
    dices = [r["dice"] for r in rows if "dice" in r]
    return {"cases": n, "location_rate": sum(r["correct"] for r in rows) / max(n, 1),
            "side_rate": sum(r["side"] for r in rows) / max(n, 1),
            "lesion_dice": float(np.mean(dices)) if dices else 0.0,
            "normal_cases": len(normal),
            "false_positive_rate": sum(not r["correct"] for r in normal) / max(len(normal), 1),
            "rows": rows + normal}


def volume_runs(engine: str, bundle: str, data_dir: str, subjects: Dict[str, Subject],
                rules: Sequence[Tuple[str, str]] = (("spread", "seen"), ("release", "seen"),
                                                    ("spread", "every"))
                ) -> List[Dict[str, object]]:
    """Whole volumes through the engine binary, per (frame rule, prompted frames): 3-D Dice of
    the mask it writes on the input grid against the ground truth."""
    jobs = [("ch2", os.path.join(data_dir, "mricron", "ch2.nii.gz"), "lateral ventricles"),
            ("ch2", os.path.join(data_dir, "mricron", "ch2.nii.gz"), "brain"),
            ("invesalius-ct", os.path.join(data_dir, "invesalius", "ct.mhd"), "skull"),
            ("invesalius-ct", os.path.join(data_dir, "invesalius", "ct.mhd"), "head")]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for subject, path, target in jobs:
            for rule, prompted in rules:
                res = os.path.join(tmp, f"{subject}-{target}-{rule}-{prompted}".replace(" ", "_"))
                cmd = [engine, "interpret", path, "-m", bundle, "--target", target,
                       "--llm-frames", rule, "--prompt-frames", prompted, "-o", res, "-q",
                       "--json"]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
                result = json.loads(proc.stdout)
                findings = result.get("findings", [])
                gt = subjects[subject].structures[target]
                if findings:
                    mask_file = os.path.join(res, findings[0]["mask_file"])
                    img = nib.as_closest_canonical(nib.load(mask_file))
                    pred = np.asarray(img.dataobj) > 0
                    if pred.shape != gt.shape:
                        raise RuntimeError(f"{mask_file}: shape {pred.shape}, truth {gt.shape}")
                else:
                    pred = np.zeros_like(gt)
                out.append({"subject": subject, "target": target, "rule": rule,
                            "prompted": prompted, "dice": dice(pred, gt),
                            "llm_frames": result.get("sequence", {}).get("llm_frames")})
    return out


def run(bundle: str, data_dir: str, subjects: Sequence[Subject], engine: Optional[str],
        lesion_cases: int = 60, log=print) -> Dict[str, object]:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ev = Evaluator(bundle, subjects, log)
    report: Dict[str, object] = {"bundle": os.path.abspath(bundle)}
    stored = ev.held_out_slices(synthetic=False)
    report["held_out_slices"] = {"structures": stored.table(), "runs": stored.runs,
                                 "empty_mask_rate": stored.empty / max(stored.runs, 1)}
    log("held-out slices done")
    synth_scores = ev.held_out_slices(synthetic=True)
    report["held_out_synthetic_contrast"] = {"structures": synth_scores.table(),
                                             "runs": synth_scores.runs,
                                             "empty_mask_rate": synth_scores.empty /
                                             max(synth_scores.runs, 1)}
    log("synthetic contrast done")
    report["unseen_subject"] = ev.unseen_subject(data_dir)
    report["lesions"] = ev.lesions(lesion_cases)
    report["lesions_synthetic_contrast"] = ev.lesions(lesion_cases, synthetic=True)
    log("lesions done")
    if engine:
        report["volumes"] = volume_runs(engine, bundle, data_dir, ev.subjects)
        log("volumes done")
    table = report["held_out_slices"]["structures"]
    large = [table[n]["dice"] for n in texts.LARGE_STRUCTURES if n in table]
    report["bar"] = {"large_mean_dice": float(np.mean(large)),
                     "all_mean_dice": float(np.mean([v["dice"] for v in table.values()])),
                     "location_rate": report["lesions"]["location_rate"]}
    return report
