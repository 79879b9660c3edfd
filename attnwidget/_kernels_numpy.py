"""The pattern engine's kernels in numpy: the backend of the default install, where numba is absent.
See :mod:`attnwidget._kernels` for what they compute; the signatures and in-place outputs are those of
:mod:`attnwidget._kernels_numba`, so the fused pass runs either unchanged.

Why whole tiles
    A tile holds millions of weights, so no Python loop may run per weight or per row: each function
    processes a whole tile (a few MiB) in a few dozen array operations. The loops left are over heads
    (the mean, added in head order), over the ``window`` offsets of the local role and over the
    offsets inside a pooling cell. The price is memory traffic: every statistic is one more pass over
    the tile, where the compiled loops finish a row while it sits in the first-level cache, and
    numpy runs on one core. Measured on a 2-core machine, one causal layer of 12 heads x 1024 tokens:
    the kernels take about 10x numba's time on two threads (6x on one), the whole pass with its score
    products about 3x (4x at 4096 tokens).

Numerics
    ``np.exp`` instead of the compiled Cody-Waite polynomial (they agree to float32 rounding; below
    -87 numpy keeps weights under 2e-38 that the polynomial flushes to 0). Sums the compiled loops keep in
    float32 (row sums, column sums, distances) are float32 here too, but pairwise rather than in
    order, so the two backends agree to float32 rounding, not bit for bit. There is one buffer of
    column sums: :func:`num_threads` is 1, and the per-thread scratch arguments are not used.
"""

from __future__ import annotations

import numpy as np

from ._kernels import ABOVE, BELOW, DISTANCE, DUPLICATE, ENTROPY, INDUCTION, LOCAL, PEAK, PREVIOUS, SINK, TOTAL

#: Which backend this is (:func:`attnwidget._kernels.backend`); nothing to compile or warm up.
name = "numpy"
COMPILED = False
#: float32 elements of one temporary of :func:`part_proximity` (``rows x keys x hidden``): 16 MiB.
PART_ELEMENTS = 1 << 22


def num_threads() -> int:
    """One buffer of column sums: numpy's loops here run on the calling thread."""
    return 1


def _limits(r0, m, c, stop_softmax, causal):
    """``(gi [m], cs [m], ci [m])``: the rows' global indices, how many keys each softmaxes and how many
    it counts (:mod:`attnwidget._kernels`, "Visible keys")."""
    gi = np.arange(r0, r0 + m)
    cs = np.minimum(gi + 1, c) if stop_softmax else np.full(m, c)
    ci = np.minimum(gi + 1, cs) if causal else cs
    return gi, cs, ci


def _below(stop, c):
    """The bool mask ``[m, c]`` of the keys under each row's ``stop``, or None where every row has all
    ``c`` (no mask needed: a pass over the tile saved)."""
    return None if stop.min() == c else np.arange(c) < stop[:, None]


def _gather(p, rows, cols, valid):
    """``p[:, rows, cols]`` where ``valid``, else 0: ``[heads, len(rows)]``."""
    cols = np.clip(cols, 0, p.shape[2] - 1)
    return np.where(valid, p[:, rows, cols], 0.0)


def _key_stats(out, p, gi, ci, causal, window, pair_ptr, pair_key, r0):
    """The statistics read from a few weights of each row (``p [heads, m, c]``, ``out [heads, m,
    NSTATS]``): sink, previous, local, duplicate and induction (:mod:`attnwidget._kernels`)."""
    heads, m, _ = p.shape
    rows = np.arange(m)
    out[..., SINK] = p[:, :, 0]
    out[..., PREVIOUS] = _gather(p, rows, gi - 1, (gi >= 1) & (gi <= ci))
    local = np.zeros((heads, m))
    for d in range(window):
        local += _gather(p, rows, gi - d, (gi - d >= 1) & (gi - d < ci))
        if d > 0 and not causal:
            local += _gather(p, rows, gi + d, gi + d < ci)
    out[..., LOCAL] = local
    k0, k1 = int(pair_ptr[r0]), int(pair_ptr[r0 + m])
    if k1 == k0:
        out[..., DUPLICATE] = 0.0
        out[..., INDUCTION] = 0.0
        return
    owner = np.repeat(rows, np.diff(pair_ptr[r0:r0 + m + 1]))  # the row of each pair
    keys = pair_key[k0:k1]
    slot = (np.arange(heads)[:, None] * m + owner).ravel()
    for stat, cols in ((DUPLICATE, keys), (INDUCTION, keys + 1)):
        sums = np.bincount(slot, weights=p[:, owner, cols].ravel(), minlength=heads * m)
        out[..., stat] = sums.reshape(heads, m)


