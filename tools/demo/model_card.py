"""The model card of the demo bundle, written from an evaluation report (evaluate.run)."""

from __future__ import annotations

import json
import os
from typing import Dict

from demo import texts

BAR = {"large_mean_dice": 0.85, "all_mean_dice": 0.6, "location_rate": 0.8}


def _structures(table: Dict[str, Dict[str, float]]) -> str:
    lines = ["| structure | Dice (pooled) | mean Dice per slice | slices |", "|---|---|---|---|"]
    for name, row in table.items():
        mark = " (large)" if name in texts.LARGE_STRUCTURES else ""
        lines.append(f"| {name}{mark} | {row['dice']:.3f} | {row['mean_slice_dice']:.3f} | "
                     f"{row['slices']} |")
    return "\n".join(lines)


def _lesion_line(les: Dict[str, object], where: str) -> str:
    return (f"\n**Synthetic lesions {where}** ({les['cases']} cases): the report names the "
            f"right side and region in {100 * les['location_rate']:.1f}%; mean Dice of its "
            f"lesion mask {les['lesion_dice']:.3f}"
            + (f"; the side alone is right in {100 * les['side_rate']:.1f}%. On "
               f"{les['normal_cases']} held-out slices without a lesion the report claims one "
               f"in {100 * les['false_positive_rate']:.1f}%." if "normal_cases" in les
               else "."))


def figures(report: Dict[str, object]) -> str:
    """The card's figures as markdown (also what `evaluate` prints)."""
    out = []
    bar = report["bar"]
    out.append("| figure | value | bar |\n|---|---|---|")
    for key, label in (("large_mean_dice", "mean Dice, large structures"),
                       ("all_mean_dice", "mean Dice, all structures"),
                       ("location_rate", "report names the lesion's side and region")):
        out.append(f"| {label} | {bar[key]:.3f} | >= {BAR[key]} |")
    held = report["held_out_slices"]
    out.append(f"\n**Held-out slices, as the engine shows the scans** ({held['runs']} prompts; "
               f"[SEG] answers with an empty mask: {100 * held['empty_mask_rate']:.1f}%)\n")
    out.append(_structures(held["structures"]))
    syn = report["held_out_synthetic_contrast"]
    out.append(f"\n**Held-out slices in a synthetic contrast never trained on** ({syn['runs']} "
               f"prompts; empty masks: {100 * syn['empty_mask_rate']:.1f}%)\n")
    out.append(_structures(syn["structures"]))
    unseen = report["unseen_subject"]
    out.append("\n**Another scan** (ITK slices, 'right lateral ventricle' against ITK's "
               "ventricle model): " + ", ".join(f"{k} Dice {v:.3f}" for k, v in unseen.items()))
    for key, where in (("lesions", "inserted into held-out slices of the scans (as stored, or "
                                   "CT-windowed)"),
                       ("lesions_synthetic_contrast", "on held-out slices in a synthetic "
                                                      "contrast")):
        if key in report:
            out.append(_lesion_line(report[key], where))
    if "volumes" in report:
        out.append("\n**Whole volumes through `unibiomed interpret`** (3-D Dice on the input "
                   "grid; frames the language model sees by rule; frames the prompt conditions: "
                   "`seen` as the release, SAM2's memory doing the rest, or `every`)\n")
        out.append("| scan | target | rule | frames seen | prompted | Dice |\n"
                   "|---|---|---|---|---|---|")
        for row in report["volumes"]:
            out.append(f"| {row['subject']} | {row['target']} | {row['rule']} | "
                       f"{row['llm_frames']} | {row.get('prompted', 'seen')} | "
                       f"{row['dice']:.3f} |")
    return "\n".join(out)


def write(bundle: str, report: Dict[str, object]) -> str:
    """Replace the figures section of ``bundle``/MODEL_CARD.md (between the markers) and save
    the full report beside it as eval.json."""
    path = os.path.join(bundle, "MODEL_CARD.md")
    start, end = "<!-- figures:start -->", "<!-- figures:end -->"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if start not in text or end not in text:
        raise ValueError(f"{path}: no {start} ... {end} section to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(head + start + "\n" + figures(report) + "\n" + end + tail)
    os.replace(path + ".tmp", path)
    slim = dict(report)
    slim["bundle"] = os.path.basename(os.path.abspath(bundle))
    with open(os.path.join(bundle, "eval.json"), "w", encoding="utf-8") as f:
        json.dump(slim, f, indent=1)
        f.write("\n")
    return path
