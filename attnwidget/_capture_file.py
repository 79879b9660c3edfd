"""The capture file: one ``.safetensors`` file, written by ``Capture.save`` and checked by ``Capture.load``.

Loading never runs code from the file: safetensors holds raw tensors and a JSON header, and files of
other formats (a pickle, a ``torch.save`` zip) are refused from their first bytes, before anything
parses them. Everything in the header is checked against a schema and against the shapes and dtypes of
the tensors it describes before a tensor is read, so a crafted or damaged file is refused with a
:class:`~attnwidget.errors.CaptureFileError` that names the field, what it should be and what is there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from ._checks import is_int as _int
from ._recorder import QKRecord, WeightsRecord
from .errors import ArgumentTypeError, CaptureFileError

FORMAT_VERSION = 1
_FLOATS = ("F16", "BF16", "F32", "F64")
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header
_REQUIRED = ("format", "tokens", "text", "model_name", "is_causal", "num_heads", "layers", "num_masks")


def save(cap, path) -> Path:
    """Write ``cap`` to one ``.safetensors`` file (tensors plus a JSON description in the header)."""
    from safetensors.torch import save_file

    tensors, layers = {}, []
    for i, r in enumerate(cap._records):
        if isinstance(r, WeightsRecord):
            tensors[f"weights.{i}"] = r.weights.contiguous()
            layers.append({"kind": "weights", "name": r.name})
            continue
        tensors[f"query.{i}"] = r.query.contiguous()
        tensors[f"key.{i}"] = r.key.contiguous()
        if r.sinks is not None:
            tensors[f"sinks.{i}"] = r.sinks.contiguous()
        layers.append({"kind": "qk", "name": r.name, "mask": r.mask, "causal": r.causal,
                       "scaling": r.scaling, "softcap": r.softcap})
    for i, m in enumerate(cap._masks):
        tensors[f"mask.{i}"] = m.contiguous()
    tensors["token_ids"] = torch.from_numpy(cap.token_ids.copy())
    tensors["offsets"] = torch.from_numpy(cap.offsets.copy())
    flags = np.stack([cap.special, cap.generated, cap.partial]).astype(np.uint8)
    tensors["flags"] = torch.from_numpy(flags)
    meta = {"format": FORMAT_VERSION, "tokens": cap.tokens, "text": cap.text,
            "model_name": cap.model_name, "is_causal": cap.is_causal,
            "num_heads": cap.num_heads, "layers": layers, "num_masks": len(cap._masks)}
    path = Path(path)
    save_file(tensors, str(path), metadata={"attnwidget": json.dumps(meta, ensure_ascii=False)})
    return path


def load(cls, path):
    """Read a file written by :func:`save` into ``cls`` (a Capture), checking all of it first."""
    from safetensors import safe_open

    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"Capture.load expects a file path (str or Path); got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no capture file at {path}; write one with Capture.save(path)")
    _check_container(path)
    try:
        with safe_open(path, framework="pt") as f:
            meta = _metadata(path, f.metadata())
            shapes = {name: (f.get_slice(name).get_dtype(), tuple(f.get_slice(name).get_shape()))
                      for name in f.keys()}
            _check_layout(path, meta, shapes)
            records = [_record(path, f, i, layer, meta) for i, layer in enumerate(meta["layers"])]
            masks = [_finite(path, f"mask.{i}", f.get_tensor(f"mask.{i}"), allow=-math.inf)
                     for i in range(meta["num_masks"])]
            token_ids = f.get_tensor("token_ids").numpy()
            offsets = f.get_tensor("offsets").numpy()
            flags = f.get_tensor("flags").numpy()
    except CaptureFileError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file: say so, in our words
        raise CaptureFileError(
            f"{path} could not be read as an attnwidget capture: {type(error).__name__}: {error}. "
            "The file is damaged or not a capture; write a new one with Capture.save(path)."
        ) from None
    if (token_ids < 0).any():
        raise CaptureFileError(f"{path}: token_ids must be non-negative; found {int(token_ids.min())}.")
    if ((offsets < 0) | (offsets[:, :1] > offsets[:, 1:])).any():
        raise CaptureFileError(f"{path}: offsets must be non-negative [start, end] pairs with start <= end.")
    if not np.isin(flags, (0, 1)).all():
        raise CaptureFileError(f"{path}: flags must be 0 or 1.")
    flags = flags.astype(bool)
    return cls(records=records, masks=masks, token_ids=token_ids, tokens=meta["tokens"], offsets=offsets,
               special=flags[0], generated=flags[1], partial=flags[2], text=meta["text"],
               model_name=meta["model_name"], is_causal=meta["is_causal"], num_heads=meta["num_heads"])


def _check_container(path: str) -> None:
    """Refuse pickles, torch.save zips and anything else that is not safetensors, from the first bytes."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(9)
    header = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if len(head) == 9 and header <= _MAX_HEADER and 8 + header <= size and head[8:9] == b"{":
        return  # the shape of a safetensors file; its contents are checked next
    if head[:2] == b"PK":
        raise CaptureFileError(
            f"{path} is a zip archive (what torch.save writes), not a capture. attnwidget reads only the "
            ".safetensors files Capture.save writes, and never unpickles: nothing in the file was run."
        )
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CaptureFileError(
            f"{path} looks like a Python pickle, not a capture. attnwidget never unpickles files (a pickle "
            "can run code); save captures with Capture.save(path)."
        )
    if len(head) < 9:
        raise CaptureFileError(f"{path} is {size} bytes: too short to be a safetensors capture.")
    raise CaptureFileError(
        f"{path} is not a safetensors file (its first 8 bytes should give the length of a JSON header "
        f"inside the file; they give {header} for a file of {size} bytes). Write captures with "
        "Capture.save(path); nothing in the file was run."
    )


