"""Head roles (previous-token, duplicate-token, induction, sink, local, broad) and similar-head grouping.

Role scores follow TransformerLens's head detection: the mean, over the query rows where the role is
defined, of the attention mass on the keys the role predicts. All take a Capture or a
``[layer, head, query, key]`` array and return ``[layer, head]`` float64 arrays. Every role score is a
per-row mass that the pattern engine's fused pass (``attnwidget._engine``) computes together with the
metrics, so for a Capture the roles cost nothing once the metrics or the widget have run.
docs/metrics.md lists the formulas.

Cross-attention (``[query, key]`` from two sequences: a decoder reading its encoder) has ``sink``
(weight on key 0) and ``broad`` (normalized entropy over the keys); ``previous``, ``duplicate``,
``induction`` and ``local`` relate query position ``i`` to key positions of the same sequence and are
NaN (the rule is ``attnwidget._fused.POSITIONAL``). :func:`head_distances` and :func:`similar_heads`
compare rows over the keys, whatever the keys are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._engine import Engine
from ._tables import fmt, html_block, html_table, html_text
from ._progress import make_bar
from ._summary import default_options, estimate_seconds, summary_for
from .metrics import _is_capture, _row_entropy
from ._optional import require
from .errors import ArgumentError, ArgumentTypeError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ._types import AttentionSource, Progress

__all__ = [
    "ROLES",
    "HeadRoles",
    "InductionTokens",
    "SimilarHeads",
    "head_distances",
    "head_roles",
    "induction_tokens",
    "similar_heads",
]

ROLES = ("previous", "duplicate", "induction", "sink", "local", "broad")
_TOKEN_ROLES = ("induction", "duplicate", "previous")  # compared with each other first in dominant()
_LN2 = float(np.log(2.0))


@dataclass(frozen=True, repr=False)
class HeadRoles:
    """Role scores, each ``[layer, head]`` float64 (NaN where the role is undefined for the input:
    previous, duplicate, induction and local for cross-attention, see the module docstring).

    previous
        mean over rows ``i >= 1`` of ``p[i, i-1]``.
    duplicate
        over rows whose token occurred before: mass on the earlier positions ``j < i`` holding the same token.
    induction
        over the same rows: mass on the positions right after an earlier occurrence, ``j`` with
        ``token[j-1] == token[i]`` (on a repeated sequence of period T: key ``i - T + 1``).
    sink
        mean weight on key 0 (over rows with at least two visible keys).
    local
        mass on keys ``i - window + 1 .. i`` (causal; ``|i - j| < window`` bidirectional), key 0 excluded.
    broad
        normalized entropy (see :func:`attnwidget.metrics.entropy`).
    """

    previous: np.ndarray
    duplicate: np.ndarray
    induction: np.ndarray
    sink: np.ndarray
    local: np.ndarray
    broad: np.ndarray

    def scores(self, role: str) -> np.ndarray:
        """The ``[layer, head]`` scores of ``role`` (one of :data:`ROLES`)."""
        if role not in ROLES:
            raise ArgumentError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}.")
        return getattr(self, role)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.previous.shape)

    def top(self, role: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` highest-scoring heads for ``role`` as ``[(layer, head, score)]``, best first (NaN skipped)."""
        scores = self.scores(role)
        flat = scores.ravel()
        order = [i for i in np.argsort(-np.nan_to_num(flat, nan=-np.inf), kind="stable") if not np.isnan(flat[i])]
        heads = scores.shape[1]
        return [(int(i // heads), int(i % heads), float(flat[i])) for i in order[: max(0, int(k))]]

    def dominant(self, threshold: float = 0.4, broad_threshold: float = 0.75) -> np.ndarray:
        """A role name per head, ``[layer, head]`` array of str.

        In order: the best of induction / duplicate / previous if its score is at least ``threshold``
        (these relate tokens to each other and are the rare, specific behaviours, so they win over a
        sink that most heads also keep); else ``"sink"`` if sink >= ``threshold``; else ``"local"`` if
        local >= ``threshold``; else ``"broad"`` if normalized entropy >= ``broad_threshold``; else
        ``"mixed"``. 0.4 is far above chance (a uniform row gives ``1 / visible keys``) and means the
        role's one or two keys hold more mass than any other behaviour can on the rest.
        """
        token = np.stack([np.nan_to_num(getattr(self, r), nan=-1.0) for r in _TOKEN_ROLES])
        best = np.argmax(token, axis=0)  # ties go to the earlier (more specific) role
        out = np.full(self.shape, "mixed", dtype=object)
        out[np.nan_to_num(self.broad, nan=-1.0) >= broad_threshold] = "broad"
        out[np.nan_to_num(self.local, nan=-1.0) >= threshold] = "local"
        out[np.nan_to_num(self.sink, nan=-1.0) >= threshold] = "sink"
        strong = np.take_along_axis(token, best[None], 0)[0] >= threshold
        names = np.array(_TOKEN_ROLES, dtype=object)[best]
        out[strong] = names[strong]
        return out

    def to_pandas(self) -> pd.DataFrame:
        """One row per head, indexed by ``(layer, head)``: a column per role in :data:`ROLES` (NaN where
        undefined) and ``dominant`` (:meth:`dominant` with its default thresholds). Needs pandas
        (imported here only)."""
        import pandas as pd

        layers, heads = self.shape
        index = pd.MultiIndex.from_product([range(layers), range(heads)], names=["layer", "head"])
        columns = {role: np.asarray(self.scores(role), dtype=np.float64).reshape(-1) for role in ROLES}
        columns["dominant"] = self.dominant().reshape(-1)
        return pd.DataFrame(columns, index=index)

    def _repr_html_(self) -> str:
        layers, heads = self.shape
        dominant = self.dominant()
        best = [[role, ", ".join(f"L{l}H{h}: {fmt(v)}" for l, h, v in self.top(role, 3)) or "-",
                 str(int((dominant == role).sum()))] for role in ROLES]
        best.append(["mixed", "-", str(int((dominant == "mixed").sum()))])
        grid = [[str(layer)] + [str(dominant[layer, head]) for head in range(heads)] for layer in range(layers)]
        return html_block(
            html_text(f"Head roles: {layers} layers x {heads} heads", "strong"),
            html_table(["role", "best heads (layer, head: score)", "heads with this dominant role"], best,
                       caption="Role scores"),
            html_table(["layer"] + [f"head {h}" for h in range(heads)], grid,
                       caption="Dominant role per head (threshold 0.4; broad: normalized entropy >= 0.75)"),
        )

    def __repr__(self) -> str:
        layers, heads = self.shape
        parts = []
        for role in ROLES:
            best = self.top(role, 1)
            if best:
                layer, head, score = best[0]
                parts.append(f"{role} L{layer}H{head}={score:.2f}")
        return f"HeadRoles({layers} layers x {heads} heads; best: {', '.join(parts) or 'none'})"


class InductionTokens(NamedTuple):
    """Random token ids repeated ``repeats`` times: ``token_ids[offset + k*period + t]`` is the same for every k."""

    token_ids: np.ndarray
    period: int
    offset: int


def induction_tokens(tokenizer: PreTrainedTokenizerBase, seq_len: int = 40, repeats: int = 2,
                     seed: int = 0) -> InductionTokens:
    """``seq_len`` distinct random non-special token ids, repeated ``repeats`` times, after the BOS id if any.

    Ids are drawn without replacement (so the only repeats are the copies) from ``range(len(tokenizer))``
    minus ``tokenizer.all_special_ids``, with ``numpy.random.default_rng(seed)``. ``offset`` is 1 when a
    BOS id was prepended, else 0.
    """
    seq_len, repeats = int(seq_len), int(repeats)
    if seq_len < 2 or repeats < 2:
        raise ArgumentError(f"need seq_len >= 2 and repeats >= 2 for a repeated sequence; got {seq_len}, {repeats}.")
    special = np.asarray(sorted(set(getattr(tokenizer, "all_special_ids", None) or [])), dtype=np.int64)
    vocab = np.setdiff1d(np.arange(len(tokenizer), dtype=np.int64), special)
    if vocab.size < seq_len:
        raise ArgumentError(f"the tokenizer has {vocab.size} non-special tokens; seq_len={seq_len} needs as many.")
    rng = np.random.default_rng(seed)
    ids = np.tile(rng.choice(vocab, size=seq_len, replace=False), repeats)
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        ids = np.concatenate([[int(bos)], ids])
    return InductionTokens(ids.astype(np.int64), seq_len, int(bos is not None))


def _is_model(obj: object) -> bool:
    return hasattr(obj, "config") and callable(obj) and not _is_capture(obj)


def _capture_fn() -> Callable[..., Any]:
    import attnwidget

    fn = getattr(attnwidget, "capture", None)
    fn = getattr(fn, "capture", fn)  # the submodule, if the package does not re-export the function
    if not callable(fn):
        raise ImportError("attnwidget.capture is not available; head_roles(model, tokenizer) needs it.")
    return fn


def _synthetic_ids(n: int, period: int, offset: int) -> np.ndarray:
    period, offset = int(period), int(offset)
    if period < 1 or not 0 <= offset < n:
        raise ArgumentError(f"need period >= 1 and 0 <= offset < {n} tokens; got period={period}, offset={offset}.")
    if n - offset <= period:
        raise ArgumentError(f"period={period} after offset={offset} leaves no repeated token in {n} tokens.")
    ids = np.empty(n, dtype=np.int64)
    ids[:offset] = -1 - np.arange(offset)
    ids[offset:] = np.arange(n - offset) % period
    return ids


def head_roles(
    obj: AttentionSource | PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    period: int | None = None,
    offset: int = 0,
    token_ids: npt.ArrayLike | None = None,
    window: int = 3,
    seq_len: int = 40,
    repeats: int = 2,
    seed: int = 0,
    progress: Progress = None,
) -> HeadRoles:
    """Score every head for each role in :data:`ROLES`; returns a :class:`HeadRoles`.

    ``obj`` is a Capture or a ``[layer, head, query, key]`` array, or a model with ``tokenizer``: then
    :func:`induction_tokens` (``seq_len``, ``repeats``, ``seed``) are captured with
    ``attnwidget.capture`` first. Duplicate and induction need to know which tokens repeat: from
    ``token_ids``, else from ``period`` (a sequence whose tokens after ``offset`` repeat with that
    period), else from the Capture's token ids; a bare array without either gets NaN for those two.
    Cross-attention gets NaN for previous, duplicate, induction and local (module docstring).
    ``progress``: a ``tqdm.auto`` bar for long inputs (None: automatic, past about 2 s).
    """
    if _is_model(obj):
        if tokenizer is None:
            raise ArgumentTypeError("head_roles(model, tokenizer): a model needs its tokenizer.")
        toks = induction_tokens(tokenizer, seq_len=seq_len, repeats=repeats, seed=seed)
        obj = _capture_fn()(obj, tokenizer, toks.token_ids)
        if token_ids is None and period is None and getattr(obj, "token_ids", None) is None:
            period, offset = toks.period, toks.offset
    if int(window) < 1:
        raise ArgumentError(f"window must be a positive number of tokens; got {window}.")
    ids = None
    if token_ids is not None:
        ids = np.asarray(token_ids).ravel()
    elif period is None and _is_capture(obj) and (captured := getattr(obj, "token_ids", None)) is not None:
        ids = np.asarray(captured).ravel()

    engine = Engine(obj)
    if engine.num_layers == 0:
        raise ArgumentError("the attention has no layers.")
    n = engine.num_tokens
    if period is not None:
        ids = _synthetic_ids(n, period, offset)
    if ids is not None and ids.shape[0] != n:
        raise ArgumentError(f"token_ids has {ids.shape[0]} ids; the attention has {n} tokens.")
    token_ids = None if ids is None else tuple(int(i) for i in ids)
    summary = summary_for(obj, default_options(obj, token_ids=token_ids, window=int(window)))
    todo = summary.num_layers - len(summary.done)
    bar = make_bar(todo, "attnwidget head roles", progress, estimate_seconds(summary.engine, todo))
    try:
        summary.run(progress=bar)
    finally:
        bar.close()
    return HeadRoles(**summary.roles())


# ---------------------------------------------------------------------------------------------------
# similar heads


def _sample_rows(obj: AttentionSource, max_rows: int | None) -> tuple[np.ndarray, int, int, bool, np.ndarray]:
    """``(x [L*H, r, c], num_layers, heads, causal, rows)``: selected query rows of every head.

    A Capture is asked for just those rows, at most a block of rows per call (never a whole layer).
    """
    src = Engine(obj)
    if src.num_layers == 0:
        raise ArgumentError("the attention has no layers.")
    heads, n, causal = src.num_heads, src.num_tokens, src.is_causal
    first = 1 if causal and n > 1 else 0
    rows = np.arange(first, n)
    if max_rows is not None and rows.size > int(max_rows):
        rows = np.unique(np.linspace(first, n - 1, int(max_rows)).round().astype(np.int64))
    cols = int(rows[-1]) + 1 if causal else src.n_keys
    x = None
    for layer in range(src.num_layers):
        for a, b, p in src.rows(layer, rows):
            if x is None:
                x = np.empty((src.num_layers * heads, rows.size, cols), dtype=p.dtype)
            x[layer * heads:(layer + 1) * heads, a:b] = p[:, :, :cols]
    assert x is not None  # every layer has rows
    return x, src.num_layers, heads, causal, rows


def head_distances(obj: AttentionSource, metric: str = "js", *, max_rows: int | None = 128) -> np.ndarray:
    """Distance between every pair of heads' patterns: ``[L*H, L*H]`` float64, head ``l*H + h``.

    ``metric="js"``: mean over query rows of the Jensen-Shannon *distance* in bits,
    ``sqrt(JSD_2(p_i, q_i))`` (a metric, in [0, 1]); ``"tv"``: mean total variation ``sum_j |p_ij - q_ij| / 2``.
    Symmetric with a zero diagonal. The cost is ``(L*H)^2 * rows * keys``; ``max_rows`` (default 128)
    averages over that many evenly spaced informative rows instead of all of them (``None``: all rows,
    exact). A Capture is asked for only the selected rows, at most a block of rows per call, so the
    memory is the selection, ``L x H x rows x keys`` floats (``max_rows=None`` makes that ``L x H x n^2``).
    """
    if metric not in ("js", "tv"):
        raise ArgumentError(
            f"unknown metric {metric!r}; expected 'js' (Jensen-Shannon distance) or 'tv' (total variation)."
        )
    if max_rows is not None and int(max_rows) < 1:
        raise ArgumentError(f"max_rows must be a positive number of rows or None; got {max_rows}.")
    x, _, _, causal, rows = _sample_rows(obj, max_rows)
    total, r, _ = x.shape
    ent = _row_entropy(x) if metric == "js" else None
    dist = np.zeros((total, total))
    # row groups with their visible columns (causal rows are sorted: later groups see more keys)
    bounds = np.linspace(0, r, min(4, r) + 1).round().astype(int)
    groups = [(int(r0), int(r1)) for r0, r1 in zip(bounds[:-1], bounds[1:]) if r1 > r0]
    group_cols = [int(rows[r1 - 1]) + 1 if causal else x.shape[2] for _, r1 in groups]
    block = max(1, int(np.sqrt((1 << 22) / max(1, r * x.shape[2]))))
    for a0 in range(0, total, block):
        a1 = min(total, a0 + block)
        for b0 in range(a0, total, block):
            b1 = min(total, b0 + block)
            acc = np.zeros((a1 - a0, b1 - b0))
            for (r0, r1), cols in zip(groups, group_cols):
                xa = x[a0:a1, None, r0:r1, :cols]
                xb = x[None, b0:b1, r0:r1, :cols]
                if metric == "js":
                    assert ent is not None  # the rows' entropies, computed above for "js"
                    mix = xa + xb
                    mix *= 0.5
                    jsd = (_row_entropy(mix) - 0.5 * (ent[a0:a1, None, r0:r1] + ent[None, b0:b1, r0:r1])) / _LN2
                    acc += np.sqrt(np.clip(jsd, 0.0, 1.0)).sum(-1)
                else:
                    acc += 0.5 * np.abs(xa - xb).sum(-1, dtype=np.float64).sum(-1)
            dist[a0:a1, b0:b1] = acc / r
    dist = np.triu(dist, 1)
    return dist + dist.T


@dataclass(frozen=True, repr=False)
class SimilarHeads:
    """Result of :func:`similar_heads`.

    order: ``[L*H, 2]`` int (layer, head) in dendrogram leaf order (similar heads adjacent);
    labels: ``[layer, head]`` int cluster ids from 1; distances: ``[L*H, L*H]``; linkage: scipy's ``Z``.
    """

    order: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    linkage: np.ndarray

    @property
    def num_clusters(self) -> int:
        return int(self.labels.max()) if self.labels.size else 0

    def __repr__(self) -> str:
        layers, heads = self.labels.shape
        return f"SimilarHeads({layers} layers x {heads} heads in {self.num_clusters} clusters)"


def similar_heads(
    obj: AttentionSource,
    n_clusters: int | None = None,
    threshold: float | None = None,
    *,
    metric: str = "js",
    max_rows: int | None = 128,
    method: str = "average",
    distances: npt.ArrayLike | None = None,
) -> SimilarHeads:
    """Group heads with similar patterns by hierarchical clustering of :func:`head_distances`.

    ``n_clusters``: cut into that many clusters; ``threshold``: cut at that distance (heads closer than
    it on ``method`` linkage share a cluster); neither: ``threshold=0.5`` (half the maximum JS distance).
    ``distances``: a precomputed ``[L*H, L*H]`` matrix (``obj`` then only gives the [layer, head] shape).
    The leaf order is scipy's optimal leaf ordering, so neighbours in ``order`` are similar heads.
    """
    hierarchy = require("scipy.cluster.hierarchy", "similar_heads (hierarchical clustering)")
    squareform = require("scipy.spatial.distance", "similar_heads (hierarchical clustering)").squareform
    if n_clusters is not None and threshold is not None:
        raise ArgumentError("give n_clusters or threshold, not both.")
    if n_clusters is not None and int(n_clusters) < 1:
        raise ArgumentError(f"n_clusters must be at least 1; got {n_clusters}.")
    declared: Any = obj  # a Capture-like source (its sizes) or an array (its shape)
    if _is_capture(obj):
        layers, heads = int(declared.num_layers), int(declared.num_heads)
    else:
        shape = np.shape(declared)
        if len(shape) != 4:
            raise ArgumentError(f"expected a Capture or a [layer, head, query, key] array; got shape {tuple(shape)}.")
        layers, heads = shape[0], shape[1]
    if distances is None:
        distances = head_distances(obj, metric, max_rows=max_rows)
    distances = np.asarray(distances, dtype=np.float64)
    total = layers * heads
    if distances.shape != (total, total):
        raise ArgumentError(
            f"distances has shape {distances.shape}; expected ({total}, {total}) for {layers}x{heads} heads."
        )
    if total == 1:
        z = np.zeros((0, 4))
        leaves, labels = np.array([0]), np.array([1])
    else:
        condensed = squareform(distances, checks=False)
        z = hierarchy.linkage(condensed, method=method)
        z = hierarchy.optimal_leaf_ordering(z, condensed)
        leaves = hierarchy.leaves_list(z)
        if n_clusters is not None:
            labels = hierarchy.fcluster(z, int(n_clusters), criterion="maxclust")
        else:
            labels = hierarchy.fcluster(z, 0.5 if threshold is None else float(threshold), criterion="distance")
    order = np.stack([leaves // heads, leaves % heads], axis=1).astype(np.int64)
    return SimilarHeads(order, np.asarray(labels, dtype=np.int64).reshape(layers, heads), distances, z)