def _counts(out, p, lo, hi, counted):
    """BELOW and ABOVE: the counted weights under ``lo`` and over ``hi``."""
    for stat, beyond in ((BELOW, p < lo), (ABOVE, p > hi)):
        if counted is not None:
            beyond &= counted
        out[..., stat] = np.count_nonzero(beyond, axis=-1)


def _pool_into(cells_out, src, a0, fr, fc):
    """``cells_out[.., a0 + a, b] = max(itself, cell (a, b) of src)``: src ``[k, rows, keys]`` pooled by
    :func:`pool2d` into the tile rows from ``a0``."""
    cells = pool2d(src, fr, fc)
    view = cells_out[..., a0:a0 + cells.shape[1], :cells.shape[2]]
    np.maximum(view, cells.reshape(view.shape), out=view)


def head_rows(tile, r0, h0, layer_causal, causal, sinks, lo, hi, window, pair_ptr, pair_key, fr, fc, pool,
              last, stats, colsum, mean, inv_heads, tiles, mean_tile, ebuf, acc, acc2, positions):
    """Softmax and statistics of every row of the score ``tile`` (see :mod:`attnwidget._kernels` and
    :func:`attnwidget._kernels_numba.head_rows`, whose arguments these are; ``ebuf``, ``acc`` and
    ``acc2`` are that backend's scratch and go unused)."""
    g, m, c = tile.shape
    gi, cs, ci = _limits(r0, m, c, layer_causal, causal)
    softmaxed, counted = _below(cs, c), _below(ci, c)
    # Beyond cs the weights are 0 anyway: the statistics need their own mask only where ci < cs.
    narrower = None if np.array_equal(ci, cs) else counted
    with np.errstate(invalid="ignore", over="ignore"):
        x = tile.copy() if softmaxed is None else np.where(softmaxed, tile, np.float32(-np.inf))
        sink = sinks[h0:h0 + g, None]
        mx = np.maximum(x.max(-1), sink)
        x -= mx[..., None]  # x = s - max: -inf on the keys a row does not see
        top = (x if narrower is None else np.where(narrower, x, np.float32(-np.inf))).max(-1)
        e = np.exp(x)
        if softmaxed is not None:
            np.copyto(x, 0, where=~softmaxed)  # so that e * x is 0 there, not 0 * -inf
        ex = x
        ex *= e  # in place: each temporary of a tile's size costs a pass over memory
        if narrower is not None:
            np.copyto(ex, 0, where=~narrower)
        z32 = e.sum(-1)
        zkeys = z32.astype(np.float64) if narrower is None else np.where(narrower, e, 0).sum(-1, dtype=np.float64)
        z = z32.astype(np.float64) + np.where(sink > -np.inf, np.exp((sink - mx).astype(np.float64)), 0.0)
    inv = (1.0 / z).astype(np.float32)
    p = e
    p *= inv[..., None]  # the weights; zero on the keys a row does not see
    pc = p if narrower is None else np.where(narrower, p, np.float32(0))
    out = stats[h0:h0 + g, r0:r0 + m]
    total = zkeys / z
    out[..., TOTAL] = total
    out[..., ENTROPY] = np.log(z) * total - ex.sum(-1).astype(np.float64) / z
    out[..., PEAK] = np.exp(top.astype(np.float64)) / z
    _counts(out, pc, lo, hi, counted)
    distance = np.abs(np.float32(r0) + np.arange(m, dtype=np.float32)[:, None] - positions[:c])
    out[..., DISTANCE] = np.einsum("gmc,mc->gm", pc, distance)
    _key_stats(out, p, gi, ci, causal, window, pair_ptr, pair_key, r0)
    colsum[0, h0:h0 + g, :c] += pc.sum(1)
    for hh in range(g):  # in head order, as the groups of heads add up
        mean += p[hh] * inv_heads
    if pool:
        _pool_into(tiles[h0:h0 + g], p, r0 // fr, fr, fc)
        if last:
            _pool_into(mean_tile, mean[None], r0 // fr, fr, fc)


def prob_rows(tile, r0, causal, lo, hi, window, pair_ptr, pair_key, fr, fc, pool, stats, colsum, mean,
              inv_heads, tiles, mean_tile):
    """:func:`head_rows` for a tile that already holds probabilities ``[heads, m, c]`` of every head (any
    float type); entropy is ``-sum p log p``."""
    heads, m, c = tile.shape
    gi, _, ci = _limits(r0, m, c, False, causal)
    counted = _below(ci, c)
    for h in range(heads):
        mean += tile[h] * inv_heads
    pc = tile if counted is None else np.where(counted, tile, tile.dtype.type(0))
    out = stats[:heads, r0:r0 + m]
    _counts(out, pc, lo, hi, counted)
    out[..., PEAK] = (tile if counted is None else np.where(counted, tile, -np.inf)).max(-1)
    out[..., TOTAL] = pc.sum(-1, dtype=np.float64)
    out[..., DISTANCE] = np.einsum("hmc,mc->hm", pc, np.abs(gi[:, None] - np.arange(c)).astype(np.float64))
    logs = np.zeros_like(pc)
    np.log(pc, out=logs, where=pc > 0)
    out[..., ENTROPY] = -(pc * logs).sum(-1, dtype=np.float64)
    _key_stats(out, tile, gi, ci, causal, window, pair_ptr, pair_key, r0)
    colsum[0, :heads, :c] += pc.sum(1)
    if pool:
        _pool_into(tiles[:heads], tile, r0 // fr, fr, fc)
        _pool_into(mean_tile, mean[None], r0 // fr, fr, fc)


def flush_columns(partial, total, c):
    """``total[h, :c] += sum over threads of partial[t, h, :c]``, then zero ``partial``."""
    total[:, :c] += partial[:, :, :c].sum(0, dtype=np.float64)
    partial[:, :, :c] = 0


def pool2d(src, fr, fc):
    """Max over ``fr x fc`` cells (rows x columns) of each ``[r, c]`` matrix of ``src [k, r, c]`` (ragged
    edges: the cells that exist; cells start at 0, as the compiled version's do): float32
    ``[k, ceil(r / fr), ceil(c / fc)]``.

    One elementwise maximum per offset inside a cell (``src[:, a::fr, b::fc]``, ``fr x fc`` of them):
    several times faster than ``np.maximum.reduceat`` or a reduction over a short trailing axis."""
    k, r, c = src.shape
    out = np.zeros((k, -(-r // fr), -(-c // fc)), np.float32)
    for a in range(fr):
        rows = src[:, a::fr]
        for b in range(fc):
            part = rows[:, :, b::fc]  # the last row or column of cells may lack this offset
            view = out[:, :part.shape[1], :part.shape[2]]
            np.maximum(view, part, out=view, casting="unsafe")
    return out


def part_proximity(whole, alpha, outputs, out):
    """``out[h, b, j] = max(||y_b||_1 - ||y_b - alpha_hbj f_hj||_1, 0)`` for the keys ``j < out.shape[2]``
    (:func:`attnwidget._kernels_numba.part_proximity`), a few rows at a time so that the parts of one
    step (``rows x keys x hidden``) stay within :data:`PART_ELEMENTS` floats. Both norms are summed in
    float64, so their difference keeps the precision of the compiled per-dimension sum (float32
    rounding scales with the part, not with ``||y||``) while the parts are never stored twice."""
    heads, rows, keys = out.shape
    hidden = whole.shape[1]
    step = max(1, PART_ELEMENTS // max(1, keys * hidden))
    norms = np.abs(whole).sum(-1, dtype=np.float64)
    for h in range(heads):
        f = outputs[h, None, :keys]  # [1, keys, hidden]
        for b0 in range(0, rows, step):
            rest = alpha[h, b0:b0 + step, :keys, None] * f  # the parts, then y - part, in place
            np.subtract(whole[b0:b0 + step, None], rest, out=rest)
            np.abs(rest, out=rest)
            gain = norms[b0:b0 + step, None] - rest.sum(-1, dtype=np.float64)
            out[h, b0:b0 + step] = np.maximum(gain, 0.0)