def _metadata(path: str, raw_meta) -> dict:
    raw = (raw_meta or {}).get("attnwidget")
    if raw is None:
        raise CaptureFileError(f"{path} is a safetensors file but not an attnwidget capture "
                               "(its header has no 'attnwidget' entry)")
    try:
        meta = json.loads(raw)
    except RecursionError:
        raise CaptureFileError(f"{path}: the capture description is nested too deeply to be one.") from None
    except ValueError as error:
        raise CaptureFileError(f"{path}: the capture description is not valid JSON ({error}).") from None
    if not isinstance(meta, dict):
        raise CaptureFileError(f"{path}: the capture description must be a JSON object; got {type(meta).__name__}.")
    if meta.get("format") != FORMAT_VERSION or isinstance(meta.get("format"), bool):
        raise CaptureFileError(f"{path} has capture format {meta.get('format')!r}; expected {FORMAT_VERSION}")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CaptureFileError(f"{path}: the capture description lacks {missing}; expected the keys {list(_REQUIRED)}.")
    _expect(path, "tokens", meta["tokens"], isinstance(meta["tokens"], list)
            and all(isinstance(t, str) for t in meta["tokens"]) and len(meta["tokens"]) > 0,
            "a non-empty list of strings")
    _expect(path, "text", meta["text"], meta["text"] is None or isinstance(meta["text"], str), "a string or null")
    _expect(path, "model_name", meta["model_name"], isinstance(meta["model_name"], str), "a string")
    _expect(path, "is_causal", meta["is_causal"], isinstance(meta["is_causal"], bool), "true or false")
    _expect(path, "num_heads", meta["num_heads"], _int(meta["num_heads"]) and meta["num_heads"] >= 1,
            "an int >= 1")
    _expect(path, "num_masks", meta["num_masks"], _int(meta["num_masks"]) and meta["num_masks"] >= 0,
            "an int >= 0")
    _expect(path, "layers", meta["layers"], isinstance(meta["layers"], list) and len(meta["layers"]) > 0
            and all(isinstance(x, dict) for x in meta["layers"]), "a non-empty list of objects")
    for i, layer in enumerate(meta["layers"]):
        where = f"layers[{i}]"
        _expect(path, f"{where}.kind", layer.get("kind"), layer.get("kind") in ("qk", "weights"), "'qk' or 'weights'")
        _expect(path, f"{where}.name", layer.get("name"), isinstance(layer.get("name"), str), "a string")
        if layer["kind"] == "weights":
            continue
        mask = layer.get("mask")
        _expect(path, f"{where}.mask", mask, _int(mask) and -1 <= mask < meta["num_masks"],
                f"an int in -1..{meta['num_masks'] - 1} (-1: no mask)")
        _expect(path, f"{where}.causal", layer.get("causal"), isinstance(layer.get("causal"), bool), "true or false")
        scaling = layer.get("scaling")
        _expect(path, f"{where}.scaling", scaling, _real(scaling) and math.isfinite(scaling) and scaling > 0,
                "a finite number > 0")
        softcap = layer.get("softcap")
        _expect(path, f"{where}.softcap", softcap,
                softcap is None or (_real(softcap) and math.isfinite(softcap) and softcap > 0),
                "null or a finite number > 0")
    return meta


