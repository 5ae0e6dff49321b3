"""Reading and writing the safetensors format, without the ``safetensors`` package.

File layout: an 8-byte little-endian unsigned header length ``N``; ``N`` bytes of UTF-8 JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``
(offsets relative to the end of the header); then the raw little-endian tensor bytes, packed
back to back with no gaps. Sharded checkpoints add ``model.safetensors.index.json``:
``{"metadata": {...}, "weight_map": {name: shard file name}}``.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import struct
import tempfile
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import torch

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's limit

# safetensors dtype name -> (numpy dtype used for the bytes, torch dtype, bytes per element)
_DTYPES: Dict[str, Tuple[np.dtype, torch.dtype, int]] = {
    "F64": (np.dtype("<f8"), torch.float64, 8),
    "F32": (np.dtype("<f4"), torch.float32, 4),
    "F16": (np.dtype("<f2"), torch.float16, 2),
    "BF16": (np.dtype("<u2"), torch.bfloat16, 2),  # raw bits; reinterpreted via int16
    "I64": (np.dtype("<i8"), torch.int64, 8),
    "I32": (np.dtype("<i4"), torch.int32, 4),
    "I16": (np.dtype("<i2"), torch.int16, 2),
    "I8": (np.dtype("i1"), torch.int8, 1),
    "U8": (np.dtype("u1"), torch.uint8, 1),
    "BOOL": (np.dtype("?"), torch.bool, 1),
}
_TORCH_TO_NAME: Dict[torch.dtype, str] = {v[1]: k for k, v in _DTYPES.items()}


class SafetensorsError(ValueError):
    """A malformed or inconsistent safetensors file or index."""


def dtype_itemsize(name: str) -> int:
    """Bytes per element of a safetensors dtype name."""
    if name not in _DTYPES:
        raise SafetensorsError(f"unsupported safetensors dtype {name!r}")
    return _DTYPES[name][2]


def torch_dtype_of(name: str) -> torch.dtype:
    """The torch dtype of a safetensors dtype name."""
    if name not in _DTYPES:
        raise SafetensorsError(f"unsupported safetensors dtype {name!r}")
    return _DTYPES[name][1]


def dtype_name(dtype: torch.dtype) -> str:
    """The safetensors dtype name of a torch dtype."""
    if dtype not in _TORCH_TO_NAME:
        raise SafetensorsError(f"torch dtype {dtype} has no safetensors name here")
    return _TORCH_TO_NAME[dtype]


def _read_raw_header(f, path: str, file_size: int) -> Tuple[dict, int]:
    """Read and JSON-decode the header; return (header dict, data start offset)."""
    head = f.read(8)
    if len(head) != 8:
        raise SafetensorsError(f"{path}: file too short for the 8-byte header length ({file_size} bytes)")
    (n,) = struct.unpack("<Q", head)
    if n == 0 or n > MAX_HEADER_BYTES or 8 + n > file_size:
        raise SafetensorsError(f"{path}: header length {n} is not sane for a file of {file_size} bytes")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid UTF-8 JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header JSON is not an object")
    return header, 8 + n


def read_header(path: str) -> dict:
    """Return the validated header of ``path`` (tensor entries plus optional ``__metadata__``).

    Checks: sane header length, valid JSON, known dtypes, integer shapes, byte size equal to
    prod(shape) * itemsize, offsets inside the data area, no overlaps or gaps, and that the data
    area ends exactly at the end of the file. Errors name the file and the tensor.
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header, data_start = _read_raw_header(f, path, file_size)
    data_len = file_size - data_start
    meta = header.get("__metadata__")
    if meta is not None and (not isinstance(meta, dict)
                             or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    spans: List[Tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"} or len(info) != 3:
            raise SafetensorsError(f"{path}: tensor {name!r}: entry must have dtype, shape, data_offsets")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r}: unsupported dtype {dt!r}")
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise SafetensorsError(f"{path}: tensor {name!r}: bad shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs) or not 0 <= offs[0] <= offs[1]):
            raise SafetensorsError(f"{path}: tensor {name!r}: bad data_offsets {offs!r}")
        if offs[1] > data_len:
            raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets {offs} run past the end of "
                                   f"the data area ({data_len} bytes; file truncated?)")
        want = math.prod(shape) * _DTYPES[dt][2]
        if offs[1] - offs[0] != want:
            raise SafetensorsError(f"{path}: tensor {name!r}: {offs[1] - offs[0]} bytes in the file but "
                                   f"{dt} {shape} needs {want}")
        spans.append((offs[0], offs[1], name))
    spans.sort()
    pos, prev = 0, "<header>"
    for begin, end, name in spans:
        if begin < pos:
            raise SafetensorsError(f"{path}: tensor {name!r} overlaps tensor {prev!r} "
                                   f"(starts at {begin}, previous ends at {pos})")
        if begin > pos:
            raise SafetensorsError(f"{path}: gap of {begin - pos} bytes before tensor {name!r}")
        pos, prev = end, name
    if pos != data_len:
        raise SafetensorsError(f"{path}: data area has {data_len} bytes but the tensors cover {pos}")
    return header


def tensor_entries(header: Mapping[str, object]) -> Dict[str, dict]:
    """The header without ``__metadata__``."""
    return {k: v for k, v in header.items() if k != "__metadata__"}  # type: ignore[misc]


def load_file(path: str, names: Optional[Iterable[str]] = None) -> Dict[str, torch.Tensor]:
    """Load tensors (all, or only ``names``) from ``path``.

    The file is memory-mapped and each tensor is copied once from the mapping into its own torch
    tensor, so the file is read once and the returned tensors do not keep the mapping alive.
    """
    header = read_header(path)
    entries = tensor_entries(header)
    wanted = list(entries) if names is None else list(names)
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise KeyError(f"{path}: no tensor(s) {missing[:10]}" + (" ..." if len(missing) > 10 else ""))
    out: Dict[str, torch.Tensor] = {}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        data_start = 8 + n
        if os.path.getsize(path) == data_start:  # mmap cannot map an empty data area
            return {k: torch.empty(entries[k]["shape"], dtype=torch_dtype_of(entries[k]["dtype"]))
                    for k in wanted}
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for name in wanted:
                info = entries[name]
                np_dt, t_dt, size = _DTYPES[info["dtype"]]
                begin, end = info["data_offsets"]
                count = (end - begin) // size
                arr = np.frombuffer(mm, dtype=np_dt, count=count, offset=data_start + begin)
                arr = arr.astype(np_dt.newbyteorder("="), copy=True)  # one copy, native order
                if info["dtype"] == "BF16":
                    t = torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
                else:
                    t = torch.from_numpy(arr)
                assert t.dtype == t_dt
                out[name] = t.reshape(info["shape"])
                del arr
    return out


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """Little-endian raw bytes of a tensor (bf16 via its int16 bit pattern)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        arr = t.view(torch.int16).numpy().view(np.uint16)
    else:
        arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _build_header(tensors: Mapping[str, torch.Tensor],
                  metadata: Optional[Mapping[str, str]]) -> Tuple[bytes, List[str]]:
    """Header bytes (space-padded to a multiple of 8) and the tensor order."""
    order = sorted(tensors)
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    pos = 0
    for name in order:
        t = tensors[name]
        nbytes = t.numel() * dtype_itemsize(dtype_name(t.dtype))
        header[name] = {"dtype": dtype_name(t.dtype), "shape": list(t.shape),
                        "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return raw, order


def save_file(tensors: Mapping[str, torch.Tensor], path: str,
              metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``tensors`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    raw, order = _build_header(tensors, metadata)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for name in order:
                f.write(_tensor_bytes(tensors[name]))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plan_shards(sizes: Mapping[str, int], max_shard_bytes: int) -> List[List[str]]:
    """Greedy split of tensor names (sorted) into shards of at most ``max_shard_bytes``.

    A tensor larger than the limit gets a shard of its own.
    """
    shards: List[List[str]] = []
    cur: List[str] = []
    cur_bytes = 0
    for name in sorted(sizes):
        if cur and cur_bytes + sizes[name] > max_shard_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(name)
        cur_bytes += sizes[name]
    if cur:
        shards.append(cur)
    return shards


def shard_file_name(i: int, n: int) -> str:
    """HF shard naming: ``model-00001-of-00003.safetensors``."""
    return f"model-{i + 1:05d}-of-{n:05d}.safetensors"


def write_index(folder: str, weight_map: Mapping[str, str], total_size: int,
                metadata: Optional[Mapping[str, object]] = None) -> str:
    """Write ``model.safetensors.index.json`` (atomically); return its path."""
    meta: Dict[str, object] = {"total_size": int(total_size)}
    if metadata:
        meta.update(metadata)
    body = {"metadata": meta, "weight_map": {k: weight_map[k] for k in sorted(weight_map)}}
    path = os.path.join(folder, INDEX_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(body, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def save_sharded(tensors: Mapping[str, torch.Tensor], folder: str, max_shard_bytes: int,
                 metadata: Optional[Mapping[str, str]] = None) -> List[str]:
    """Write ``tensors`` as shards plus an index into ``folder``; return the shard paths.

    With a single shard the file is still named ``model-00001-of-00001.safetensors`` and an index
    is written, as Hugging Face does when sharding was asked for.
    """
    os.makedirs(folder, exist_ok=True)
    sizes = {k: t.numel() * t.element_size() for k, t in tensors.items()}
    groups = plan_shards(sizes, max_shard_bytes)
    paths: List[str] = []
    weight_map: Dict[str, str] = {}
    for i, names in enumerate(groups):
        fname = shard_file_name(i, len(groups))
        save_file({k: tensors[k] for k in names}, os.path.join(folder, fname), metadata)
        weight_map.update({k: fname for k in names})
        paths.append(os.path.join(folder, fname))
    write_index(folder, weight_map, sum(sizes.values()))
    return paths


def read_index(path: str) -> Tuple[Dict[str, object], Dict[str, str]]:
    """Parse an index file; return (metadata, weight_map). Shard names must be plain file names."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            body = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: cannot read index: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("weight_map"), dict):
        raise SafetensorsError(f"{path}: index has no weight_map object")
    wm = body["weight_map"]
    for k, v in wm.items():
        if not isinstance(v, str) or os.path.basename(v) != v or v in ("", ".", ".."):
            raise SafetensorsError(f"{path}: tensor {k!r}: bad shard file name {v!r}")
    meta = body.get("metadata") or {}
    return dict(meta), dict(wm)


def resolve_files(folder_or_file: str) -> List[str]:
    """The safetensors file(s) of a checkpoint: a file, a folder with an index, or a folder with
    ``model.safetensors``."""
    if os.path.isfile(folder_or_file):
        return [folder_or_file]
    index = os.path.join(folder_or_file, INDEX_NAME)
    if os.path.isfile(index):
        _, wm = read_index(index)
        return [os.path.join(folder_or_file, s) for s in sorted(set(wm.values()))]
    single = os.path.join(folder_or_file, SINGLE_NAME)
    if os.path.isfile(single):
        return [single]
    raise FileNotFoundError(f"{folder_or_file}: no {SINGLE_NAME} or {INDEX_NAME}")


def read_headers(folder_or_file: str) -> Dict[str, Tuple[str, dict]]:
    """Validated headers of every file of a checkpoint: {tensor name: (file path, entry)}.

    With an index, also checks that the index and the shard headers agree (every indexed tensor
    is in its shard, no shard holds an unindexed tensor, no tensor is in two shards).
    """
    files = resolve_files(folder_or_file)
    found: Dict[str, Tuple[str, dict]] = {}
    for path in files:
        for name, info in tensor_entries(read_header(path)).items():
            if name in found:
                raise SafetensorsError(f"tensor {name!r} is in both {found[name][0]} and {path}")
            found[name] = (path, info)
    index = os.path.join(folder_or_file, INDEX_NAME)
    if os.path.isdir(folder_or_file) and os.path.isfile(index):
        _, wm = read_index(index)
        bad = [f"{k} (index: {v}, found: {os.path.basename(found[k][0]) if k in found else 'nowhere'})"
               for k, v in wm.items() if k not in found or os.path.basename(found[k][0]) != v]
        bad += [f"{k} (in {os.path.basename(found[k][0])}, not in the index)" for k in found if k not in wm]
        if bad:
            raise SafetensorsError(f"{index}: index and shards disagree for {len(bad)} tensor(s): "
                                   + "; ".join(bad[:10]))
    return found
