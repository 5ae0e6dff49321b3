#!/usr/bin/python3
"""Make the committed tiny test bundle and the reference pipeline's goldens for it.

    /usr/bin/python3 tools/make_tiny_bundle.py            # writes tests/data/tiny-bundle and
                                                          # tests/data/tiny-golden
    /usr/bin/python3 tools/make_tiny_bundle.py --check    # regenerates into a temporary folder
                                                          # and compares with the committed files

Everything is deterministic (fixed seeds, one thread, OpenBLAS's Haswell kernels): the same
machine kind regenerates the same bytes. Inputs are real open images from the sample cache (tools/fetch_data.sh). The goldens hold,
per case, the pipeline's intermediate tensors in a safetensors file and its text, ids, phrases
and mask summaries in cases.json; docs/bundle-format.md and tests/data/tiny-golden/README.md
describe them.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from typing import Dict, List

# OpenBLAS picks its kernels by CPU, and they round differently: on an AVX-512 Xeon its SkylakeX
# kernels changed the bundle's bytes. The committed files were made with its Haswell (AVX2)
# kernels, so every machine uses those (read when the library loads, before numpy and torch).
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from unibiomed_ref import bundle as B  # noqa: E402
from unibiomed_ref import prompt as P  # noqa: E402
from unibiomed_ref import tiny  # noqa: E402
from unibiomed_ref.config import tiny_config  # noqa: E402
from unibiomed_ref.goldens import write_goldens  # noqa: E402
from unibiomed_ref.model import build_model, model_parts  # noqa: E402
from unibiomed_ref.prompt import ChatSettings  # noqa: E402
from unibiomed_ref.settings import InferenceSettings, settings_for_config  # noqa: E402
from unibiomed_ref.tokenizer import load_tokenizer, train_sentencepiece  # noqa: E402

SEED = 20261123
TRAIN_STEPS = 300
DATA = os.path.join(ROOT, ".cache", "data")
TRAIN_IMAGES = ("itk/BrainProtonDensitySlice.png", "itk/FatMRISlice.png", "skimage/ihc.png",
                "itk/BrainMidSagittalSlice.png", "skimage/cell.png", "itk/VisibleWomanHeadSlice.png")


def load_rgb(rel: str) -> np.ndarray:
    path = os.path.join(DATA, rel)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: sample missing; run tools/fetch_data.sh first")
    return np.asarray(Image.open(path).convert("RGB"))


def settings_for(config, eos_id: int) -> InferenceSettings:
    """The release's settings, with a short generation limit and at most 6 tiles."""
    return settings_for_config(config, [eos_id], chat=ChatSettings(max_new_tokens=48),
                               max_tiles=6)


def make(out_root: str, log=print) -> Dict[str, str]:
    """Write ``tiny-bundle`` and ``tiny-golden`` under ``out_root``; returns their paths."""
    torch.set_num_threads(1)
    work = tempfile.mkdtemp(prefix="tiny-bundle-")
    cwd = os.getcwd()
    try:
        # 1. Tokenizer: a SentencePiece model trained on the prompts and answers. It is trained
        # in a scratch folder under a fixed relative name because the .model file records it.
        base = settings_for(tiny_config(), eos_id=2)
        os.chdir(work)
        train_sentencepiece(tiny.tokenizer_corpus(base), "tokenizer", 512, P.ADDED_TOKENS)
        os.chdir(cwd)
        tok_path = os.path.join(work, "tokenizer.model")
        tokenizer = load_tokenizer("sentencepiece", tok_path, list(P.ADDED_TOKENS))
        config = tiny_config(vocab_size=tokenizer.vocab_size)
        settings = settings_for(config, eos_id=tokenizer.token_to_id("</s>"))
        log(f"tokenizer: {tokenizer.vocab_size} pieces")

        # 2. Model: seeded random weights, then the language side trained to answer.
        model = build_model(config, SEED)
        parts = model_parts(model.export_parts())
        images = [load_rgb(rel) for rel in TRAIN_IMAGES]
        losses = tiny.train_language(parts, [model.vision_model, model.mlp1,
                                             model.language_model], tokenizer, settings, images,
                                     TRAIN_STEPS, SEED)
        log(f"training: loss {losses[0]:.3f} -> {losses[-1]:.4f} in {len(losses)} steps")
        model.eval()

        # 3. Bundle.
        bundle_dir = os.path.join(out_root, "tiny-bundle")
        special = {t: tokenizer.token_to_id(t) for t in P.ADDED_TOKENS}
        B.write_bundle(
            bundle_dir, model.export_parts(), settings, "sentencepiece", [tok_path], special,
            model.config.to_dict(), torch.float32, name="unibiomed-tiny-test",
            description=("Tiny UniBiomed-architecture model for the tests: language side trained "
                         "for a few hundred steps to answer in the release's style, SAM2 random."),
            source={"kind": "trained", "seed": SEED, "recipe": "tools/make_tiny_bundle.py",
                    "steps": TRAIN_STEPS},
        )
        log(f"bundle: {bundle_dir}")

        # 4. Goldens, from the bundle as loaded by torch.jit.load (and checked against eager).
        golden_dir = os.path.join(out_root, "tiny-golden")
        write_goldens(bundle_dir, golden_dir, model.parts(), DATA, log)
        return {"bundle": bundle_dir, "golden": golden_dir}
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def compare_trees(a: str, b: str) -> List[str]:
    """Relative paths that differ between two folders (missing on either side or other bytes);
    hand-written README.md files are not generated and not compared."""
    diffs: List[str] = []
    names = set()
    for root in (a, b):
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f == "README.md":
                    continue
                names.add(os.path.relpath(os.path.join(dirpath, f), root))
    for rel in sorted(names):
        pa, pb = os.path.join(a, rel), os.path.join(b, rel)
        if not (os.path.isfile(pa) and os.path.isfile(pb)) or not filecmp.cmp(pa, pb, False):
            diffs.append(rel)
    return diffs


def main(argv: List[str] | None = None) -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # TorchScript writes a module's constants in set order, which follows Python's string
        # hashing: fix it so that the .pt files are the same bytes on every run.
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                  {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data"),
                        help="folder that receives tiny-bundle/ and tiny-golden/")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary folder and compare with --out")
    args = parser.parse_args(argv)
    if not args.check:
        make(args.out)
        return 0
    tmp = tempfile.mkdtemp(prefix="tiny-check-")
    try:
        made = make(tmp, log=lambda *_: None)
        diffs = []
        for key, path in made.items():
            diffs += [f"{key}/{d}" for d in compare_trees(path, os.path.join(args.out,
                                                                              os.path.basename(path)))]
        if diffs:
            blas = os.path.realpath("/etc/alternatives/libblas.so.3-x86_64-linux-gnu")
            print("tiny bundle differs from the committed one: " + ", ".join(diffs) +
                  f" (the committed one was made with OpenBLAS, libopenblas0-openmp, one thread, "
                  f"its Haswell kernels; this run: OPENBLAS_CORETYPE="
                  f"{os.environ.get('OPENBLAS_CORETYPE', '')}, "
                  f"this machine's BLAS is {blas})")
            return 1
        print("tiny bundle and goldens regenerate identically")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
