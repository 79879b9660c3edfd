"""Capture attention from a transformers model and recompute exact patterns on demand.

``capture(model, tokenizer, text)`` runs one forward pass with a temporary recorder (see
``_recorder.py``) and returns a :class:`Capture` holding, per layer, the query and key the layer
saw. ``Capture.pattern(layer, head, rows)`` recomputes ``softmax(q k^T * scaling + mask)`` for just
the rows asked for, so memory grows with layers x heads x tokens x head_dim, not tokens squared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from . import _capture_file
from ._memory import check_fits, release_free_memory
from ._inputs import describe, encode
from ._forward import check_ids, check_model, context_length, forward_kwargs, model_name, run
from ._forward import generate as generate_ids
from ._forward import is_causal as model_is_causal
from ._recorder import QKRecord, RelativeBias, WeightsRecord, model_lock, relative_bias
from ._checks import check_choice, check_flag, check_float_dtype, check_head, check_indices, check_layer, check_layers, is_int
from .errors import ArgumentError

if TYPE_CHECKING:
    import numpy.typing as npt
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from transformers.image_processing_base import ImageProcessingMixin

    from ._recorder import Recording
    from ._types import AttentionSource, ImageInput, Layers, Rows, StrPath, TextInput
    from .contributions import QueryKey
    from .seq2seq import Seq2SeqCapture

ROW_BLOCK_ELEMENTS = 1 << 22  # scores computed per block of rows: heads x rows x keys <= 4M floats (16 MiB)


class Capture:
    """Attention of one sequence through every layer of a model.

    Attributes are documented in ``docs/CONTRACTS.md``; patterns are computed on demand.
    """

    def __init__(self, *, records: Sequence[QKRecord | WeightsRecord], masks: list[torch.Tensor],
                 token_ids: npt.ArrayLike, tokens: Iterable[str], offsets: npt.ArrayLike, special: npt.ArrayLike, generated: npt.ArrayLike,
                 partial: npt.ArrayLike, text: str | None, model_name: str, is_causal: bool, num_heads: int,
                 key_tokens: Iterable[str] | None = None, key_token_ids: npt.ArrayLike | None = None,
                 image: npt.ArrayLike | None = None, patch_grid: Sequence[int] | None = None, patch_start: int = 0,
                 biases: Iterable[RelativeBias] = (), residual: torch.Tensor | npt.ArrayLike | None = None,
                 residual_checks: Iterable[bool] | None = None) -> None:
        self._records: Sequence[QKRecord | WeightsRecord] = records
        self._masks: list[torch.Tensor] = masks
        self._biases: list[RelativeBias] = list(biases)
        self.token_ids = np.asarray(token_ids, dtype=np.int64)
        self.tokens: list[str] = list(tokens)
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        self.special = np.asarray(special, dtype=bool)
        self.generated = np.asarray(generated, dtype=bool)
        self.partial = np.asarray(partial, dtype=bool)
        self.text: str | None = text
        self.model_name: str = model_name
        self.is_causal: bool = bool(is_causal)
        self.num_heads: int = int(num_heads)
        self.layer_names: list[str] = [r.name for r in records]
        # Cross-attention (Seq2SeqCapture.cross): the keys are another sequence's tokens.
        self.is_cross: bool = key_tokens is not None
        self.key_tokens: list[str] = self.tokens if key_tokens is None else list(key_tokens)
        self.key_token_ids = self.token_ids if key_token_ids is None else np.asarray(key_token_ids, dtype=np.int64)
        # Vision: the preprocessed picture (uint8 [height, width, 3]) and the patch tokens' grid
        # (rows, cols), which start at token ``patch_start`` and run row by row.
        self.image = None if image is None else np.ascontiguousarray(image, dtype=np.uint8)
        self.patch_grid = None if patch_grid is None else (int(patch_grid[0]), int(patch_grid[1]))
        self.patch_start = int(patch_start)
        # capture(..., residual=True): the hidden state entering each block and leaving the last one,
        # float32 [layers + 1, tokens, hidden] (attnwidget.flow_routes decomposes it); None otherwise
        self.residual = None if residual is None else torch.as_tensor(residual, dtype=torch.float32)
        # per block, with values too: the block's output was input + attention output + FFN output, the
        # split flow_routes makes (False: a norm after the sum or after the attention); None: not checked
        self.residual_checks = None if residual_checks is None else [bool(c) for c in residual_checks]

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self._records)

    @property
    def num_tokens(self) -> int:
        """Query positions (the rows of a pattern)."""
        return len(self.token_ids)

    @property
    def num_keys(self) -> int:
        """Key positions (the columns of a pattern): ``num_tokens`` except for cross-attention."""
        return len(self.key_token_ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by the recorded tensors (queries, keys, masks or weights)."""
        total = sum(m.numel() * m.element_size() for m in self._masks)
        total += sum(b.weight.numel() * b.weight.element_size() for b in self._biases)
        for r in self._records:
            tensors = [r.weights] if isinstance(r, WeightsRecord) else [r.query, r.key, r.value, r.out_proj, r.out_bias]
            total += sum(t.numel() * t.element_size() for t in tensors if t is not None)
        if self.residual is not None:
            total += self.residual.numel() * self.residual.element_size()
        return total

    def __repr__(self) -> str:
        kind = "causal" if self.is_causal else "bidirectional"
        return (f"<Capture {self.model_name}: {self.num_tokens} tokens, {self.num_layers} layers x "
                f"{self.num_heads} heads, {kind}>")

    # -- patterns ------------------------------------------------------------------------------
    def _layer(self, layer: object) -> int:
        return check_layer(layer, self.num_layers)

    def _heads(self, head: object) -> torch.Tensor | None:
        if head is None or isinstance(head, (str, int, np.integer)):  # one head (bools refused there)
            head = check_head(head, self.num_heads)
            if head is None:
                return None
        heads = check_indices(head, self.num_heads, "head", "heads per layer", allow_empty=False)
        return torch.as_tensor(heads, dtype=torch.long)

    def _rows(self, rows: Rows) -> torch.Tensor:
        n = self.num_tokens
        if rows is None:
            return torch.arange(n)
        if isinstance(rows, slice):
            return torch.arange(n)[rows]
        return torch.as_tensor(check_indices(rows, n, "rows", "tokens"), dtype=torch.long)

    def _visible(self, record: QKRecord, rows: torch.Tensor | range) -> int:
        """Keys a block of query rows can see: for plain causal attention, up to the block's last row
        (later keys get weight exactly 0, so they are skipped, halving the work of a full pass)."""
        n_keys = record.key.shape[1]
        if record.mask < 0 and record.causal and len(rows):
            last = rows[-1] if isinstance(rows, range) else int(rows.max())  # a range: increasing
            return min(n_keys, last + n_keys - record.query.shape[1] + 1)
        return n_keys

    def _scores(self, layer: int, heads: torch.Tensor | Sequence[int] | None, rows: torch.Tensor | range, visible: int,
                out: torch.Tensor | None = None, mask_future: bool = True, masked: bool = True) -> torch.Tensor:
        """Scores before the softmax, as eager attention computes them: float32 ``[heads, rows, visible]``.

        Same order of operations as transformers' eager attention: ``(q @ k^T) * scaling``, then
        soft-capping, then the mask (future keys of plain causal attention: the dtype's minimum).
        Query heads that share a key head (grouped-query attention) are stacked as the rows of one
        matmul, so keys are never copied per head. ``out``: a contiguous float32 buffer to write into.
        ``mask_future=False`` leaves the future keys of plain causal attention unmasked (for a caller
        that stops each row at its own position anyway, like the pattern engine); ``masked=False``
        returns the scores before any mask (the query-key view's score).
        """
        record = cast(QKRecord, self._records[layer])  # scores exist where queries and keys were recorded
        h_all, groups = record.query.shape[0], record.query.shape[0] // record.key.shape[0]
        head_list = list(range(h_all)) if heads is None else [int(h) for h in heads]
        q = _take_rows(record.query, rows)  # [H, r, d] view when the rows are consecutive
        r = q.shape[1]
        scores = out if out is not None else torch.empty(len(head_list), r, visible)
        # A power-of-two scaling (head_dim 64, 256, ...) is exact on the queries: same scores, one pass less.
        exact_fold = math.frexp(record.scaling)[0] == 0.5
        start = 0
        while start < len(head_list):  # runs of consecutive query heads sharing one key head: one matmul
            stop = start + 1
            while (stop < len(head_list) and head_list[stop] // groups == head_list[start] // groups
                   and head_list[stop] == head_list[stop - 1] + 1):
                stop += 1
            h0 = head_list[start]
            qh = q[h0:h0 + stop - start].reshape((stop - start) * r, -1).float()
            if exact_fold:
                qh = qh * record.scaling
            key = record.key[h0 // groups, :visible].float()
            torch.mm(qh, key.T, out=scores[start:stop].view((stop - start) * r, visible))
            start = stop
        if not exact_fold:
            scores.mul_(record.scaling)
        if record.bias >= 0:  # T5: the relative position bias, rebuilt for these rows from its table
            scores.add_(relative_bias(self._biases[record.bias], rows, visible, None if heads is None else head_list))
        if record.softcap is not None:
            scores.div_(record.softcap).tanh_().mul_(record.softcap)
        if not masked or (record.mask < 0 and not mask_future):
            return scores
        return self._apply_mask(scores, record, rows, head_list)

    def _weights(self, layer: int, heads: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        """float32 [heads, rows, keys] for one layer (all heads when ``heads`` is None)."""
        record = self._records[layer]
        if isinstance(record, WeightsRecord):
            w = record.weights if heads is None else record.weights[heads]
            return w[:, rows].float()
        n_keys = record.key.shape[1]
        visible = self._visible(record, rows)
        scores = self._scores(layer, heads, rows, visible)
        if record.sinks is not None:
            sinks = record.sinks if heads is None else record.sinks[heads]
            sink = sinks.reshape(-1, 1, 1).expand(-1, scores.shape[1], 1)
            combined = torch.cat([scores, sink], dim=-1)
            combined = combined - combined.max(dim=-1, keepdim=True).values
            weights = torch.softmax(combined, dim=-1)[..., :-1]
        else:
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
        if visible == n_keys:
            return weights
        out = weights.new_zeros(weights.shape[0], weights.shape[1], n_keys)
        out[..., :visible] = weights
        return out

    def _apply_mask(self, scores: torch.Tensor, record: QKRecord, rows: torch.Tensor | range,
                    heads: list[int]) -> torch.Tensor:
        if isinstance(rows, range):
            rows = torch.arange(rows.start, rows.stop, rows.step)
        minimum = torch.finfo(scores.dtype).min
        if record.mask < 0:
            if not record.causal:
                return scores
            offset = record.key.shape[1] - record.query.shape[1]  # queries are the last rows of the keys
            first = int(rows.min()) + offset + 1 if len(rows) else scores.shape[-1]  # no future key before it
            if first < scores.shape[-1]:
                future = torch.arange(first, scores.shape[-1])[None, :] > (rows[:, None] + offset)
                scores[..., first:].masked_fill_(future, minimum)
            return scores
        mask = self._masks[record.mask]
        if mask.dim() == 3:  # a per-head term (BEiT's relative position bias comes as the mask)
            mask = mask if heads == list(range(mask.shape[0])) else mask[heads]
            mask = mask[:, rows][..., :scores.shape[-1]]
        else:
            mask = mask[rows][:, :scores.shape[-1]]
        if mask.dtype == torch.bool:
            return scores.masked_fill_(~mask, minimum)
        return scores.add_(mask.to(scores.dtype))

    def pattern(self, layer: int, head: int | None = None, rows: Rows = None) -> np.ndarray:
        """Attention weights of one layer as float32 ``[query, key]``.

        ``head=None`` averages over heads; ``rows`` (a slice, an int or a list of ints) computes only
        those query rows, in blocks, so a few rows of a long sequence cost little memory.
        """
        layer = self._layer(layer)
        heads = self._heads(head)
        row_index = self._rows(rows)
        n_heads = self.num_heads if heads is None else len(heads)
        block = max(1, ROW_BLOCK_ELEMENTS // max(1, n_heads * self.num_keys))
        out = np.empty((len(row_index), self.num_keys), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(row_index), block):
                chunk = row_index[start:start + block]
                weights = self._weights(layer, heads, chunk)
                out[start:start + len(chunk)] = weights.mean(dim=0).numpy()
        return out

    def head_patterns(self, layer: int, rows: Rows = None) -> np.ndarray:
        """All heads of one layer: float32 ``[head, query, key]``."""
        layer = self._layer(layer)
        with torch.no_grad():
            return self._weights(layer, None, self._rows(rows)).numpy()

    def patterns(self, layers: Layers = None) -> np.ndarray:
        """Weights of several layers: float32 ``[layer, head, query, key]`` (all layers by default).

        This holds ``len(layers) x heads x tokens^2`` floats: prefer :meth:`pattern` with ``rows``
        for long sequences.
        """
        layer_list = check_layers(layers, self.num_layers)
        n, k = self.num_tokens, self.num_keys
        check_fits(4 * len(layer_list) * self.num_heads * n * k,
                   f"patterns() for {len(layer_list)} layers x {self.num_heads} heads x "
                   + (f"{n}^2 tokens" if n == k else f"{n} x {k} tokens"),
                   "Ask for fewer layers, or rows of one layer with pattern(layer, head, rows=...); the "
                   "analysis functions read a Capture through the pattern engine and need none of this.")
        out = np.empty((len(layer_list), self.num_heads, n, k), dtype=np.float32)
        for i, layer in enumerate(layer_list):
            out[i] = self.head_patterns(layer)
        return out

    # -- beyond raw weights (attnwidget.contributions) -------------------------------------------
    def query_key(self, layer: int, head: int, query: int, key: int) -> QueryKey:
        """One score taken apart: q and k (after rotary), their elementwise products, the score before mask
        and softmax, the scaling and the weight (``== pattern(layer, head)[query, key]``); see
        :class:`attnwidget.contributions.QueryKey`."""
        from .contributions import query_key

        return query_key(self, layer, head, query, key)

    @property
    def has_values(self) -> bool:
        """Values and output projections were recorded (``capture(..., values=True)``)."""
        from .contributions import has_values

        return has_values(self)

    def contributions(self, layer: int, head: int | None = None, rows: Rows = None, *,
                      normalize: bool = False) -> np.ndarray:
        """Value-weighted contributions (Kobayashi et al. 2020), float32 ``[rows, keys]``:
        ``||alpha_ij f_h(x_j)||`` for a head, ``||sum_h alpha_ij^h f_h(x_j)||`` for ``head=None``; rows in
        blocks (memory linear in tokens). Needs ``capture(..., values=True)``. See
        :func:`attnwidget.contributions.contributions`."""
        from .contributions import contributions

        return contributions(self, layer, head, rows, normalize=normalize)

    def head_outputs(self, layer: int) -> torch.Tensor:
        """``f_h(x_j)`` of every head and key of ``layer``, float32 ``[heads, keys, hidden]`` (values=True)."""
        from .contributions import head_outputs

        return head_outputs(self, layer)

    @classmethod
    def from_attentions(cls, attentions: AttentionSource, tokens: Sequence[str] | None = None,
                        key_tokens: Sequence[str] | None = None, *, model_name: str = "attentions") -> Capture:
        """A Capture from attention you already have: an ``output_attentions`` tuple, a ``[L, 1, H, q,
        k]`` or ``[L, H, q, k]`` array or tensor (any float dtype), or a TransformerLens
        ``ActivationCache``. It is checked as attention, then kept as weights, so it saves, loads and
        shows like a recorded capture. ``key_tokens``: the keys' tokens for cross-attention."""
        from ._from_attentions import capture_from_attentions

        return capture_from_attentions(cls, attentions, tokens, key_tokens, model_name=model_name)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: StrPath) -> Path:
        """Write the capture to one ``.safetensors`` file that :meth:`load` reopens without a model."""
        return _capture_file.save(self, path)

    @classmethod
    def load(cls, path: StrPath) -> Capture | Seq2SeqCapture:
        """Reopen a capture written by :meth:`save`. The file is checked before use (see
        ``attnwidget._capture_file``): other formats, damaged files and inconsistent descriptions are
        refused with a :class:`~attnwidget.errors.CaptureFileError`; nothing in the file is run."""
        return _capture_file.load(cls, path)


def _take_rows(t: torch.Tensor, rows: torch.Tensor | range) -> torch.Tensor:
    """``t[:, rows]``, as a view when the rows are consecutive (the usual row block; a ``range``
    from the pattern engine is taken as one without looking at it)."""
    if isinstance(rows, range) and rows.step == 1:
        return t.narrow(1, rows.start, len(rows))
    if len(rows):
        first, last = int(rows[0]), int(rows[-1])
        if last - first + 1 == len(rows) and (len(rows) < 3 or isinstance(rows, range)
                                              or bool((rows.diff() == 1).all())):
            return t.narrow(1, first, len(rows))
    return t[:, rows]


def capture(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | ImageProcessingMixin,
            inputs: TextInput | ImageInput, *, target: TextInput | None = None, generate: int = 0,
            attention_mask: torch.Tensor | npt.ArrayLike | None = None, add_generation_prompt: bool = True,
            method: str = "auto", store_dtype: torch.dtype | str | None = None, values: bool = False,
            residual: bool = False) -> Capture | Seq2SeqCapture:
    """Run ``model`` once on ``inputs`` and return a :class:`Capture` of every layer's attention.

    ``inputs``: a string, chat messages (``[{"role": ..., "content": ...}, ...]``, rendered with the
    tokenizer's chat template) or token ids (list, 1-D array, ``[1, n]`` tensor; ``attention_mask``
    may mark padding with zeros). ``generate=N`` first appends ``N`` greedily generated tokens
    (flagged in ``Capture.generated``). ``method``: ``"qk"`` records queries and keys through
    transformers' attention interface (exact, memory ~ tokens x head_dim), ``"weights"`` takes the
    weights eager attention returns (memory ~ tokens^2), ``"auto"`` uses ``"qk"`` when the model
    supports it. The model is left exactly as it was, also when something raises.

    ``values=True`` also records each layer's values and output projection, for
    :meth:`Capture.contributions` and ``measure="contribution"`` (about 1.25x the memory of queries and
    keys with grouped-query attention, 1.5x without); ``residual=True`` records the hidden state between
    blocks, ``[layers + 1, tokens, hidden]``, which :func:`attnwidget.flow_routes` decomposes. Both need the
    query/key recorder.

    Other families:

    * an encoder-decoder model (T5, BART, Marian, Pegasus, ...): ``inputs`` is the source and
      ``target`` the decoder's text or ids, or ``generate=N`` makes it greedily; the result is a
      :class:`~attnwidget.seq2seq.Seq2SeqCapture` (encoder, decoder and cross-attention);
    * a vision transformer (ViT, DeiT, BEiT, DINOv2, CLIP and SigLIP vision towers): pass its image
      processor instead of a tokenizer and an image (PIL image, path or array) as ``inputs``; the
      Capture's tokens are ``[CLS]`` and ``patch r,c``, and it keeps the preprocessed picture.
    """
    from ._engine import preload
    from ._vision import is_image_processor

    method = check_choice(method, ("auto", "qk", "weights"), "method")
    values, residual = check_flag(values, "values"), check_flag(residual, "residual")
    store_dtype = check_float_dtype(store_dtype, "store_dtype")
    if not is_int(generate) or generate < 0:
        raise ArgumentError(f"generate must be a non-negative int (tokens to append); got {generate!r}")
    if is_image_processor(tokenizer):
        check_model(model)
        _only_text_options(model, target=target, generate=generate, attention_mask=attention_mask)
        preload()
        from ._capture_vision import capture_image

        return capture_image(model, tokenizer, inputs, method=method, store_dtype=store_dtype, values=values,
                             residual=residual)
    check_model(model, tokenizer)
    if getattr(model, "main_input_name", "input_ids") == "pixel_values":
        raise ArgumentError(
            f"{type(model).__name__} reads images, not text: pass its image processor and an image, "
            "capture(model, image_processor, image), e.g. AutoImageProcessor.from_pretrained(<the model's name>)."
        )
    preload()  # the pattern engine's kernels load while the model runs
    from ._capture_seq2seq import capture_seq2seq, is_seq2seq

    if is_seq2seq(model):
        if residual:
            raise ArgumentError(
                "residual=True records the hidden state between the blocks of one stack of layers; an "
                f"encoder-decoder ({type(model).__name__}) has two, joined by cross-attention, which "
                "attnwidget.flow_routes does not trace yet. Use values=True for contributions."
            )
        return capture_seq2seq(model, tokenizer, inputs, target=target, generate=int(generate),
                               attention_mask=attention_mask, method=method, store_dtype=store_dtype,
                               values=values)
    if target is not None:
        raise ArgumentError(
            f"target= is the decoder's text for encoder-decoder models; {type(model).__name__} is not one. "
            "For a decoder-only model put the whole text in inputs (or use generate=N to continue it)."
        )
    encoded = encode(tokenizer, inputs, attention_mask=attention_mask,
                     add_generation_prompt=add_generation_prompt)
    ids = encoded.ids
    check_ids(model, ids)
    limit = context_length(model)
    if limit is not None and ids.shape[1] + generate > limit:
        raise ArgumentError(
            f"the input is {ids.shape[1]} tokens (+{generate} to generate) but {type(model).__name__} "
            f"handles at most {limit} positions; shorten the text or capture it in pieces"
        )
    with model_lock(model), torch.no_grad():  # one capture of a model at a time (see _recorder)
        if generate:
            ids = generate_ids(model, encoded, int(generate))
        kwargs = forward_kwargs(model, ids, encoded.attention_mask)
        recording = run(model, method, store_dtype,
                        lambda weights: model(**kwargs, output_attentions=True) if weights else model(**kwargs),
                        attention_mask=encoded.attention_mask, values=values, residual=residual)
    release_free_memory()  # the forward's activations are freed; give their pages back
    readable, text, offsets = describe(tokenizer, encoded, ids[0])
    generated = np.zeros(ids.shape[1], dtype=bool)
    generated[encoded.ids.shape[1]:] = True
    return capture_of(recording, "self", token_ids=ids[0].numpy(), tokens=readable.tokens, offsets=offsets,
                      special=readable.special, generated=generated, partial=readable.partial, text=text,
                      model_name=model_name(model), is_causal=None, model=model,
                      attention_mask=encoded.attention_mask)


def capture_of(recording: Recording, part: str, *, is_causal: bool | None, model: PreTrainedModel | None = None,
               attention_mask: torch.Tensor | None = None, **fields: Any) -> Capture:
    """The Capture of one part of a recording (``"self"`` for a plain model)."""
    records, masks, biases = _own(recording.ordered(part), recording.masks, recording.biases)
    if part == "self" and recording.residual is not None:
        fields["residual"] = recording.residual
        fields["residual_checks"] = recording.residual_checks
    first = records[0]
    num_heads = first.weights.shape[0] if isinstance(first, WeightsRecord) else first.query.shape[0]
    if is_causal is None:
        is_causal = model_is_causal(model, records, attention_mask)
    return Capture(records=records, masks=masks, biases=biases, is_causal=is_causal, num_heads=num_heads, **fields)


def _own(records: list[QKRecord | WeightsRecord], masks: list[torch.Tensor],
         biases: list[RelativeBias]) -> tuple[list[QKRecord | WeightsRecord], list[torch.Tensor], list[RelativeBias]]:
    """The records re-indexed into just the masks and bias tables they use (the parts of an
    encoder-decoder recording share one list, whose masks have each part's own shape)."""
    import dataclasses

    mask_ids = sorted({r.mask for r in records if isinstance(r, QKRecord) and r.mask >= 0})
    bias_ids = sorted({r.bias for r in records if isinstance(r, QKRecord) and r.bias >= 0})
    new_mask = {old: i for i, old in enumerate(mask_ids)}
    new_bias = {old: i for i, old in enumerate(bias_ids)}
    records = [dataclasses.replace(r, mask=new_mask.get(r.mask, -1), bias=new_bias.get(r.bias, -1))
               if isinstance(r, QKRecord) else r for r in records]
    return records, [masks[i] for i in mask_ids], [biases[i] for i in bias_ids]


def _only_text_options(model: PreTrainedModel, **options: object) -> None:
    given = [k for k, v in options.items() if v is not None and v is not False and v != 0]
    if given:
        raise ArgumentError(
            f"{', '.join(given)} apply to text models; {type(model).__name__} takes an image. Call "
            "capture(model, image_processor, image) without them."
        )
