"""Loading the released UniBiomed checkpoint into the reference model, and checking layouts.

- :func:`load_checkpoint` checks every header against ``model.state_dict()`` first (names,
  shapes) and raises one :class:`CheckpointMismatch` listing all problems before any tensor data
  is read; then it loads shard by shard, converting dtypes to the model's.
- :func:`expected_layout` / :func:`compare_layouts` compare the module side with the layout table
  (``data/unibiomed_checkpoint_layout.tsv``, see ``layout.py``).
- :func:`write_synthetic_checkpoint` writes a random checkpoint of a given layout.

CLI::

    /usr/bin/python3 tools/unibiomed_ref/checkpoint.py synth OUTDIR [--seed N] [--shard-mb M]
    /usr/bin/python3 tools/unibiomed_ref/checkpoint.py check FOLDER   # headers only
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch

if __package__ in (None, ""):  # run as a script: import the package, not sibling files
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

from unibiomed_ref import safetensors as st  # noqa: E402
from unibiomed_ref.layout import LAYOUT_TSV, LayoutRow, read_tsv  # noqa: E402

Shape = Tuple[int, ...]
MAX_LISTED = 40  # problems listed in one error message before "... and N more"

# Checkpoint-name fragment -> module-name fragment (the release's HF conversion renamed the
# SAM2 CXBlock layer scale `.gamma` to `.g_weight`; the modules keep upstream's `.gamma`).
_CKPT_TO_MODULE = ((".g_weight", ".gamma"),)


class CheckpointMismatch(RuntimeError):
    """The checkpoint's tensors do not match the model's parameters."""


def checkpoint_to_module_name(name: str) -> str:
    """Map a checkpoint tensor name to the reference module's state_dict key."""
    for a, b in _CKPT_TO_MODULE:
        if name.endswith(a):
            return name[: -len(a)] + b
    return name


def module_to_checkpoint_name(name: str) -> str:
    """Map a module state_dict key to the checkpoint tensor name."""
    for a, b in _CKPT_TO_MODULE:
        if name.endswith(b):
            return name[: -len(b)] + a
    return name


def _format_problems(title: str, problems: Sequence[str]) -> str:
    shown = list(problems[:MAX_LISTED])
    more = len(problems) - len(shown)
    lines = [f"{title}: {len(problems)} problem(s)"] + ["  " + p for p in shown]
    if more:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def diff_layouts(expected: Mapping[str, Shape], found: Mapping[str, Shape]) -> List[str]:
    """Human-readable differences: missing, unexpected and mis-shaped names (sorted)."""
    out: List[str] = []
    out += [f"missing: {k} (expected shape {list(expected[k])})" for k in sorted(expected) if k not in found]
    out += [f"unexpected: {k} (shape {list(found[k])})" for k in sorted(found) if k not in expected]
    out += [f"shape mismatch: {k}: expected {list(expected[k])}, found {list(found[k])}"
            for k in sorted(expected) if k in found and tuple(expected[k]) != tuple(found[k])]
    return out


def expected_layout(model: torch.nn.Module) -> List[Tuple[str, Shape]]:
    """(checkpoint name, shape) of every state_dict entry of ``model``, in state_dict order."""
    return [(module_to_checkpoint_name(k), tuple(v.shape)) for k, v in model.state_dict().items()]


def compare_layouts(model_layout: Iterable[Tuple[str, Shape]],
                    rows: Optional[Sequence[LayoutRow]] = None) -> List[str]:
    """Differences between a module-side layout and the table (default: the TSV file)."""
    table = rows if rows is not None else read_tsv(LAYOUT_TSV)
    return diff_layouts({r.name: r.shape for r in table}, dict(model_layout))


def check_model_against_table(model: torch.nn.Module, rows: Optional[Sequence[LayoutRow]] = None) -> None:
    """Raise :class:`CheckpointMismatch` if ``model``'s state_dict differs from the table."""
    problems = compare_layouts(expected_layout(model), rows)
    if problems:
        raise CheckpointMismatch(_format_problems("model vs layout table", problems))


def checkpoint_layout(folder_or_file: str) -> Dict[str, Tuple[str, str, Shape]]:
    """{name: (file, dtype, shape)} from the validated headers (no tensor data read)."""
    return {k: (path, info["dtype"], tuple(info["shape"]))
            for k, (path, info) in st.read_headers(folder_or_file).items()}


