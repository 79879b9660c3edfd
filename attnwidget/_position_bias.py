"""T5's relative position bias, kept as its learned table and rebuilt exactly for any block of scores.

T5 (and mT5, FLAN-T5, LongT5's local attention...) adds to each score a learned bias that depends
only on the bucket of the distance ``key - query``. Storing that ``[heads, n, n]`` tensor per capture
would cost what the queries and keys save; the table costs ``buckets x heads`` floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RelativeBias:
    """T5's relative position bias, kept as its learned table (``O(buckets)``, not ``n x n``).

    The score of query ``i`` and key ``j`` gets ``weight[bucket(j - i), head]``, with T5's bucketing
    (exact offsets up to half the buckets, then logarithmic up to ``max_distance``; bidirectional in
    the encoder, past-only in the decoder). :func:`relative_bias` rebuilds any block of it exactly.
    """

    weight: torch.Tensor  # float32 [buckets, heads]
    bidirectional: bool
    num_buckets: int
    max_distance: int


def relative_buckets(relative: torch.Tensor, bias: RelativeBias) -> torch.Tensor:
    """T5's bucket of each relative position ``key - query`` (int64 tensor in, int64 out), computed
    with the same operations in the same order as transformers' T5, so float rounding agrees."""
    buckets, num = torch.zeros_like(relative), bias.num_buckets
    if bias.bidirectional:
        num //= 2
        buckets += (relative > 0).to(torch.long) * num
        relative = torch.abs(relative)
    else:
        relative = -torch.min(relative, torch.zeros_like(relative))
    max_exact = num // 2
    is_small = relative < max_exact
    large = max_exact + (
        torch.log(relative.float() / max_exact) / math.log(bias.max_distance / max_exact) * (num - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, num - 1))
    return buckets + torch.where(is_small, relative, large)


def relative_bias(bias: RelativeBias, rows: range | torch.Tensor | Sequence[int], keys: int,
                  heads: Sequence[int] | None = None) -> torch.Tensor:
    """float32 ``[heads, len(rows), keys]``: the bias added to the scores of those query rows. The
    buckets are looked up once per distinct offset (``O(rows + keys)``), then gathered."""
    rows = torch.as_tensor(list(rows) if isinstance(rows, range) else rows, dtype=torch.long)
    if not len(rows):
        return torch.zeros(bias.weight.shape[1] if heads is None else len(heads), 0, keys)
    lo, hi = -int(rows.max()), keys - 1 - int(rows.min())
    table = bias.weight[relative_buckets(torch.arange(lo, hi + 1), bias)]  # [offsets, heads]
    if heads is not None:
        table = table[:, torch.as_tensor(heads, dtype=torch.long)]
    offsets = torch.arange(keys)[None, :] - rows[:, None] - lo  # [rows, keys] into the table
    return table.T[:, offsets]
