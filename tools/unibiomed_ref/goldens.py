"""Goldens of the reference pipeline for a bundle: what the C++ engine's tests compare with.

For each case, ``<case>.safetensors`` holds the tensors (ids, vision tokens, ``[SEG]`` hidden
states, language embeddings, mask logits, IoU and object scores, final masks) and
``cases.json`` the texts, the settings of the case and per-mask summaries. The pipeline runs on
the bundle as loaded by ``torch.jit.load``; the eager reference modules are run too, and any
difference beyond 1e-5 stops the generator.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from typing import Any, Callable, Dict, List, Sequence

import numpy as np
import torch
from PIL import Image

from unibiomed_ref import bundle as B
from unibiomed_ref.pipeline import ModelParts, PRE, interpret_image, summary
from unibiomed_ref.pipeline_video import interpret_frames
from unibiomed_ref.safetensors import save_file

#: 2-D cases: name, sample file, crop (top, bottom, left, right) or None, task, target, question.
CASES_2D = (
    ("brain_pd_segment", "itk/BrainProtonDensitySlice.png", None, "segment", "brain", ""),
    ("ihc_wide_diagnose", "skimage/ihc.png", (0, 256, 0, 512), "diagnose", "", ""),
    ("fat_mri_report", "itk/FatMRISlice.png", None, "report", "", ""),
    ("head_vqa", "itk/VisibleWomanHeadSlice.png", None, "vqa", "", "Where is the lesion?"),
)
#: The volume case: ch2 T1 MRI, 8 axial slices, every other voxel in-plane.
VOLUME_FILE = "mricron/ch2.nii.gz"
VOLUME_SLICES = tuple(range(50, 90, 5))


def read_nifti(path: str) -> np.ndarray:
    """A NIfTI-1 volume (.nii or .nii.gz) as float32 [z, y, x], scaling applied; for goldens only."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    endian = "<" if struct.unpack("<i", data[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", data[40:56])
    datatype = struct.unpack(endian + "h", data[70:72])[0]
    offset = int(struct.unpack(endian + "f", data[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", data[112:120])
    types = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64,
             256: np.int8, 512: np.uint16}
    if datatype not in types:
        raise ValueError(f"{path}: NIfTI datatype {datatype} not handled by this reader")
    nx, ny, nz = dims[1], dims[2], dims[3]
    count = nx * ny * nz
    arr = np.frombuffer(data, dtype=np.dtype(types[datatype]).newbyteorder(endian),
                        count=count, offset=offset).astype(np.float32)
    if slope not in (0.0, 1.0) or inter != 0.0:
        arr = arr * (slope if slope != 0.0 else 1.0) + inter
    return arr.reshape(nz, ny, nx)


def volume_frames(data_dir: str) -> List[np.ndarray]:
    """The volume case's frames: MR percentile normalisation, axial slices, RGB uint8."""
    vol = read_nifti(os.path.join(data_dir, VOLUME_FILE))
    u8 = PRE.to_uint8(PRE.percentile_normalize(vol))
    return [PRE.grey_to_rgb(np.ascontiguousarray(u8[z, ::-2, ::2])) for z in VOLUME_SLICES]


def _close(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or not torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-5):
        diff = (a.float() - b.float()).abs().max() if a.shape == b.shape else "shape"
        raise AssertionError(f"export differs from the reference on {name}: {diff}")


def _case_2d(parts: ModelParts, eager: ModelParts, tokenizer, settings, rgb: np.ndarray,
             task: str, target: str, question: str):
    out = interpret_image(parts, tokenizer, settings, rgb, task, target, question)
    ref = interpret_image(eager, tokenizer, settings, rgb, task, target, question)
    if out.generation.output_ids != ref.generation.output_ids:
        raise AssertionError("export and reference generate different ids")
    for name in ("language_embeddings", "mask_logits", "iou", "object_scores"):
        _close(name, getattr(out, name), getattr(ref, name))
    tensors = {
        "tiles_mean_std": torch.stack([out.tiles.mean(dim=(1, 2, 3)), out.tiles.std(dim=(1, 2, 3))], 1),
        "vision_tokens": out.image_tokens.contiguous(),
        "prompt_ids": torch.tensor(out.generation.prompt_ids, dtype=torch.int64),
        "output_ids": torch.tensor(out.generation.output_ids, dtype=torch.int64),
        "seg_hidden": out.generation.seg_hidden.contiguous(),
        "language_embeddings": out.language_embeddings.contiguous(),
        "mask_logits": out.mask_logits.contiguous(),
        "iou": out.iou.contiguous(),
        "object_scores": out.object_scores.contiguous(),
        "best": out.best.to(torch.int64),
        "masks": torch.from_numpy(out.masks.astype(np.uint8)),
    }
    return tensors, summary(out)


def write_goldens(bundle_dir: str, golden_dir: str, eager: ModelParts, data_dir: str,
                  log: Callable[..., Any] = print, cases_2d: Sequence[tuple] = CASES_2D,
                  bundle_ref: str = "../tiny-bundle") -> None:
    """Run every case on the bundle (and on ``eager``) and write the goldens to ``golden_dir``.

    A bundle stored in bf16 is computed in fp32 (as the engine does on CPU); ``eager`` must then
    hold the same bf16-rounded weights. ``bundle_ref`` is the bundle's path relative to
    ``golden_dir``, recorded in cases.json."""
    parts, settings, tokenizer, _manifest = B.load_bundle(bundle_dir, compute_dtype=torch.float32)
    os.makedirs(os.path.join(golden_dir, "inputs"), exist_ok=True)
    cases: List[Dict[str, Any]] = []
    for name, rel, crop, task, target, question in cases_2d:
        rgb = np.asarray(Image.open(os.path.join(data_dir, rel)).convert("RGB"))
        if crop is not None:
            rgb = np.ascontiguousarray(rgb[crop[0]:crop[1], crop[2]:crop[3]])
        image_name = f"inputs/{name}.png"
        Image.fromarray(rgb).save(os.path.join(golden_dir, image_name), optimize=False)
        tensors, info = _case_2d(parts, eager, tokenizer, settings, rgb, task, target, question)
        save_file(tensors, os.path.join(golden_dir, f"{name}.safetensors"))
        cases.append({"name": name, "kind": "image", "source": rel, "crop": crop,
                      "image": image_name, "task": task, "target": target, "question": question,
                      "tensors": f"{name}.safetensors", **info})
        log(f"golden {name}: {info['text']!r}, {len(info['masks'])} mask(s)")
    frames = volume_frames(data_dir)
    frames_file = "inputs/ch2_frames.safetensors"
    save_file({"frames": torch.from_numpy(np.stack([f[:, :, 0] for f in frames]))},
              os.path.join(golden_dir, frames_file))
    for rule, llm_frames in (("release", None), ("spread", [1, 4, 6])):
        # the release's video path, whatever the bundle's default prompt_frames
        out = interpret_frames(parts, tokenizer, settings, frames, "segment", "brain",
                               llm_frames=llm_frames, prompt_frames="seen")
        ref = interpret_frames(eager, tokenizer, settings, frames, "segment", "brain",
                               llm_frames=llm_frames, prompt_frames="seen")
        _close("video low_res", out.low_res, ref.low_res)
        name = f"ch2_video_{rule}"
        save_file({"prompt_ids": torch.tensor(out.generation.prompt_ids, dtype=torch.int64),
                   "output_ids": torch.tensor(out.generation.output_ids, dtype=torch.int64),
                   "seg_hidden": out.generation.seg_hidden.contiguous(),
                   "language_embeddings": out.language_embeddings.contiguous(),
                   "low_res": out.low_res.contiguous(),
                   "masks": torch.from_numpy(out.masks.astype(np.uint8))},
                  os.path.join(golden_dir, f"{name}.safetensors"))
        cases.append({"name": name, "kind": "frames", "source": VOLUME_FILE,
                      "slices": list(VOLUME_SLICES), "frames": frames_file, "task": "segment",
                      "target": "brain", "llm_frames": out.llm_frames,
                      "text": out.generation.text, "output_ids": out.generation.output_ids,
                      "stopped_by": out.generation.stopped_by, "phrases": out.phrases,
                      "mask_voxels": [int(m.sum()) for m in out.masks],
                      "tensors": f"{name}.safetensors"})
        log(f"golden {name}: {out.generation.text!r}, frames {out.llm_frames}")
    with open(os.path.join(golden_dir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"bundle": bundle_ref, "cases": cases}, f, indent=1)
        f.write("\n")
