"""Independent, deliberately plain dense implementations of what the pattern engine computes.

Everything here takes a whole ``[layer, head, query, key]`` float64 array and follows the formulas of
docs/metrics.md row by row, with Python loops where that is clearest. It is the oracle the engine's
fused pass (tiles, exponentials, statistics from scores) is tested against; it shares no code with
the package.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("entropy", "normalized_entropy", "sparsity", "coverage", "mean_distance", "locality",
           "focus_consistency", "sink_score", "max_weight")
ROLES = ("previous", "duplicate", "induction", "sink", "local", "broad")


def _visible(i: int, n: int, causal: bool) -> int:
    return i + 1 if causal else n


def _weights(n: int, causal: bool) -> np.ndarray:
    """Average over rows with at least two visible keys (all rows when there is none)."""
    w = np.array([1.0 if _visible(i, n, causal) >= 2 else 0.0 for i in range(n)])
    if not w.any():
        w[:] = 1.0
    return w / w.sum()


def head_metrics(p: np.ndarray, causal: bool, *, lo=0.01, hi=0.01, top_k=3) -> dict[str, float]:
    """Metrics of one head's ``[n, n]`` pattern."""
    n = p.shape[0]
    w = _weights(n, causal)
    rows = {name: np.zeros(n) for name in ("ent", "norm", "below", "above", "dist", "sink", "peak")}
    for i in range(n):
        v = _visible(i, n, causal)
        row = p[i, :v]
        nz = row[row > 0]
        ent = float(-(nz * np.log(nz)).sum())
        rows["ent"][i] = ent
        rows["norm"][i] = min(1.0, max(0.0, ent / math.log(v))) if v > 1 else 0.0
        rows["below"][i] = (row < lo).sum() / v
        rows["above"][i] = (row > hi).sum() / v
        rows["dist"][i] = float((row * np.abs(i - np.arange(v))).sum())
        rows["sink"][i] = p[i, 0]
        rows["peak"][i] = row.max()
    colmass = np.zeros(n)  # the average visible row, over the informative rows
    for i in range(n):
        colmass[:_visible(i, n, causal)] += w[i] * p[i, :_visible(i, n, causal)]
    return {
        "entropy": rows["ent"] @ w,
        "normalized_entropy": rows["norm"] @ w,
        "sparsity": rows["below"] @ w,
        "coverage": rows["above"] @ w,
        "mean_distance": rows["dist"] @ w,
        "locality": (1 / (1 + rows["dist"])) @ w,
        "focus_consistency": min(1.0, float(np.sort(colmass)[::-1][:min(top_k, n)].sum())),
        "sink_score": rows["sink"] @ w,
        "max_weight": rows["peak"] @ w,
    }


def head_roles(p: np.ndarray, causal: bool, ids, window: int = 3) -> dict[str, float]:
    """Role scores of one head's ``[n, n]`` pattern; ``ids`` the token ids (None: NaN for repeats)."""
    n = p.shape[0]
    w = _weights(n, causal)
    previous = [p[i, i - 1] for i in range(1, n)]
    local = np.zeros(n)
    for i in range(n):
        for j in range(n):
            if j == 0 or j > i and causal:
                continue
            if abs(i - j) < window:
                local[i] += p[i, j]
    dup, ind = [], []
    if ids is not None:
        for i in range(n):
            earlier = [j for j in range(i) if ids[j] == ids[i]]
            if earlier:
                dup.append(sum(p[i, j] for j in earlier))
                ind.append(sum(p[i, j + 1] for j in earlier))
    metrics = head_metrics(p, causal)
    return {
        "previous": float(np.mean(previous)) if previous else math.nan,
        "duplicate": float(np.mean(dup)) if dup else math.nan,
        "induction": float(np.mean(ind)) if ind else math.nan,
        "sink": metrics["sink_score"],
        "local": float(local @ w),
        "broad": metrics["normalized_entropy"],
    }


def all_metrics(attn: np.ndarray, causal: bool, **kw) -> dict[str, np.ndarray]:
    """``{metric: [layer, head]}`` for a ``[layer, head, n, n]`` array."""
    out = {m: np.zeros(attn.shape[:2]) for m in METRICS}
    for l in range(attn.shape[0]):
        for h in range(attn.shape[1]):
            for name, value in head_metrics(np.asarray(attn[l, h], np.float64), causal, **kw).items():
                out[name][l, h] = value
    return out


def all_roles(attn: np.ndarray, causal: bool, ids, window: int = 3) -> dict[str, np.ndarray]:
    out = {r: np.zeros(attn.shape[:2]) for r in ROLES}
    for l in range(attn.shape[0]):
        for h in range(attn.shape[1]):
            for name, value in head_roles(np.asarray(attn[l, h], np.float64), causal, ids, window).items():
                out[name][l, h] = value
    return out


def max_pool(m: np.ndarray, f: int) -> np.ndarray:
    """Max over ``f x f`` cells of a 2-D array (ragged edges: the cells that exist)."""
    rows, cols = math.ceil(m.shape[0] / f), math.ceil(m.shape[1] / f)
    out = np.zeros((rows, cols), dtype=np.float64)
    for a in range(rows):
        for b in range(cols):
            out[a, b] = m[a * f:(a + 1) * f, b * f:(b + 1) * f].max()
    return out


def tile_factor(n: int, side: int = 256) -> int:
    """Tokens per stored tile cell: ceil(n / side) rounded up to a power of two."""
    f = max(1, math.ceil(n / side))
    return 1 << (f - 1).bit_length()


def uint8_thumb(m: np.ndarray) -> np.ndarray:
    top = m.max()
    return np.round((m / top if top > 0 else m) * 255).astype(np.uint8)


def mixed(attn: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Rollout's per-layer matrices: row-normalised ``residual * I + (1 - residual) * mean over heads``."""
    n = attn.shape[-1]
    out = []
    for layer in attn:
        a = residual * np.eye(n) + (1 - residual) * np.asarray(layer, np.float64).mean(0)
        out.append(a / a.sum(-1, keepdims=True))
    return np.stack(out)


def rollout_row(attn: np.ndarray, row: int, residual: float = 0.5) -> np.ndarray:
    """Row ``row`` of ``M[top] @ ... @ M[0]``, as a product of whole matrices."""
    joint = None
    for m in mixed(attn, residual):
        joint = m if joint is None else m @ joint
    return joint[row]
