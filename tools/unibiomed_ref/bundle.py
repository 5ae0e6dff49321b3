"""Model bundles: TorchScript exports of the model parts plus a manifest (docs/bundle-format.md).

A bundle is a folder::

    manifest.json              what the engine needs, versioned
    vision_encoder.pt          InternViT + pixel shuffle + mlp1
    language_decoder.pt        Qwen2 decoder with a caller-owned KV cache (embed / forward)
    grounding_projector.pt     text_hidden_fcs
    sam_image_encoder.pt       Hiera + FPN (+ conv_s0/conv_s1)
    sam_mask_decoder.pt        prompt encoder + mask decoder, language embedding as prompt
    sam_tracker.pt             memory encoder, memory attention, object pointers
    tokenizer.model | tokenizer.json

The folder is written next to its destination and renamed into place, so a bundle is either
complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import zipfile
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch

from unibiomed_ref import prompt as P
from unibiomed_ref.settings import InferenceSettings

FORMAT = "unibiomed-bundle"
FORMAT_VERSION = 1
EXPORTER_VERSION = "0.1.0"

#: Manifest key -> file name of each TorchScript part.
PART_FILES: Dict[str, str] = {
    "vision_encoder": "vision_encoder.pt",
    "language_decoder": "language_decoder.pt",
    "grounding_projector": "grounding_projector.pt",
    "sam_image_encoder": "sam_image_encoder.pt",
    "sam_mask_decoder": "sam_mask_decoder.pt",
    "sam_tracker": "sam_tracker.pt",
}

DTYPES: Dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16,
                                  "bf16": torch.bfloat16}


def dtype_name(dtype: torch.dtype) -> str:
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise ValueError(f"unsupported dtype {dtype}")


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def script_part(module: torch.nn.Module, dtype: torch.dtype) -> torch.jit.ScriptModule:
    """Script one export wrapper in the given dtype (eval mode, no gradients)."""
    module = module.eval().to(dtype)
    for p in module.parameters():
        p.requires_grad_(False)
    return torch.jit.script(module)


def strip_debug_info(path: str) -> None:
    """Remove TorchScript's ``.debug_pkl`` records from a saved module, in place.

    They hold the absolute paths of the Python sources that were scripted, which would make a
    bundle's bytes depend on where the repository was checked out (and leak that path). The
    records are optional: modules load and run the same without them.
    """
    tmp = path + ".strip"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED,
                                                       allowZip64=True) as zout:
        for info in zin.infolist():
            if not info.filename.endswith(".debug_pkl"):
                with zin.open(info) as src, zout.open(info, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 24)
    os.replace(tmp, path)


def write_bundle(out_dir: str, parts: Mapping[str, torch.nn.Module], settings: InferenceSettings,
                 tokenizer_kind: str, tokenizer_files: Sequence[str],
                 special_tokens: Mapping[str, int], architecture: Dict[str, Any],
                 dtype: torch.dtype, name: str, description: str,
                 source: Dict[str, Any], demo: bool = False,
                 interfaces: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Export ``parts`` (keys of :data:`PART_FILES`) and write a complete bundle atomically.

    Returns the manifest. ``tokenizer_files`` are copied by base name; the first one is the
    file the tokenizer is loaded from.
    """
    missing = sorted(set(PART_FILES) - set(parts))
    if missing:
        raise ValueError(f"bundle {out_dir}: missing parts {', '.join(missing)}")
    for token in P.ADDED_TOKENS:
        if token not in special_tokens:
            raise ValueError(f"bundle {out_dir}: special token {token} has no id")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".bundle-", dir=parent)
    try:
        files: Dict[str, Any] = {}
        for key, file_name in PART_FILES.items():
            path = os.path.join(tmp, file_name)
            script_part(parts[key], dtype).save(path)
            strip_debug_info(path)
            files[key] = {"path": file_name, "bytes": os.path.getsize(path),
                          "sha256": sha256_file(path)}
        tok_names = []
        for src in tokenizer_files:
            dst = os.path.join(tmp, os.path.basename(src))
            shutil.copyfile(src, dst)
            tok_names.append(os.path.basename(src))
            files[f"tokenizer:{os.path.basename(src)}"] = {
                "path": os.path.basename(src), "bytes": os.path.getsize(dst),
                "sha256": sha256_file(dst)}
        manifest: Dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "description": description,
            "demo": demo,
            "created_by": {"exporter": f"unibiomed tools/make_bundle.py {EXPORTER_VERSION}",
                           "torch": torch.__version__.split("+")[0],
                           "python": platform.python_version()},
            "source": source,
            "dtype": dtype_name(dtype),
            "compute_dtype": {"cpu": "fp32", "cuda": "bf16"},
            "files": files,
            "tokenizer": {"kind": tokenizer_kind, "file": tok_names[0],
                          "special_tokens": dict(special_tokens)},
            "architecture": architecture,
        }
        manifest.update(settings.to_manifest())
        if interfaces:
            manifest["interfaces"] = interfaces
        with open(os.path.join(tmp, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=False)
            f.write("\n")
        if os.path.exists(out_dir):
            old = out_dir.rstrip("/") + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_manifest(bundle_dir: str) -> Dict[str, Any]:
    """Read and check a bundle's manifest: format, version, every file present with its size."""
    path = os.path.join(bundle_dir, "manifest.json")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{bundle_dir}: not a model bundle (no manifest.json)") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: format is {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')} is not "
                         f"supported (this reader knows {FORMAT_VERSION})")
    for key, entry in manifest["files"].items():
        file_path = os.path.join(bundle_dir, entry["path"])
        if not os.path.isfile(file_path):
            raise FileNotFoundError(f"{bundle_dir}: {key} file {entry['path']} is missing")
        if os.path.getsize(file_path) != entry["bytes"]:
            raise ValueError(f"{file_path}: {os.path.getsize(file_path)} bytes, manifest says "
                             f"{entry['bytes']}")
    return manifest


def load_bundle(bundle_dir: str, device: str = "cpu", compute_dtype: Optional[torch.dtype] = None
                ) -> Tuple[Any, InferenceSettings, Any, Dict[str, Any]]:
    """Load a bundle's parts with ``torch.jit.load`` -> (ModelParts, settings, tokenizer, manifest);
    ``compute_dtype`` converts the weights (a bf16 bundle runs in fp32 on CPU, as the engine)."""
    from unibiomed_ref.pipeline import ModelParts
    from unibiomed_ref.tokenizer import load_tokenizer

    manifest = read_manifest(bundle_dir)
    loaded = {key: torch.jit.load(os.path.join(bundle_dir, manifest["files"][key]["path"]),
                                  map_location=device) for key in PART_FILES}
    if compute_dtype is not None:
        for module in loaded.values():
            module.to(compute_dtype)
    parts = ModelParts(vision=loaded["vision_encoder"], language=loaded["language_decoder"],
                       grounding=loaded["grounding_projector"],
                       sam_image=loaded["sam_image_encoder"],
                       sam_decoder=loaded["sam_mask_decoder"], sam_tracker=loaded["sam_tracker"])
    tok = manifest["tokenizer"]
    tokenizer = load_tokenizer(tok["kind"], os.path.join(bundle_dir, tok["file"]),
                               list(P.ADDED_TOKENS))
    return parts, InferenceSettings.from_manifest(manifest), tokenizer, manifest
