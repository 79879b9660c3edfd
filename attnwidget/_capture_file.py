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
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ._checks import is_int as _int
from ._position_bias import RelativeBias
from ._recorder import QKRecord, WeightsRecord
from .errors import ArgumentError, ArgumentTypeError, CaptureFileError

if TYPE_CHECKING:
    from ._types import StrPath
    from .capture import Capture
    from .seq2seq import Seq2SeqCapture

#: A tensor's safetensors dtype and shape, by name.
Shapes = dict[str, tuple[str, tuple[int, ...]]]

FORMAT_VERSION = 3  # 2: parts (encoder-decoder), key tokens, position-bias tables, images; 3: values, residual
_READABLE = (1, 2, 3)
_PARTS = ("encoder", "decoder", "cross")
_FLOATS = ("F16", "BF16", "F32", "F64")
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header
_REQUIRED = ("tokens", "text", "model_name", "is_causal", "num_heads", "layers", "num_masks")  # of each part


def save(cap: Capture, path: StrPath) -> Path:
    """Write ``cap`` to one ``.safetensors`` file (tensors plus a JSON description in the header)."""
    tensors, meta = _part(cap, "")
    return _write(path, tensors, {"format": FORMAT_VERSION, "kind": "capture", **meta})


def save_parts(cap: Seq2SeqCapture, path: StrPath) -> Path:
    """Write an encoder-decoder capture: each part's tensors under its own prefix ("encoder/"...)."""
    tensors: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, Any]] = {}
    seen = set()
    for name, part in cap.parts.items():
        part_tensors, parts[name] = _part(part, f"{name}/")
        for key, t in part_tensors.items():  # the parts share their masks and bias tables: one copy each
            tensors[key] = t.clone() if t.data_ptr() in seen else t
            seen.add(t.data_ptr())
    return _write(path, tensors, {"format": FORMAT_VERSION, "kind": "seq2seq", "parts": parts})


