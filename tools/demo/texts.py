"""What the demo model is asked and what it answers, and the tokenizer's corpus.

Answers follow the release's style: a segmentation prompt gets "It is [SEG].", grounded
sentences put the phrase in <p>...</p> before its [SEG]. Every fact in an answer (side, region,
contrast) is read off the ground-truth mask it is drawn with.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence

import numpy as np

from unibiomed_ref import prompt as P

SEGMENT_ANSWER = "It is [SEG]."

MR_TARGETS = ("brain", "head", "lateral ventricles", "left lateral ventricle",
              "right lateral ventricle", "cerebellum", "thalamus", "left thalamus", "right thalamus",
              "hippocampus", "left hippocampus", "right hippocampus", "frontal lobe",
              "left frontal lobe", "right frontal lobe", "parietal lobe", "left parietal lobe",
              "right parietal lobe", "temporal lobe", "left temporal lobe", "right temporal lobe",
              "occipital lobe", "left occipital lobe", "right occipital lobe")
CT_TARGETS = ("head", "skull", "brain")
LARGE_STRUCTURES = ("brain", "head", "skull", "lateral ventricles")

QUESTIONS = {
    "where": ("Where is the lesion?", "Where is the abnormality located?"),
    "side": ("Which side is the lesion on?", "Is the lesion on the left or the right?"),
    "present": ("Is there a lesion in this image?", "Is there any focal lesion?"),
    "contrast": ("Is the lesion bright or dark?",),
    "modality": ("What imaging modality is this?", "What kind of scan is this?"),
}


def contrast_word(modality: str, bright: bool) -> str:
    if modality == "CT":
        return "hyperdense" if bright else "hypodense"
    return "hyperintense" if bright else "hypointense"


def location(side: str, region: str) -> str:
    """'left frontal lobe', 'right cerebral hemisphere', 'left thalamus'."""
    return f"{side} {region}"


def target_text(target: str, rng: np.random.Generator) -> str:
    return target if rng.random() < 0.5 else f"the {target}"


def report_answer(rng: np.random.Generator, modality: str, lesion: Optional[dict],
                  ventricles_visible: bool) -> str:
    if lesion is not None:
        adj, where = contrast_word(modality, lesion["bright"]), location(lesion["side"],
                                                                          lesion["region"])
        # One opening for every positive form: greedy decoding compares the first token of
        # "No focal lesion is seen." with each opening, and three openings splitting the
        # positive probability let the single negative one win on most lesion slices.
        forms = (f"There is a {adj} lesion <p>lesion</p> [SEG] in the {where}.",
                 f"There is a {adj} <p>lesion</p> [SEG] in the {where}.",
                 f"There is a focal {adj} <p>lesion</p> [SEG] in the {where}.")
        return forms[int(rng.integers(len(forms)))]
    if modality == "MR" and ventricles_visible:
        return ("No focal lesion is seen. The <p>lateral ventricles</p> [SEG] are normal "
                "in size.")
    return "No focal lesion is seen."


def diagnose_answer(rng: np.random.Generator, modality: str, lesion: Optional[dict]) -> str:
    if lesion is not None:
        where = location(lesion["side"], lesion["region"])
        forms = (f"Yes. There is a <p>lesion</p> [SEG] in the {where}.",
                 f"Yes, an abnormal <p>lesion</p> [SEG] is seen in the {where}.")
        return forms[int(rng.integers(len(forms)))]
    return "No abnormality is seen." if rng.random() < 0.5 else "No. The scan looks normal."


def vqa(rng: np.random.Generator, modality: str, lesion: Optional[dict]) -> tuple:
    """(question, answer) of a random form that fits the case."""
    forms = ["present", "modality"] + (["where", "side", "contrast"] if lesion else [])
    form = forms[int(rng.integers(len(forms)))]
    q = QUESTIONS[form][int(rng.integers(len(QUESTIONS[form])))]
    if form == "modality":
        return q, "This is a head CT scan." if modality == "CT" else "This is a brain MRI scan."
    if lesion is None:
        return q, "No, there is no lesion."
    where = location(lesion["side"], lesion["region"])
    if form == "present":
        return q, f"Yes, there is a <p>lesion</p> [SEG] in the {where}."
    if form == "where":
        return q, f"The <p>lesion</p> [SEG] is in the {where}."
    if form == "side":
        return q, f"The <p>lesion</p> [SEG] is on the {lesion['side']} side."
    return q, f"It is a {contrast_word(modality, lesion['bright'])} <p>lesion</p> [SEG]."


def user_text(chat: P.ChatSettings, task: str, target: str = "", question: str = "") -> str:
    return P.task_text(chat, task, target=target, question=question)


def corpus(chat: P.ChatSettings, text_dir: str, rng: np.random.Generator,
           examples: int = 4000) -> List[str]:
    """Lines for the SentencePiece model: templates, prompts and answers of every form, the
    structure names, the medical word list and WordNet's body/disease definitions."""
    lines: List[str] = [chat.template, *chat.stop_words]
    lines += [text for _, text in chat.tasks]
    regions = ("frontal lobe", "parietal lobe", "temporal lobe", "occipital lobe", "cerebellum",
               "thalamus", "basal ganglia", "hippocampus", "cerebral hemisphere")
    for _ in range(examples):
        modality = "CT" if rng.random() < 0.3 else "MR"
        lesion = None
        if rng.random() < 0.7:
            lesion = {"side": ("left", "right")[int(rng.integers(2))],
                      "region": regions[int(rng.integers(len(regions)))],
                      "bright": bool(rng.random() < 0.5)}
        targets = CT_TARGETS if modality == "CT" else MR_TARGETS
        lines.append(user_text(chat, "segment", target_text(
            targets[int(rng.integers(len(targets)))], rng)) + SEGMENT_ANSWER)
        lines.append(report_answer(rng, modality, lesion, True))
        lines.append(diagnose_answer(rng, modality, lesion))
        q, a = vqa(rng, modality, lesion)
        lines.append(q + " " + a)
    lines += list(MR_TARGETS) + list(CT_TARGETS)
    lines += _medical_words(os.path.join(text_dir, "en_med_glut.dic"))
    lines += _wordnet_definitions(os.path.join(text_dir, "data.noun"))
    return [line for line in lines if line]


def _medical_words(path: str) -> List[str]:
    words = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            word = line.strip().split("/")[0]
            if word and not word[0].isdigit() and " " not in word:
                words.append(word)
    # one line per 20 words: SentencePiece counts pieces per line
    return [" ".join(words[i:i + 20]) for i in range(0, len(words), 20)]


_GLOSS = re.compile(r"\|\s*(.*)$")


def _wordnet_definitions(path: str, lex_files: Sequence[str] = ("08", "26")) -> List[str]:
    """Glosses of WordNet nouns in the body (08) and state/disease (26) lexicographer files."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(" "):
                continue
            fields = line.split(" ", 4)
            if len(fields) > 2 and fields[1] in lex_files:
                m = _GLOSS.search(line)
                if m:
                    out.append(m.group(1).strip())
    return out