def _check_layout(path: str, meta: dict, shapes: dict) -> int:
    """Check every tensor the description names against it; return the token count."""
    n = len(meta["tokens"])
    heads = meta["num_heads"]
    need = {"token_ids": (("I64",), (n,)), "offsets": (("I64",), (n, 2)), "flags": (("U8",), (3, n))}
    for i in range(meta["num_masks"]):
        need[f"mask.{i}"] = (("BOOL",) + _FLOATS, (n, n))
    for i, layer in enumerate(meta["layers"]):
        if layer["kind"] == "weights":
            need[f"weights.{i}"] = (_FLOATS, (heads, n, n))
            continue
        q = shapes.get(f"query.{i}")
        dim = q[1][-1] if q is not None and len(q[1]) == 3 else None
        need[f"query.{i}"] = (_FLOATS, (heads, n, dim))
        k = shapes.get(f"key.{i}")
        kv = k[1][0] if k is not None and len(k[1]) == 3 and k[1][0] >= 1 and heads % k[1][0] == 0 else None
        need[f"key.{i}"] = (_FLOATS, (kv, n, dim))
        if f"sinks.{i}" in shapes:
            need[f"sinks.{i}"] = (_FLOATS, (heads,))
    for name, (dtypes, shape) in need.items():
        if name not in shapes:
            raise CaptureFileError(f"{path}: the tensor {name!r} the description needs is missing.")
        dtype, got = shapes[name]
        if dtype not in dtypes:
            raise CaptureFileError(f"{path}: tensor {name!r} has dtype {dtype}; expected one of {list(dtypes)}.")
        if any(s is None for s in shape) or got != shape or (len(got) == 3 and got[-1] == 0):
            expected = "x".join("?" if s is None else str(s) for s in shape)
            raise CaptureFileError(
                f"{path}: tensor {name!r} has shape {list(got)}; expected [{expected}] for {n} tokens and "
                f"{heads} heads, as the description says."
            )
    return n


def _record(path, f, i, layer, meta):
    if layer["kind"] == "weights":
        weights = _finite(path, f"weights.{i}", f.get_tensor(f"weights.{i}"))
        if (weights < 0).any():
            raise CaptureFileError(f"{path}: weights.{i} has negative entries; attention weights are >= 0.")
        return WeightsRecord(layer["name"], weights)
    query = _finite(path, f"query.{i}", f.get_tensor(f"query.{i}"))
    key = _finite(path, f"key.{i}", f.get_tensor(f"key.{i}"))
    sinks = _finite(path, f"sinks.{i}", f.get_tensor(f"sinks.{i}")) if f"sinks.{i}" in f.keys() else None
    return QKRecord(layer["name"], query, key, layer["mask"], layer["causal"], float(layer["scaling"]),
                    None if layer["softcap"] is None else float(layer["softcap"]), sinks)


def _finite(path: str, name: str, t: torch.Tensor, allow: float | None = None) -> torch.Tensor:
    if t.dtype.is_floating_point:
        bad = ~torch.isfinite(t)
        if allow is not None:
            bad &= t != allow
        if bad.any():
            raise CaptureFileError(f"{path}: tensor {name!r} holds NaN or infinite values; a capture holds "
                                   "finite queries, keys and weights.")
    return t


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(path: str, field: str, value, ok: bool, expected: str) -> None:
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise CaptureFileError(f"{path}: {field} must be {expected}; got {shown}.")
