"""Exact attention flow: one compiled max-flow per (target, input token), with pruning and reuse.

The network (Abnar & Zuidema 2020)
----------------------------------
Nodes are ``(l, p)`` for layer ``l = 0..L`` and position ``p`` (``l = 0`` are the input tokens).
Edge ``(l+1, k) -> (l, i)`` has capacity ``M[l, k, i]``, where ``M`` are the residual-mixed,
head-fused, row-renormalised matrices of :func:`attnwidget.rollout.mixed_attention`. The flow of
target ``t`` to token ``j`` is the maximum flow from the source ``(L, t)`` to the sink ``(0, j)``.

Algorithm (per target ``t``, per sink ``j``)
--------------------------------------------
1. **Pruning.** Only nodes that the source reaches *and* that reach the sink can carry flow, so the
   problem is restricted to them (for causal attention this is positions ``j..t`` on every layer).
   Reachability is one boolean vector-matrix product per layer for the source side and one boolean
   matrix product per layer for all sinks at once (skipped when every layer is fully dense or
   fully lower triangular, where the answer is known). The other layer-0 tokens are dropped: they
   have no outgoing edges, so they never lie on a source-sink path.
2. **Dinic's algorithm in float64** (compiled with numba, the ``flow`` extra) on that sub-network,
   read in place from the dense ``[L, n, n]`` capacities: arcs are enumerated from the relevant
   position lists, only edges that carried flow are written, and only those are cleared before the
   next sink, so no per-sink graph is built. The first level graph needs no search: it is the layering itself.
3. **Certified early stop.** Two cuts are known for free: the source's out-capacity and the sink's
   in-capacity (both restricted to the relevant nodes). As soon as the flow found reaches the
   smaller of them (to a relative 1e-12), it is optimal and the sink is done; in practice most sinks
   finish inside the first blocking flow.

Why the result is exact
-----------------------
Dinic's algorithm terminates with a maximum flow for real capacities (the source-sink distance in the
residual graph grows every phase, and each augmentation saturates an arc: residuals are stored so
that the bottleneck arc is set to exactly its capacity or exactly zero). At termination no augmenting
path exists, so the residual-reachable set is a cut whose capacity equals the flow (max-flow min-cut);
when the early stop fires instead, the flow equals a cut's capacity, which proves optimality the same
way. Pruning removes only nodes on no source-sink path, which changes no flow value. The only error
is float64 rounding of the additions (about 1e-15), plus at most 1e-12 relative from the early stop.

Without numba
-------------
The solver walks the network arc by arc. Compiled, that already takes seconds (about 4 s for 512
tokens x 30 layers); a Python loop per arc would multiply it by the interpreter's cost per
operation, so without numba the flow is refused rather than left to run for hours: importing this
module raises :class:`~attnwidget.errors.MissingExtraError`, which names
``pip install "attnwidget[flow]"``. Only computing a flow imports it, never ``import attnwidget``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from ._optional import require

if TYPE_CHECKING:
    from ._progress import ProgressBar

njit = require("numba", "the exact attention flow (attention_flow)").njit

_EARLY_STOP_RTOL = 1e-12


def reach_to_sinks(M: np.ndarray) -> np.ndarray:
    """``B[l, p, j]`` (bool ``[L+1, n, n]``): node ``(l, p)`` has a positive-capacity path to ``(0, j)``."""
    L, n, _ = M.shape
    S = M > 0
    B = np.empty((L + 1, n, n), dtype=bool)
    B[0] = np.eye(n, dtype=bool)
    full = np.ones((n, n), dtype=bool)
    tril = np.tril(full)
    # Fast paths: products of all-ones (or all lower-triangular with a full triangle) patterns.
    if all(np.array_equal(S[l], full) for l in range(L)):
        B[1:] = full
        return B
    if all(np.array_equal(S[l], tril) for l in range(L)):
        B[1:] = tril
        return B
    Sf = S.astype(np.float32)
    for l in range(L):
        B[l + 1] = (Sf[l] @ B[l].astype(np.float32)) > 0
    return B


def reach_from_source(M: np.ndarray, t: int) -> np.ndarray:
    """``F[l, p]`` (bool ``[L+1, n]``): node ``(l, p)`` is reachable from the source ``(L, t)``."""
    L, n, _ = M.shape
    F = np.zeros((L + 1, n), dtype=bool)
    F[L, t] = True
    for l in range(L - 1, -1, -1):
        F[l] = (F[l + 1].astype(np.float64) @ (M[l] > 0)) > 0
    return F


@njit(cache=True, nogil=True)
def _residual_arc(M1, F1, n, L, u, v):
    """Residual capacity of the arc u -> v (down: forward edge; up: undoing flow)."""
    lu = u // n
    pu = u - lu * n
    lv = v // n
    pv = v - lv * n
    if lv == lu - 1:
        e = (lv * n + pu) * n + pv
        return M1[e] - F1[e]
    e = (lu * n + pv) * n + pu
    return F1[e]


@njit(cache=True, nogil=True)
def _bfs(M1, F1, n, L, P, cnt, lastnz, firstnz, level, queue, src, sink):
    for l in range(L + 1):
        for a in range(cnt[l]):
            level[l * n + P[l, a]] = -1
    level[src] = 0
    head = 0
    tail = 1
    queue[0] = src
    while head < tail:
        u = queue[head]
        head += 1
        if u == sink:
            continue
        if level[sink] >= 0 and level[u] >= level[sink]:
            continue
        l = u // n
        p = u - l * n
        lu = level[u] + 1
        if l >= 1:  # arcs down along unsaturated edges
            base = ((l - 1) * n + p) * n
            last = lastnz[l - 1, p]
            for a in range(cnt[l - 1]):
                q = P[l - 1, a]
                if q > last:
                    break
                v = (l - 1) * n + q
                if level[v] < 0 and M1[base + q] - F1[base + q] > 0.0:
                    level[v] = lu
                    queue[tail] = v
                    tail += 1
        if 1 <= l and l + 1 < L:  # arcs up along edges that carry flow
            first = firstnz[l, p]
            for a in range(cnt[l + 1]):
                k = P[l + 1, a]
                if k < first:
                    continue
                v = (l + 1) * n + k
                if level[v] < 0 and F1[(l * n + k) * n + p] > 0.0:
                    level[v] = lu
                    queue[tail] = v
                    tail += 1
    return level[sink] >= 0


@njit(cache=True, nogil=True)
def _blocking_flow(M1, F1, n, L, P, cnt, lastnz, firstnz, level, ptr, path, touched, nt,
                   src, sink, total, stop):
    """Augment along level-graph paths until blocked or ``total >= stop``; returns (total, nt)."""
    depth = 0
    path[0] = src
    while True:
        u = path[depth]
        if u == sink:
            d = np.inf
            for a in range(depth):
                r = _residual_arc(M1, F1, n, L, path[a], path[a + 1])
                if r < d:
                    d = r
            cut = -1
            for a in range(depth):
                x = path[a]
                y = path[a + 1]
                lx = x // n
                px = x - lx * n
                ly = y // n
                py = y - ly * n
                if ly == lx - 1:
                    e = (ly * n + px) * n + py
                    old = F1[e]
                    if M1[e] - old <= d:
                        F1[e] = M1[e]
                        if cut < 0:
                            cut = a
                    else:
                        F1[e] = old + d
                    if old == 0.0:
                        if nt[0] < touched.shape[0]:
                            touched[nt[0]] = e
                        nt[0] += 1
                else:
                    e = (lx * n + py) * n + px
                    if F1[e] <= d:
                        F1[e] = 0.0
                        if cut < 0:
                            cut = a
                    else:
                        F1[e] -= d
            total += d
            if total >= stop:
                return total
            depth = cut if cut >= 0 else 0
            continue
        l = u // n
        p = u - l * n
        ndown = cnt[l - 1] if l >= 1 else 0
        nup = cnt[l + 1] if (1 <= l and l + 1 < L) else 0
        want = level[u] + 1
        found = -1
        while ptr[u] < ndown + nup:
            a = ptr[u]
            if a < ndown:
                q = P[l - 1, a]
                if q > lastnz[l - 1, p]:
                    ptr[u] = ndown
                    continue
                v = (l - 1) * n + q
                if level[v] == want:
                    e = ((l - 1) * n + p) * n + q
                    if M1[e] - F1[e] > 0.0:
                        found = v
                        break
            else:
                k = P[l + 1, a - ndown]
                v = (l + 1) * n + k
                if level[v] == want and k >= firstnz[l, p] and F1[(l * n + k) * n + p] > 0.0:
                    found = v
                    break
            ptr[u] = a + 1
        if found >= 0:
            depth += 1
            path[depth] = found
        else:
            level[u] = -1
            if depth == 0:
                return total
            depth -= 1
            ptr[path[depth]] += 1


@njit(cache=True, nogil=True)
def _flow_row(M, t, F, B, lastnz, firstnz, flow, j0, j1, out, phases):
    """Maximum flow from ``(L, t)`` to the sinks ``(0, j)``, ``j0 <= j < j1``, into ``out`` / ``phases``.
    ``flow``: float64 ``[L * n * n]`` zeros (left zero again)."""
    L, n, _ = M.shape
    M1 = M.ravel()
    F1 = flow
    level = np.full((L + 1) * n, -1, dtype=np.int64)
    ptr = np.zeros((L + 1) * n, dtype=np.int64)
    queue = np.empty((L + 1) * n, dtype=np.int64)
    path = np.empty((L + 1) * n + 1, dtype=np.int64)
    touched = np.empty(min(L * n * n, 1 << 22), dtype=np.int64)
    nt = np.zeros(1, dtype=np.int64)
    P = np.empty((L + 1, n), dtype=np.int64)
    cnt = np.zeros(L + 1, dtype=np.int64)
    src = L * n + t
    for j in range(j0, j1):
        if not B[L, t, j]:
            continue
        # relevant positions per layer: reached from the source and reaching the sink
        for l in range(L + 1):
            c = 0
            for p in range(n):
                if F[l, p] and B[l, p, j]:
                    P[l, c] = p
                    c += 1
            cnt[l] = c
        sink = j
        ub_src = 0.0
        for a in range(cnt[L - 1]):
            ub_src += M[L - 1, t, P[L - 1, a]]
        ub_sink = 0.0
        for a in range(cnt[1]):
            ub_sink += M[0, P[1, a], j]
        ub = min(ub_src, ub_sink)
        stop = ub * (1.0 - 1e-12)
        for l in range(L + 1):  # first level graph = the layering
            for a in range(cnt[l]):
                level[l * n + P[l, a]] = L - l
        total = 0.0
        nt[0] = 0
        ph = 0
        while True:
            if ph > 0 and not _bfs(M1, F1, n, L, P, cnt, lastnz, firstnz, level, queue, src, sink):
                break
            ph += 1
            for l in range(L + 1):
                for a in range(cnt[l]):
                    ptr[l * n + P[l, a]] = 0
            total = _blocking_flow(M1, F1, n, L, P, cnt, lastnz, firstnz, level, ptr, path,
                                   touched, nt, src, sink, total, stop)
            if total >= stop:
                break
        out[j] = min(total, ub)
        phases[j] = ph
        # clear the flow for the next sink
        if nt[0] <= touched.shape[0]:
            for a in range(nt[0]):
                F1[touched[a]] = 0.0
        else:
            flow[:] = 0.0


def _nonzero_bounds(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lastnz[l, k]``: last column > 0 in row k; ``firstnz[l, i]``: first row > 0 in column i."""
    S = M > 0
    n = M.shape[-1]
    any_row = S.any(axis=2)
    lastnz = np.where(any_row, n - 1 - np.argmax(S[:, :, ::-1], axis=2), -1)
    any_col = S.any(axis=1)
    firstnz = np.where(any_col, np.argmax(S, axis=1), n)
    return lastnz.astype(np.int64), firstnz.astype(np.int64)


