"""The pattern engine's kernels compiled with numba (the ``flow`` extra): see :mod:`attnwidget._kernels`
for what they compute. A work item of :func:`head_rows` is one group of ``fr`` rows with every head of
the tile; a row is finished while it is in cache: its maximum, the exponentials, the normalisation
and all statistics.

Speed
    The exponential is Cody-Waite: ``x = k ln2 + r`` with ``|r| <= ln2 / 2``, a degree-7 polynomial for
    ``e^r`` and ``2^k`` built from exponent bits, so the compiler vectorises it (the C library's ``exp``
    is scalar); relative error about 1e-7, the size of float32 rounding. Arguments below -87 give
    exactly 0, as float32 softmax underflows there. Maxima of non-negative floats are taken on their
    int32 bit patterns (same order, and integer max reductions vectorise; float ones do not here).

Races
    Each work item owns its rows' statistics, its rows of the mean and its heatmap-tile cells. Column
    sums go to one buffer per thread (``numba.get_thread_id``), summed by the caller. Calls for the
    groups of heads that share a key head run one after another, so their mean rows accumulate safely.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import get_num_threads, get_thread_id, njit, prange
from numba.core import types
from numba.extending import intrinsic

from ._kernels import ABOVE, BELOW, DISTANCE, DUPLICATE, ENTROPY, INDUCTION, LOCAL, PEAK, PREVIOUS, SINK, TOTAL

#: Which backend this is (:func:`attnwidget._kernels.backend`); compiled kernels are worth warming up.
name = "numba"
COMPILED = True

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 split so that k * _LN2_HI is exact for |k| < 2^9
_LN2_LO = np.float32(-2.12194440e-4)
_HALF = np.float32(0.5)
_FLOOR = np.float32(-87.0)  # exp(x) below this is under float32's smallest normal: taken as 0
_E2, _E3, _E4, _E5, _E6, _E7 = (np.float32(1 / math.factorial(k)) for k in range(2, 8))
_ONE = np.float32(1.0)
_BIAS = np.int32(127)
_MANTISSA = np.int32(1 << 23)
_SIGNLESS = np.int32(0x7FFFFFFF)


@intrinsic
def _bits(typingctx, x):
    """The int32 bit pattern of a float32 (an LLVM bitcast: free, and it vectorises)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _float(typingctx, x):
    """The float32 whose bit pattern is the low 32 bits of the integer ``x``."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if x.bitwidth != 32:
            value = builder.trunc(value, ir.IntType(32)) if x.bitwidth > 32 else builder.sext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(x), codegen


def num_threads() -> int:
    """Threads the compiled loops use (numba's setting): the first axis of the per-thread buffers."""
    return int(get_num_threads())


@njit(fastmath=True, nogil=True, cache=True, inline="always")
def _max32(row, stop):
    """Maximum of ``row[:stop]`` (float32, any sign), on order-preserving int32 keys: vectorised."""
    best = np.int32(-2147483647)
    for j in range(stop):
        v = _bits(row[j])
        best = max(best, v ^ ((v >> 31) & _SIGNLESS))
    return _float(best ^ ((best >> 31) & _SIGNLESS))


@njit(fastmath=True, nogil=True, cache=True, inline="always")
def _exp(x):
    """``exp(x)`` for float32 ``x <= 0`` (Cody-Waite, see the module docstring); 0 below -87."""
    xc = max(x, _FLOOR)
    kf = np.floor(xc * _LOG2E + _HALF)
    r = xc - kf * _LN2_HI - kf * _LN2_LO
    y = _E7 * r + _E6
    y = y * r + _E5
    y = y * r + _E4
    y = y * r + _E3
    y = y * r + _E2
    y = y * r + _ONE
    y = y * r + _ONE
    return y * _float((np.int32(kf) + _BIAS) * _MANTISSA) * np.float32(x > _FLOOR)


@njit(fastmath=True, nogil=True, cache=True, inline="always")
def _row_stats(stats, h, gi, ent, peak, below, above, dist, total, row, scale, ci, causal, window, pair_ptr,
               pair_key):
    """Store one finished row's statistics: the ones its loops summed, then the ones read from a few
    of its weights (sink, previous, local, repeats): weight ``j`` is ``row[j] * scale``."""
    stats[h, gi, ENTROPY] = ent
    stats[h, gi, PEAK] = peak
    stats[h, gi, BELOW] = below
    stats[h, gi, ABOVE] = above
    stats[h, gi, DISTANCE] = dist
    stats[h, gi, TOTAL] = total
    stats[h, gi, SINK] = row[0] * scale
    stats[h, gi, PREVIOUS] = row[gi - 1] * scale if 1 <= gi <= ci else 0.0
    local = 0.0
    for d in range(window):
        back = gi - d
        if 1 <= back < ci:
            local += row[back]
        if d > 0 and not causal and gi + d < ci:
            local += row[gi + d]
    stats[h, gi, LOCAL] = local * scale
    dup = 0.0
    ind = 0.0
    for k in range(pair_ptr[gi], pair_ptr[gi + 1]):
        key = pair_key[k]
        dup += row[key]
        ind += row[key + 1]
    stats[h, gi, DUPLICATE] = dup * scale
    stats[h, gi, INDUCTION] = ind * scale


@njit(fastmath=True, nogil=True, cache=True, inline="always")
def _halve(src, dst, half):
    for k in range(half):
        a = src[2 * k]
        b = src[2 * k + 1]
        dst[k] = a if a > b else b


@njit(fastmath=True, nogil=True, cache=True, inline="always")
def _pool_cells(acc, tmp, ci, f, out_row):
    """``out_row[cc] = max(out_row[cc], max(acc[cc*f : cc*f+f]))`` for the cells under ``ci`` keys.

    ``acc`` holds the int32 bit patterns of non-negative floats (same order as the floats), zero from
    ``ci`` up to the next multiple of ``f``; ``f`` is a power of two. Pairs are reduced in halving
    passes between ``acc`` and ``tmp`` (contiguous, so they vectorise; a loop per cell does not);
    ``acc`` is overwritten."""
    length = (ci + f - 1) // f * f
    src, dst = acc, tmp
    width = 1
    while width < f:
        _halve(src, dst, length // 2)
        length //= 2
        src, dst = dst, src
        width *= 2
    for cc in range(length):
        v = _float(src[cc])
        if v > out_row[cc]:
            out_row[cc] = v


@njit(fastmath=True, nogil=True, cache=True, parallel=True)
def head_rows(tile, r0, h0, layer_causal, causal, sinks, lo, hi, window, pair_ptr, pair_key, fr, fc, pool,
              last, stats, colsum, mean, inv_heads, tiles, mean_tile, ebuf, acc, acc2, positions):
    """Softmax and statistics of every row of ``tile`` (float32 scores ``[g, m, c]``: heads
    ``h0..h0+g-1``, rows ``r0..``).

    ``layer_causal``: row ``i`` is softmaxed over keys ``0..i`` (else all ``c``); ``causal``: statistics
    count keys ``0..i`` (the capture's definition of visible keys). ``sinks[h]``: sink logit or
    ``-inf``. ``lo``/``hi``: sparsity / coverage thresholds; ``window``: local-role width;
    ``pair_ptr [n+1]``/``pair_key``: per query row, the earlier positions holding the same token.
    A work item is one group of ``fr`` rows (``r0`` is a multiple of ``fr``) with all ``g`` heads: it
    owns its rows of ``mean`` and one row of each heatmap tile (cells of ``fr`` rows x ``fc`` keys). Writes
    ``stats[h, r0 + i]``; adds rows to ``colsum[thread, h]`` (float32: at most one block of rows,
    see :func:`flush_columns`) and ``inv_heads`` times each row to
    ``mean [m, c]`` (zeroed by the caller before the first group of heads); when ``pool``, max-pools
    each head into ``tiles [head, Tq, Tk]``, and when ``last`` (the mean is complete) the mean into
    ``mean_tile [Tq, Tk]``. ``tile`` is left as it was (the weights live in the scratch ``ebuf``).
    Scratch: ``ebuf [threads, >= c]`` float32, ``acc``/``acc2 [threads, >= c + fc]`` int32 (``fc`` a power
    of two). ``positions``:
    float32 ``0, 1, 2, ...`` (at least ``c``), read instead of converting each key index.
    """
    g, m, c = tile.shape
    for item in prange((m + fr - 1) // fr):
        g0 = item * fr
        g1 = min(m, g0 + fr)
        tid = get_thread_id()
        e = ebuf[tid]
        vmax = acc[tid]
        spare = acc2[tid]
        for hh in range(g):
            h = h0 + hh
            hsum = colsum[tid, h]
            widest = 0
            if pool:  # the group's rows see at most the block's c keys; zeros up to a whole cell
                seen = min(c, r0 + g1) if layer_causal else c
                for j in range((seen + fc - 1) // fc * fc):
                    vmax[j] = 0
            for i in range(g0, g1):
                gi = r0 + i
                cs = min(gi + 1, c) if layer_causal else c
                ci = min(gi + 1, cs) if causal else cs
                row = tile[hh, i]
                mrow = mean[i]
                rowmax = _max32(row, cs)
                mx = max(rowmax, sinks[h])
                z32 = np.float32(0.0)
                sxe32 = np.float32(0.0)
                if ci == cs:  # the usual case: the softmax and the statistics see the same keys
                    for j in range(cs):
                        x = row[j] - mx
                        ev = _exp(x)
                        e[j] = ev
                        z32 += ev
                        sxe32 += ev * x
                else:
                    for j in range(cs):
                        x = row[j] - mx
                        ev = _exp(x)
                        e[j] = ev
                        z32 += ev
                        sxe32 += ev * x * np.float32(j < ci)
                zkeys = np.float64(z32)
                z = zkeys + (math.exp(sinks[h] - mx) if sinks[h] > -np.inf else 0.0)
                inv = np.float32(1.0 / z)
                below = np.float32(0.0)
                above = np.float32(0.0)
                dist = np.float32(0.0)
                gf = np.float32(gi)
                for j in range(ci):  # the weights are e[j] * inv; nothing is written back
                    pv = e[j] * inv
                    below += np.float32(pv < lo)
                    above += np.float32(pv > hi)
                    dist += pv * abs(gf - positions[j])
                    hsum[j] += pv
                    mrow[j] += pv * inv_heads
                    vmax[j] = max(vmax[j], _bits(pv))
                for j in range(ci, cs):
                    pv = e[j] * inv
                    mrow[j] += pv * inv_heads
                    vmax[j] = max(vmax[j], _bits(pv))
                total: float | np.floating[Any]  # float64 or float32: numba unifies them (no bytecode)
                if ci == cs:
                    total = zkeys / z
                    peak = math.exp(rowmax - mx) / z
                else:
                    total = 0.0
                    for j in range(ci):
                        total += e[j]
                    total *= inv
                    peak = _max32(e, ci) * inv
                _row_stats(stats, h, gi, math.log(z) * total - np.float64(sxe32) / z, peak, below, above, dist,
                           total, e, inv, ci, causal, window, pair_ptr, pair_key)
                widest = max(widest, cs)
            if pool:
                _pool_cells(vmax, spare, widest, fc, tiles[h, (r0 + g0) // fr])
        if pool and last:
            for j in range((c + fc - 1) // fc * fc):
                vmax[j] = 0
            for i in range(g0, g1):
                mrow = mean[i]
                for j in range(c):
                    vmax[j] = max(vmax[j], _bits(mrow[j]))
            _pool_cells(vmax, spare, c, fc, mean_tile[(r0 + g0) // fr])


@njit(fastmath=True, nogil=True, cache=True, parallel=True)
def prob_rows(tile, r0, causal, lo, hi, window, pair_ptr, pair_key, fr, fc, pool, stats, colsum, mean,
              inv_heads, tiles, mean_tile):
    """:func:`head_rows` for a tile that already holds probabilities ``[heads, m, c]`` of every head (any
    float type; the caller checks that they are attention). Same outputs; entropy is ``-sum p log p``."""
    heads, m, c = tile.shape
    for item in prange((m + fr - 1) // fr):
        g0 = item * fr
        g1 = min(m, g0 + fr)
        tid = get_thread_id()
        for h in range(heads):
            hsum = colsum[tid, h]
            for i in range(g0, g1):
                gi = r0 + i
                ci = min(gi + 1, c) if causal else c
                row = tile[h, i]
                mrow = mean[i]
                for j in range(c):
                    mrow[j] += row[j] * inv_heads
                below = 0.0
                above = 0.0
                total = 0.0
                peak = -np.inf
                ent = 0.0
                dist = 0.0
                for j in range(ci):
                    pv = row[j]
                    below += pv < lo
                    above += pv > hi
                    peak = max(peak, pv)
                    total += pv
                    dist += pv * abs(gi - j)
                    ent -= pv * math.log(pv) if pv > 0 else 0.0
                    hsum[j] += pv
                _row_stats(stats, h, gi, ent, peak, below, above, dist, total, row, 1.0, ci, causal, window,
                           pair_ptr, pair_key)
                if pool:
                    cells = tiles[h, gi // fr]
                    for cc in range((c + fc - 1) // fc):
                        best = cells[cc]
                        for j in range(cc * fc, min(c, cc * fc + fc)):
                            best = max(best, row[j])
                        cells[cc] = best
        if pool:
            for i in range(g0, g1):
                cells = mean_tile[(r0 + i) // fr]
                mrow = mean[i]
                for cc in range((c + fc - 1) // fc):
                    best = cells[cc]
                    for j in range(cc * fc, min(c, cc * fc + fc)):
                        best = max(best, mrow[j])
                    cells[cc] = best


@njit(fastmath=True, nogil=True, cache=True, parallel=True)
def flush_columns(partial, total, c):
    """``total[h, :c] += sum over threads of partial[t, h, :c]``, then zero ``partial``: the float32
    column sums of one block of rows, gathered into float64."""
    threads, heads, _ = partial.shape
    for h in prange(heads):
        out = total[h]
        for t in range(threads):
            part = partial[t, h]
            for j in range(c):
                out[j] += part[j]
                part[j] = 0.0


@njit(fastmath=True, nogil=True, cache=True, parallel=True)
def pool2d(src, fr, fc):
    """Max over ``fr x fc`` cells (rows x columns) of each ``[r, c]`` matrix of ``src [k, r, c]`` (ragged
    edges: the cells that exist): float32 ``[k, ceil(r / fr), ceil(c / fc)]``."""
    k, r, c = src.shape
    rows, cols = (r + fr - 1) // fr, (c + fc - 1) // fc
    out = np.zeros((k, rows, cols), np.float32)
    for item in prange(k * rows):
        m = item // rows
        a = item % rows
        dst = out[m, a]
        for i in range(a * fr, min(r, a * fr + fr)):
            row = src[m, i]
            for b in range(cols):
                best = dst[b]
                for j in range(b * fc, min(c, b * fc + fc)):
                    best = max(best, row[j])
                dst[b] = best
    return out


@njit(fastmath=True, nogil=True, cache=True)
def part_proximity(whole, alpha, outputs, out):
    """``out[h, b, j] = max(||y_b||_1 - ||y_b - alpha_hbj f_hj||_1, 0)`` for the keys ``j < out.shape[2]``
    (:func:`attnwidget.routes._importances`), fused: no part is stored. Summed per dimension as
    ``|y_d| - |y_d - c_d|`` (each term is at most ``|c_d|``), so float32 rounding scales with the part,
    not with ``||y||``."""
    heads, rows, keys = out.shape
    hidden = whole.shape[1]
    for item in range(heads * rows):
        h, b = item // rows, item % rows
        for j in range(keys):
            a = alpha[h, b, j]
            total = np.float32(0.0)
            if a != 0:
                for d in range(hidden):
                    y = whole[b, d]
                    total += abs(y) - abs(y - a * outputs[h, j, d])
            out[h, b, j] = max(total, np.float32(0.0))
