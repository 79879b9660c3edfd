"""Synthetic widget state for the browser tests (numpy, base64 markers the harness revives)."""

from __future__ import annotations

import base64
import functools

import numpy as np

MALICIOUS_IMG = "<img src=x onerror=window.__pwned=1>"
MALICIOUS_SCRIPT = "</script><script>window.__pwned=1</script>"


def wire(array: np.ndarray) -> dict:
    """A numpy array as the harness' marker for a wire dict (base64 bytes)."""
    array = np.ascontiguousarray(array)
    return {"__wire": True, "b64": base64.b64encode(array.tobytes()).decode("ascii"),
            "dtype": str(array.dtype), "shape": list(array.shape)}


@functools.lru_cache(maxsize=1)
def _patterns(layers=3, heads=4, n=12):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(layers, heads, n, n)) * 2.0
    logits[..., np.triu(np.ones((n, n), bool), 1)] = -np.inf
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)).astype(np.float32)


def make_state(**overrides) -> dict:
    """Widget state: 12 tokens (two of them hostile), 3 layers x 4 heads, every data trait filled."""
    patterns = _patterns()
    layers, heads, n, _ = patterns.shape
    rng = np.random.default_rng(1)
    tokens = ["⟨bos⟩", "The", " cat", MALICIOUS_IMG, " on", " the", " mat", MALICIOUS_SCRIPT,
              " and", "\n", " slept", "."]
    mean = patterns[0].mean(0)
    edges = np.argwhere(mean > 0.12).astype(np.uint32)
    state = {
        "tokens": tokens, "num_layers": layers, "num_heads": heads, "is_causal": True,
        "layer": 0, "head": 0, "view": "heatmap", "hovered_token": None, "selected_tokens": [],
        "threshold": 0.0, "status": "ready",
        "grid_data": {"thumbs": wire(np.round(patterns * 255).astype(np.uint8)),
                      "layer_mean": wire(np.round(patterns.mean(1) * 255).astype(np.uint8)),
                      "color_by": wire(rng.random((layers, heads)).astype(np.float32)), "size": n},
        "heatmap_data": {"matrix": wire(np.round(patterns[0, 0] * 255).astype(np.uint8)),
                         "row0": 0, "col0": 0, "n_rows": n, "n_cols": n},
        "lines_data": {"weights": wire(patterns[0, :, 5, :].astype(np.float16)), "token": 5,
                       "direction": "from", "heads": list(range(heads))},
        "graph_data": {"pos": wire(rng.uniform(-1, 1, (n, 2)).astype(np.float32)), "edges": wire(edges),
                       "weights": wire(mean[edges[:, 0], edges[:, 1]].astype(np.float32))},
        "rollout_data": {"values": wire(mean[-1].astype(np.float32)),
                         "flow": wire(np.sqrt(mean[-1]).astype(np.float32)), "row": n - 1},
        "text_data": {"values": wire(patterns[0, 0, n - 1].astype(np.float32)), "token": n - 1,
                      "source": "attention", "note": f"attention of token {n - 1}, layer 0, head 0"},
    }
    state.update(overrides)
    return state


def image_state(values: np.ndarray | None = None, token: int = 0, rows: int = 3, cols: int = 4) -> dict:
    """Overrides of make_state for the image view: a 48 x 64 picture, [CLS] + rows x cols patch tokens,
    and the focused token's row over the patches (``values``, default uniform) and over [CLS]."""
    y, x = np.mgrid[0:48, 0:64]
    picture = np.stack([x * 4, y * 5, np.full_like(x, 96)], axis=-1).astype(np.uint8)
    values = np.full((rows, cols), 1.0 / (rows * cols + 1), np.float32) if values is None else values
    tokens = ["[CLS]"] + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
    return {"tokens": tokens, "view": "image", "is_causal": False,
            "views": ["heatmap", "text", "lines", "graph", "rollout", "image"],
            "image": {"picture": wire(picture), "grid": [rows, cols], "patch_start": 1},
            "image_data": image_row(values, token)}


def image_row(values: np.ndarray, token: int, others=(0.1,), source: str = "attention") -> dict:
    """An image_data value: ``values`` [rows, cols] over the patches, ``others`` over [CLS]."""
    return {"token": token, "values": wire(np.asarray(values, np.float32)),
            "others": wire(np.asarray(others, np.float32)), "source": source, "note": f"{source} of token {token}"}