def load_checkpoint(model: torch.nn.Module, folder_or_file: str,
                    layout: Optional[Sequence[LayoutRow]] = None) -> None:
    """Load a single-file or sharded safetensors checkpoint into ``model`` (in place).

    All headers are validated and compared with ``model.state_dict()`` (and with ``layout`` when
    given) before any tensor data is read; one error lists every missing, unexpected and
    mis-shaped tensor. Floating tensors are converted to the dtype of the model's tensor.
    """
    found = checkpoint_layout(folder_or_file)
    state = model.state_dict()
    expected = {module_to_checkpoint_name(k): tuple(v.shape) for k, v in state.items()}
    problems = diff_layouts(expected, {k: v[2] for k, v in found.items()})
    if layout is not None:
        problems += [f"layout table: {p}" for p in diff_layouts({r.name: r.shape for r in layout}, expected)]
    for name, (_, dt, _) in sorted(found.items()):
        mod_key = checkpoint_to_module_name(name)
        if mod_key in state and st.torch_dtype_of(dt).is_floating_point != state[mod_key].is_floating_point():
            problems.append(f"dtype kind mismatch: {name}: checkpoint {dt}, model {state[mod_key].dtype}")
    if problems:
        raise CheckpointMismatch(_format_problems(f"checkpoint {folder_or_file} does not fit the model",
                                                  problems))
    by_file: Dict[str, List[str]] = {}
    for name, (path, _, _) in found.items():
        by_file.setdefault(path, []).append(name)
    with torch.no_grad():
        for path in sorted(by_file):
            tensors = st.load_file(path, by_file[path])
            for name, t in tensors.items():
                dst = state[checkpoint_to_module_name(name)]
                dst.copy_(t.to(dtype=dst.dtype))
            del tensors


def _random_tensor(shape: Shape, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=gen, dtype=torch.float32) * 0.02).to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    return torch.randint(0, 100, shape, generator=gen).to(dtype)


def write_synthetic_checkpoint(layout_rows: Sequence[LayoutRow], folder: str, seed: int = 0,
                               dtype: Optional[torch.dtype] = torch.bfloat16,
                               max_shard_bytes: Optional[int] = 2 * 1024 ** 3) -> List[str]:
    """Write a random checkpoint with the names and shapes of ``layout_rows`` into ``folder``.

    ``dtype`` None keeps each row's own dtype. Tensors are generated one shard at a time (memory
    stays near one shard). With ``max_shard_bytes`` None or large enough for everything, one
    ``model.safetensors`` is written; otherwise shards and ``model.safetensors.index.json``.
    Returns the written safetensors paths.
    """
    os.makedirs(folder, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    dts = {r.name: (dtype if dtype is not None else st.torch_dtype_of(r.dtype)) for r in layout_rows}
    shapes = {r.name: tuple(r.shape) for r in layout_rows}
    sizes = {k: int(torch.Size(shapes[k]).numel()) * torch.empty((), dtype=dts[k]).element_size()
             for k in shapes}
    total = sum(sizes.values())
    meta = {"format": "pt", "synthetic": f"seed={seed}"}
    if max_shard_bytes is None or total <= max_shard_bytes:
        groups = [sorted(shapes)]
    else:
        groups = st.plan_shards(sizes, max_shard_bytes)
    paths: List[str] = []
    weight_map: Dict[str, str] = {}
    for i, names in enumerate(groups):
        fname = st.SINGLE_NAME if len(groups) == 1 else st.shard_file_name(i, len(groups))
        tensors = {k: _random_tensor(shapes[k], dts[k], gen) for k in names}
        st.save_file(tensors, os.path.join(folder, fname), meta)
        del tensors
        weight_map.update({k: fname for k in names})
        paths.append(os.path.join(folder, fname))
    if len(groups) > 1:
        st.write_index(folder, weight_map, total)
    return paths


def check_folder(folder_or_file: str, rows: Optional[Sequence[LayoutRow]] = None) -> List[str]:
    """Compare a checkpoint's headers with the layout table; return the problems (no data read)."""
    table = rows if rows is not None else read_tsv(LAYOUT_TSV)
    found = checkpoint_layout(folder_or_file)
    return diff_layouts({r.name: r.shape for r in table}, {k: v[2] for k, v in found.items()})


def main(argv: Sequence[str]) -> int:
    """CLI entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description="UniBiomed checkpoint tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("synth", help="write a random checkpoint of the released layout")
    sp.add_argument("outdir")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--shard-mb", type=int, default=2048, help="max shard size in MiB (0: one file)")
    sp.add_argument("--layout", default=LAYOUT_TSV)
    cp = sub.add_parser("check", help="check a checkpoint's headers against the layout table")
    cp.add_argument("folder")
    cp.add_argument("--layout", default=LAYOUT_TSV)
    args = ap.parse_args(list(argv))
    rows = read_tsv(args.layout)
    if args.cmd == "synth":
        shard = None if args.shard_mb == 0 else args.shard_mb * 1024 * 1024
        paths = write_synthetic_checkpoint(rows, args.outdir, seed=args.seed, max_shard_bytes=shard)
        print(f"wrote {len(rows)} tensors in {len(paths)} file(s) to {args.outdir}")
        return 0
    found = checkpoint_layout(args.folder)
    problems = diff_layouts({r.name: r.shape for r in rows}, {k: v[2] for k, v in found.items()})
    dtypes: Dict[str, int] = {}
    for _, dt, _ in found.values():
        dtypes[dt] = dtypes.get(dt, 0) + 1
    print(f"{args.folder}: {len(found)} tensors, dtypes {dtypes}")
    if problems:
        print(_format_problems("checkpoint vs layout table", problems))
        return 1
    print("headers match the layout table")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
