"""Prompt building as the release does it (Sa2VA's ``predict_forward`` with the phi3 template).

Everything a prompt depends on comes from a :class:`ChatSettings` (written into the bundle
manifest), so that the C++ engine builds the same string and the same token ids.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, List, Optional, Sequence, Tuple

IMG_START = "<img>"
IMG_END = "</img>"
IMG_CONTEXT = "<IMG_CONTEXT>"
SEG = "[SEG]"
PHRASE_START = "<p>"
PHRASE_END = "</p>"
REGION_START = "<vp>"
REGION_END = "</vp>"

#: The tokens the release adds to the language model's vocabulary, in the order it adds them.
ADDED_TOKENS: Tuple[str, ...] = (
    SEG,
    PHRASE_START,
    PHRASE_END,
    REGION_START,
    REGION_END,
    IMG_START,
    IMG_END,
    IMG_CONTEXT,
)

#: The release's task prompts; ``{target}`` and ``{question}`` are filled in per request.
TASK_PROMPTS: Dict[str, str] = {
    "segment": "<image>Please segment {target}.",
    "diagnose": (
        "<image>Can we observe any signs of abnormality? Please respond with interleaved "
        "segmentation masks for the corresponding parts."
    ),
    "report": (
        "<image>Could you describe the abnormality in this image? Please highlight the region "
        "with interleaved segmentation masks."
    ),
    "vqa": (
        "<image>{question} Please respond with interleaved segmentation masks for the "
        "corresponding parts."
    ),
    "region": "<image>{question}",
}


@dataclasses.dataclass(frozen=True)
class ChatSettings:
    """The chat template and generation limits of a model (the manifest's ``chat`` table)."""

    template: str = "<|user|>\n{input}<|end|>\n<|assistant|>\n"
    system: str = ""
    stop_words: Tuple[str, ...] = ("<|end|>",)
    image_placeholder: str = "<image>"
    max_new_tokens: int = 2048
    tasks: Tuple[Tuple[str, str], ...] = tuple(TASK_PROMPTS.items())

    def task_prompt(self, task: str) -> str:
        table = dict(self.tasks)
        if task not in table:
            raise KeyError(f"unknown task '{task}' (known: {', '.join(sorted(table))})")
        return table[task]


def task_text(settings: ChatSettings, task: str, target: str = "", question: str = "") -> str:
    """The user text of a task before image expansion, e.g. ``<image>Please segment liver.``"""
    text = settings.task_prompt(task)
    if "{target}" in text and not target:
        raise ValueError(f"task '{task}' needs a target")
    if "{question}" in text and not question:
        raise ValueError(f"task '{task}' needs a question")
    return text.replace("{target}", target).replace("{question}", question)


def expand_image_tokens(text: str, tokens_per_frame: Sequence[int], placeholder: str) -> str:
    """Replace the image placeholder by ``<img>`` + N x ``<IMG_CONTEXT>`` + ``</img>`` per frame.

    As the release does: each frame's block ends with a newline, the blocks are concatenated and
    the whole string is stripped, so one frame gives no trailing newline. A text without the
    placeholder gets it prepended (``<image>\\n`` + text), as Sa2VA does.
    """
    if placeholder not in text:
        text = placeholder + "\n" + text
    blocks = "".join(f"{IMG_START}{IMG_CONTEXT * n}{IMG_END}\n" for n in tokens_per_frame)
    return text.replace(placeholder, blocks.strip())


def chat_prompt(settings: ChatSettings, user_text: str) -> str:
    """Apply the chat template (one round, no system prompt unless the settings have one)."""
    return settings.system + settings.template.replace("{input}", user_text)


def find_stop(text: str, stop_words: Sequence[str]) -> Optional[int]:
    """Index where a stop word ends the text, or None.

    xtuner's ``StopWordStoppingCriteria`` (used by the release) decodes the whole generated
    sequence, removes ``\\r`` and ``\\n`` and compares the tail with the stop word; this returns
    the position of the stop word in ``text`` when that comparison holds.
    """
    flat = text.replace("\r", "").replace("\n", "")
    for word in stop_words:
        if word and flat.endswith(word):
            at = text.rfind(word)
            return at if at >= 0 else len(text)  # the word spans a line break
    return None


_PHRASE = re.compile(re.escape(PHRASE_START) + r"(.*?)" + re.escape(PHRASE_END), re.S)


def seg_phrases(answer: str, targets: Sequence[str] = ()) -> List[str]:
    """The phrase each ``[SEG]`` of an answer refers to, in order.

    The text between ``<p>`` and ``</p>`` just before the ``[SEG]`` when the model wrote one,
    else the requested target (one per ``[SEG]`` in order, the last repeated), else the
    sentence around the ``[SEG]``.
    """
    phrases: List[str] = []
    pieces = answer.split(SEG)
    for i, before in enumerate(pieces[:-1]):
        found = _PHRASE.findall(before)
        tail = before[before.rfind(PHRASE_END) + len(PHRASE_END):] if found else before
        if found and not tail.strip(" ,.;:"):
            phrases.append(found[-1].strip())
        elif targets:
            phrases.append(targets[min(i, len(targets) - 1)])
        else:
            start = max(before.rfind("."), before.rfind("\n")) + 1
            after = pieces[i + 1]
            end = min([p for p in (after.find("."), after.find("\n")) if p >= 0], default=len(after))
            sentence = (before[start:] + SEG + after[:end]).replace(SEG, "").strip()
            phrases.append(_clean(sentence))
    return phrases


def _clean(text: str) -> str:
    for token in ADDED_TOKENS:
        text = text.replace(token, "")
    return " ".join(text.split())