#: Sinks per compiled call: between calls the progress bar moves (a call is about a second at 2048).
SINKS_PER_CALL = 64


@overload
def flow_rows(M: np.ndarray, targets: Iterable[int], *, return_phases: Literal[False] = False,
              progress: ProgressBar | None = None) -> np.ndarray: ...
@overload
def flow_rows(M: np.ndarray, targets: Iterable[int], *, return_phases: Literal[True],
              progress: ProgressBar | None = None) -> tuple[np.ndarray, np.ndarray]: ...
def flow_rows(M: np.ndarray, targets: Iterable[int], *, return_phases: bool = False,
              progress: ProgressBar | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Exact attention flow for mixed matrices ``M`` (float64 ``[L, n, n]``) and target positions.

    Returns float64 ``[len(targets), n]``; entry ``[r, j]`` is the max flow from ``(L, targets[r])``
    to ``(0, j)``. With ``return_phases`` also the number of Dinic phases used per entry.
    ``progress``: a tqdm-like bar, advanced by one per sink.
    """
    M = np.ascontiguousarray(M, dtype=np.float64)
    B = reach_to_sinks(M)
    lastnz, firstnz = _nonzero_bounds(M)
    L, n, _ = M.shape
    flow = np.zeros(L * n * n)
    rows, phases = [], []
    for t in targets:
        F = reach_from_source(M, int(t))
        vals, ph = np.zeros(n), np.zeros(n, dtype=np.int64)
        for j0 in range(0, n, SINKS_PER_CALL):
            j1 = min(n, j0 + SINKS_PER_CALL)
            _flow_row(M, int(t), F, B, lastnz, firstnz, flow, j0, j1, vals, ph)
            if progress is not None:
                progress.update(j1 - j0)
        rows.append(vals)
        phases.append(ph)
    out = np.stack(rows) if rows else np.zeros((0, M.shape[-1]))
    if return_phases:
        return out, np.stack(phases) if phases else np.zeros((0, M.shape[-1]), dtype=np.int64)
    return out