def _write(path: StrPath, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    save_file(tensors, str(path), metadata={"attnwidget": json.dumps(meta, ensure_ascii=False)})
    return path


def _part(cap: Capture, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors (names under ``prefix``) and the description of one Capture."""
    tensors: dict[str, torch.Tensor] = {}
    layers: list[dict[str, Any]] = []
    for i, r in enumerate(cap._records):
        if isinstance(r, WeightsRecord):
            tensors[f"{prefix}weights.{i}"] = r.weights.contiguous()
            layers.append({"kind": "weights", "name": r.name})
            continue
        tensors[f"{prefix}query.{i}"] = r.query.contiguous()
        tensors[f"{prefix}key.{i}"] = r.key.contiguous()
        if r.sinks is not None:
            tensors[f"{prefix}sinks.{i}"] = r.sinks.contiguous()
        layer: dict[str, Any] = {"kind": "qk", "name": r.name, "mask": r.mask, "causal": r.causal,
                 "scaling": r.scaling, "softcap": r.softcap, "bias": r.bias}
        if r.value is not None and r.out_proj is not None:  # capture(..., values=True)
            tensors[f"{prefix}value.{i}"] = r.value.contiguous()
            tensors[f"{prefix}out_proj.{i}"] = r.out_proj.contiguous()
            if r.out_bias is not None:
                tensors[f"{prefix}out_bias.{i}"] = r.out_bias.contiguous()
            layer["values"] = True
        layers.append(layer)
    for i, m in enumerate(cap._masks):
        tensors[f"{prefix}mask.{i}"] = m.contiguous()
    for i, b in enumerate(cap._biases):
        tensors[f"{prefix}bias.{i}"] = b.weight.contiguous()
    tensors[f"{prefix}token_ids"] = torch.from_numpy(cap.token_ids.copy())
    tensors[f"{prefix}offsets"] = torch.from_numpy(cap.offsets.copy())
    flags = np.stack([cap.special, cap.generated, cap.partial]).astype(np.uint8)
    tensors[f"{prefix}flags"] = torch.from_numpy(flags)
    meta: dict[str, Any] = {
            "tokens": cap.tokens, "text": cap.text, "model_name": cap.model_name, "is_causal": cap.is_causal,
            "num_heads": cap.num_heads, "layers": layers, "num_masks": len(cap._masks),
            "biases": [{"bidirectional": b.bidirectional, "num_buckets": b.num_buckets,
                        "max_distance": b.max_distance} for b in cap._biases]}
    if cap.key_tokens is not cap.tokens:
        meta["key_tokens"] = cap.key_tokens
        tensors[f"{prefix}key_token_ids"] = torch.from_numpy(cap.key_token_ids.copy())
    residual = getattr(cap, "residual", None)
    if residual is not None:
        tensors[f"{prefix}residual"] = residual.contiguous()
        meta["residual"] = True
        if cap.residual_checks is not None:
            meta["residual_checks"] = cap.residual_checks
    if cap.image is not None:
        tensors[f"{prefix}image"] = torch.from_numpy(cap.image.copy())
        meta["patch_grid"] = list(cast("tuple[int, int]", cap.patch_grid))  # a picture comes with its grid
        meta["patch_start"] = cap.patch_start
    return tensors, meta


def load(cls: type[Capture], path: StrPath) -> Capture | Seq2SeqCapture:
    """Read a file written by :func:`save` (a Capture, into ``cls``) or :func:`save_parts` (an
    encoder-decoder capture), checking all of it first."""
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
            if meta.get("kind") == "seq2seq":
                parts = {name: _load_part(cls, path, f, shapes, meta["parts"][name], f"{name}/")
                         for name in _PARTS}
            else:
                capture = _load_part(cls, path, f, shapes, meta, "")
    except CaptureFileError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file: say so, in our words
        raise CaptureFileError(
            f"{path} could not be read as an attnwidget capture: {type(error).__name__}: {error}. "
            "The file is damaged or not a capture; write a new one with Capture.save(path)."
        ) from None
    if meta.get("kind") != "seq2seq":
        return capture
    from .seq2seq import Seq2SeqCapture

    try:
        return Seq2SeqCapture(**parts)
    except ArgumentError as error:
        raise CaptureFileError(f"{path}: the parts do not fit together: {error}") from None


def _load_part(cls: type[Capture], path: str, f: Any, shapes: Shapes, meta: dict[str, Any], prefix: str) -> Capture:
    """One Capture from the tensors under ``prefix``, checked against its description ``meta``."""
    _check_layout(path, meta, shapes, prefix)
    records = [_record(path, f, prefix, i, layer) for i, layer in enumerate(meta["layers"])]
    masks = [_finite(path, f"{prefix}mask.{i}", f.get_tensor(f"{prefix}mask.{i}"), allow=-math.inf)
             for i in range(meta["num_masks"])]
    biases = [RelativeBias(_finite(path, f"{prefix}bias.{i}", f.get_tensor(f"{prefix}bias.{i}")).float(),
                           b["bidirectional"], b["num_buckets"], b["max_distance"])
              for i, b in enumerate(meta.get("biases", []))]
    token_ids = f.get_tensor(f"{prefix}token_ids").numpy()
    offsets = f.get_tensor(f"{prefix}offsets").numpy()
    flags = f.get_tensor(f"{prefix}flags").numpy()
    key_ids = f.get_tensor(f"{prefix}key_token_ids").numpy() if "key_tokens" in meta else None
    image = f.get_tensor(f"{prefix}image").numpy() if "patch_grid" in meta else None
    for name, ids in (("token_ids", token_ids), ("key_token_ids", key_ids)):
        if ids is not None and (ids < 0).any():
            raise CaptureFileError(f"{path}: {prefix}{name} must be non-negative; found {int(ids.min())}.")
    if ((offsets < 0) | (offsets[:, :1] > offsets[:, 1:])).any():
        raise CaptureFileError(f"{path}: offsets must be non-negative [start, end] pairs with start <= end.")
    if not np.isin(flags, (0, 1)).all():
        raise CaptureFileError(f"{path}: flags must be 0 or 1.")
    flags = flags.astype(bool)
    return cls(records=records, masks=masks, biases=biases, token_ids=token_ids, tokens=meta["tokens"],
               offsets=offsets, special=flags[0], generated=flags[1], partial=flags[2], text=meta["text"],
               model_name=meta["model_name"], is_causal=meta["is_causal"], num_heads=meta["num_heads"],
               key_tokens=meta.get("key_tokens"), key_token_ids=key_ids, image=image,
               patch_grid=meta.get("patch_grid"), patch_start=meta.get("patch_start", 0),
               residual=_finite(path, f"{prefix}residual", f.get_tensor(f"{prefix}residual"))
               if meta.get("residual") is True else None, residual_checks=meta.get("residual_checks"))


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


def _metadata(path: str, raw_meta: dict[str, str] | None) -> dict[str, Any]:
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
    if meta.get("format") not in _READABLE or isinstance(meta.get("format"), bool):
        raise CaptureFileError(f"{path} has capture format {meta.get('format')!r}; expected one of {list(_READABLE)}")
    kind = meta.get("kind", "capture")
    _expect(path, "kind", kind, kind in ("capture", "seq2seq"), "'capture' or 'seq2seq'")
    if kind == "seq2seq":
        parts = meta.get("parts")
        _expect(path, "parts", parts, isinstance(parts, dict) and sorted(parts) == sorted(_PARTS)
                and all(isinstance(p, dict) for p in parts.values()), f"an object with the parts {list(_PARTS)}")
        for name in _PARTS:
            _check_part(path, meta["parts"][name], f"parts.{name}.")
        return meta
    _check_part(path, meta, "")
    return meta


def _check_part(path: str, meta: dict[str, Any], where: str) -> None:
    """Check one Capture's description (every field: type and range)."""
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
    biases = meta.get("biases", [])
    _expect(path, f"{where}biases", biases, isinstance(biases, list) and all(isinstance(b, dict) for b in biases),
            "a list of objects")
    for i, b in enumerate(biases):
        num, distance = b.get("num_buckets"), b.get("max_distance")
        _expect(path, f"{where}biases[{i}].bidirectional", b.get("bidirectional"),
                isinstance(b.get("bidirectional"), bool), "true or false")
        _expect(path, f"{where}biases[{i}].num_buckets", num, _int(num) and num >= 4, "an int >= 4")
        exact = num // (4 if b["bidirectional"] else 2)
        _expect(path, f"{where}biases[{i}].max_distance", distance, _int(distance) and distance > exact,
                f"an int > {exact} (the exact buckets)")
    if "key_tokens" in meta:
        keys = meta["key_tokens"]
        _expect(path, f"{where}key_tokens", keys, isinstance(keys, list) and len(keys) > 0
                and all(isinstance(t, str) for t in keys), "a non-empty list of strings")
    if "patch_grid" in meta:
        grid, start = meta["patch_grid"], meta.get("patch_start")
        _expect(path, f"{where}patch_grid", grid, isinstance(grid, list) and len(grid) == 2
                and all(_int(g) and g >= 1 for g in grid), "[rows, cols], two ints >= 1")
        _expect(path, f"{where}patch_start", start, _int(start) and start >= 0
                and start + grid[0] * grid[1] == len(meta["tokens"]),
                f"an int: the tokens before rows x cols patches ({len(meta['tokens'])} tokens in all)")
    _expect(path, f"{where}residual", meta.get("residual", False), isinstance(meta.get("residual", False), bool),
            "true or false (residual stream recorded)")
    checks = meta.get("residual_checks")
    _expect(path, f"{where}residual_checks", checks, checks is None or (
        isinstance(checks, list) and len(checks) == len(meta["layers"]) and all(isinstance(c, bool) for c in checks)),
        "null or one true/false per layer")
    _expect(path, "layers", meta["layers"], isinstance(meta["layers"], list) and len(meta["layers"]) > 0
            and all(isinstance(x, dict) for x in meta["layers"]), "a non-empty list of objects")
    for i, layer in enumerate(meta["layers"]):
        at = f"{where}layers[{i}]"
        _expect(path, f"{at}.kind", layer.get("kind"), layer.get("kind") in ("qk", "weights"), "'qk' or 'weights'")
        _expect(path, f"{at}.name", layer.get("name"), isinstance(layer.get("name"), str), "a string")
        if layer["kind"] == "weights":
            continue
        _expect(path, f"{at}.values", layer.get("values", False), isinstance(layer.get("values", False), bool),
                "true or false (values and output projection recorded)")
        mask = layer.get("mask")
        _expect(path, f"{at}.mask", mask, _int(mask) and -1 <= mask < meta["num_masks"],
                f"an int in -1..{meta['num_masks'] - 1} (-1: no mask)")
        _expect(path, f"{at}.causal", layer.get("causal"), isinstance(layer.get("causal"), bool), "true or false")
        scaling = layer.get("scaling")
        _expect(path, f"{at}.scaling", scaling, _real(scaling) and math.isfinite(scaling) and scaling > 0,
                "a finite number > 0")
        softcap = layer.get("softcap")
        _expect(path, f"{at}.softcap", softcap,
                softcap is None or (_real(softcap) and math.isfinite(softcap) and softcap > 0),
                "null or a finite number > 0")
        bias = layer.get("bias", -1)
        _expect(path, f"{at}.bias", bias, _int(bias) and -1 <= bias < len(biases),
                f"an int in -1..{len(biases) - 1} (-1: no position bias)")


def _check_layout(path: str, meta: dict[str, Any], shapes: Shapes, prefix: str = "") -> int:
    """Check every tensor the description names against it; return the token count."""
    n = len(meta["tokens"])
    k = len(meta.get("key_tokens", meta["tokens"]))
    heads = meta["num_heads"]
    # name -> (the dtypes allowed, the shape: None where the file decides)
    need: dict[str, tuple[tuple[str, ...], tuple[int | None, ...]]] = {
        "token_ids": (("I64",), (n,)), "offsets": (("I64",), (n, 2)), "flags": (("U8",), (3, n))}
    if "key_tokens" in meta:
        need["key_token_ids"] = (("I64",), (k,))
    if "patch_grid" in meta:
        image = shapes.get(f"{prefix}image")
        size = image[1][:2] if image is not None and len(image[1]) == 3 and min(image[1][:2]) >= 1 else (None, None)
        need["image"] = (("U8",), (*size, 3))
    for i in range(meta["num_masks"]):
        m = shapes.get(f"{prefix}mask.{i}")
        per_head = m is not None and len(m[1]) == 3
        need[f"mask.{i}"] = (("BOOL",) + _FLOATS, (heads, n, k) if per_head else (n, k))
    for i, b in enumerate(meta.get("biases", [])):
        need[f"bias.{i}"] = (_FLOATS, (b["num_buckets"], heads))
    for i, layer in enumerate(meta["layers"]):
        if layer["kind"] == "weights":
            need[f"weights.{i}"] = (_FLOATS, (heads, n, k))
            continue
        q = shapes.get(f"{prefix}query.{i}")
        dim = q[1][-1] if q is not None and len(q[1]) == 3 else None
        need[f"query.{i}"] = (_FLOATS, (heads, n, dim))
        key = shapes.get(f"{prefix}key.{i}")
        kv = key[1][0] if key is not None and len(key[1]) == 3 and key[1][0] >= 1 and heads % key[1][0] == 0 else None
        need[f"key.{i}"] = (_FLOATS, (kv, k, dim))
        if f"{prefix}sinks.{i}" in shapes:
            need[f"sinks.{i}"] = (_FLOATS, (heads,))
        if layer.get("values") is True:
            value, proj = shapes.get(f"{prefix}value.{i}"), shapes.get(f"{prefix}out_proj.{i}")
            dv = value[1][-1] if value is not None and len(value[1]) == 3 and value[1][-1] >= 1 else None
            hidden = proj[1][-1] if proj is not None and len(proj[1]) == 3 and proj[1][-1] >= 1 else None
            need[f"value.{i}"] = (_FLOATS, (kv, k, dv))
            need[f"out_proj.{i}"] = (_FLOATS, (heads, dv, hidden))
            if f"{prefix}out_bias.{i}" in shapes:
                need[f"out_bias.{i}"] = (_FLOATS, (hidden,))
    if meta.get("residual") is True:
        state = shapes.get(f"{prefix}residual")
        hidden = state[1][-1] if state is not None and len(state[1]) == 3 and state[1][-1] >= 1 else None
        need["residual"] = (_FLOATS, (len(meta["layers"]) + 1, n, hidden))
    for name, (dtypes, shape) in need.items():
        name = prefix + name
        if name not in shapes:
            raise CaptureFileError(f"{path}: the tensor {name!r} the description needs is missing.")
        dtype, got = shapes[name]
        if dtype not in dtypes:
            raise CaptureFileError(f"{path}: tensor {name!r} has dtype {dtype}; expected one of {list(dtypes)}.")
        if any(s is None for s in shape) or got != shape or (len(got) == 3 and got[-1] == 0):
            expected = "x".join("?" if s is None else str(s) for s in shape)
            raise CaptureFileError(
                f"{path}: tensor {name!r} has shape {list(got)}; expected [{expected}] for {n} tokens "
                + ("" if k == n else f"attending to {k} keys ") + f"and {heads} heads, as the description says."
            )
    return n


def _record(path: str, f: Any, prefix: str, i: int, layer: dict[str, Any]) -> QKRecord | WeightsRecord:
    def tensor(name: str) -> torch.Tensor:
        return _finite(path, f"{prefix}{name}", f.get_tensor(f"{prefix}{name}"))

    if layer["kind"] == "weights":
        weights = tensor(f"weights.{i}")
        if (weights < 0).any():
            raise CaptureFileError(f"{path}: {prefix}weights.{i} has negative entries; attention weights are >= 0.")
        return WeightsRecord(layer["name"], weights)
    sinks = tensor(f"sinks.{i}") if f"{prefix}sinks.{i}" in f.keys() else None
    values = layer.get("values") is True
    return QKRecord(layer["name"], tensor(f"query.{i}"), tensor(f"key.{i}"), layer["mask"], layer["causal"],
                    float(layer["scaling"]), None if layer["softcap"] is None else float(layer["softcap"]), sinks,
                    layer.get("bias", -1), value=tensor(f"value.{i}") if values else None,
                    out_proj=tensor(f"out_proj.{i}").float() if values else None,
                    out_bias=tensor(f"out_bias.{i}").float() if values and f"{prefix}out_bias.{i}" in f.keys() else None)


def _finite(path: str, name: str, t: torch.Tensor, allow: float | None = None) -> torch.Tensor:
    if t.dtype.is_floating_point:
        bad = ~torch.isfinite(t)
        if allow is not None:
            bad &= t != allow
        if bad.any():
            raise CaptureFileError(f"{path}: tensor {name!r} holds NaN or infinite values; a capture holds "
                                   "finite queries, keys and weights.")
    return t


def _real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(path: str, field: str, value: object, ok: bool | np.bool_, expected: str) -> None:
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise CaptureFileError(f"{path}: {field} must be {expected}; got {shown}.")
