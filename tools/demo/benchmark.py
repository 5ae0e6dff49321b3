"""The project's own benchmarks for `unibiomed eval` (docs/eval.md), from data never trained on:
held-out axial slices of ch2 and of the InVesalius CT as the engine shows them (8-bit MR as
stored, CT in the brain window), the ITK slices of an unseen subject with ITK's ventricle model,
and synthetic lesions on held-out slices with their reports. Written as pictures and masks with
a dataset.json per set, small enough to commit (benchmarks/data)."""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

from demo import slices, texts
from demo.anatomy import Subject
from demo.samples import MIN_AREA, Sampler

SEED = 4242
#: Every third held-out slice (the sets stay small; neighbours are alike).
STRIDE = 3
#: Structures asked about on the MR slices (the large ones and one per lobe and side).
MR_BENCH_TARGETS = ("head", "brain", "lateral ventricles", "cerebellum", "left frontal lobe",
                    "right frontal lobe", "left temporal lobe", "right occipital lobe",
                    "thalamus")
LESION_CASES = 12


def _save_png(array: np.ndarray, path: str) -> str:
    Image.fromarray(array.astype(np.uint8)).save(path, optimize=True)
    return path


def _write(folder: str, doc: Dict[str, object]) -> None:
    with open(os.path.join(folder, "dataset.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def _fresh(folder: str) -> None:
    if os.path.exists(folder):
        shutil.rmtree(folder)
    os.makedirs(os.path.join(folder, "images"))
    os.makedirs(os.path.join(folder, "masks"))


def _segment_set(out: str, name: str, subject: Subject, sampler: Sampler,
                 targets: Sequence[str], mode: str) -> Dict[str, object]:
    _fresh(out)
    items: List[Dict[str, object]] = []
    for k in sampler.slices[subject.name][::STRIDE]:
        item_id = f"{subject.name}_z{k:03d}"
        picture = sampler._slab(subject, [k], None, mode)[0]
        image = _save_png(picture, os.path.join(out, "images", item_id + ".png"))
        masks = {}
        for t in targets:
            gt = slices.take(subject.structures[t], "axial", k)
            if gt.sum() < MIN_AREA:
                continue
            file = f"masks/{item_id}_{t.replace(' ', '_')}.png"
            _save_png(gt * 255, os.path.join(out, file))
            masks[t] = file
        items.append({"id": item_id, "image": os.path.relpath(image, out), "masks": masks})
    # no "modality": the pictures are already mapped to 8 bits as the engine shows the scan (a
    # CT modality would window them a second time)
    return {"format": "unibiomed-dataset/1", "name": name, "task": "segment", "items": items}


def write_benchmarks(out_root: str, data_dir: str, subjects: Sequence[Subject],
                     chat) -> List[str]:
    """Writes demo-holdout-mr, demo-holdout-ct and demo-lesions under out_root."""
    by_name = {s.name: s for s in subjects}
    sampler = Sampler(list(subjects), chat, True, SEED)
    written = []

    mr_dir = os.path.join(out_root, "demo-holdout-mr")
    doc = _segment_set(mr_dir, "demo-holdout-mr", by_name["ch2"], sampler, MR_BENCH_TARGETS,
                       "stored")
    # the unseen subject: ITK's slices, the ventricle model on the image's left (its right)
    itk = os.path.join(data_dir, "itk")
    shutil.copyfile(os.path.join(itk, "VentricleModel.png"),
                    os.path.join(mr_dir, "masks", "itk_right_lateral_ventricle.png"))
    for name in ("BrainProtonDensitySlice.png", "BrainT1Slice.png"):
        shutil.copyfile(os.path.join(itk, name), os.path.join(mr_dir, "images", "itk_" + name))
        doc["items"].append({"id": "itk_" + name[:-4], "image": "images/itk_" + name,
                             "masks": {"right lateral ventricle":
                                       "masks/itk_right_lateral_ventricle.png"}})
    _write(mr_dir, doc)
    written.append(mr_dir)

    ct_dir = os.path.join(out_root, "demo-holdout-ct")
    _write(ct_dir, _segment_set(ct_dir, "demo-holdout-ct", by_name["invesalius-ct"], sampler,
                                texts.CT_TARGETS, "window"))
    written.append(ct_dir)

    lesion_dir = os.path.join(out_root, "demo-lesions")
    _fresh(lesion_dir)
    rng = np.random.default_rng(SEED)
    items = []
    while len(items) < LESION_CASES:
        subject, k = sampler.pick()
        lesion = sampler._lesion(subject, k)
        facts = sampler._lesion_facts(subject, lesion, k) if lesion else None
        if facts is None:
            continue
        mode = "window" if subject.modality == "CT" else "stored"
        picture = sampler._slab(subject, [k], lesion, mode)[0]
        item_id = f"lesion{len(items):02d}_{subject.name}_z{k:03d}"
        _save_png(picture, os.path.join(lesion_dir, "images", item_id + ".png"))
        _save_png(slices.take(facts["cut"], "axial", 0) * 255,
                  os.path.join(lesion_dir, "masks", item_id + ".png"))
        answer = texts.report_answer(rng, subject.modality, facts, False)
        plain = answer.replace("<p>", "").replace("</p>", "").replace(" [SEG]", "")
        items.append({"id": item_id, "image": f"images/{item_id}.png",
                      "masks": {"lesion": f"masks/{item_id}.png"}, "answer": plain,
                      "place": f"{facts['side']} {facts['region']}"})
    _write(lesion_dir, {"format": "unibiomed-dataset/1", "name": "demo-lesions",
                        "task": "report", "items": items})
    written.append(lesion_dir)
    return written
