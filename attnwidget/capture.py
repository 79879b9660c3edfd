"""Capture attention from a transformers model and recompute exact patterns on demand.

``capture(model, tokenizer, text)`` runs one forward pass with a temporary recorder (see
``_recorder.py``) and returns a :class:`Capture` holding, per layer, the query and key the layer
saw. ``Capture.pattern(layer, head, rows)`` recomputes ``softmax(q k^T * scaling + mask)`` for just
the rows asked for, so memory grows with layers x heads x tokens x head_dim, not tokens squared.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from . import _capture_file
from ._memory import check_fits, release_free_memory
from ._inputs import describe, encode
from ._recorder import (
    QKRecord,
    Recording,
    UnsupportedAttentionError,
    WeightsRecord,
    _eval_mode,
    attention_modules,
    model_lock,
    record_qk,
    record_weights,
)
from ._checks import check_choice, check_float_dtype, check_head, check_indices, check_layer, check_layers, is_int
from .errors import ArgumentError, ArgumentTypeError, OutOfRangeError

ROW_BLOCK_ELEMENTS = 1 << 22  # scores computed per block of rows: heads x rows x keys <= 4M floats (16 MiB)


class Capture:
    """Attention of one sequence through every layer of a model.

    Attributes are documented in ``docs/CONTRACTS.md``; patterns are computed on demand.
    """

    def __init__(self, *, records, masks, token_ids, tokens, offsets, special, generated, partial,
                 text, model_name, is_causal, num_heads):
        self._records: list[QKRecord | WeightsRecord] = records
        self._masks: list[torch.Tensor] = masks
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

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self._records)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def nbytes(self) -> int:
        """Bytes held by the recorded tensors (queries, keys, masks or weights)."""
        total = sum(m.numel() * m.element_size() for m in self._masks)
        for r in self._records:
            tensors = [r.weights] if isinstance(r, WeightsRecord) else [r.query, r.key]
            total += sum(t.numel() * t.element_size() for t in tensors)
        return total

    def __repr__(self) -> str:
        kind = "causal" if self.is_causal else "bidirectional"
        return (f"<Capture {self.model_name}: {self.num_tokens} tokens, {self.num_layers} layers x "
                f"{self.num_heads} heads, {kind}>")

    # -- patterns ------------------------------------------------------------------------------
    def _layer(self, layer) -> int:
        return check_layer(layer, self.num_layers)

    def _heads(self, head) -> torch.Tensor | None:
        if head is None or isinstance(head, (str, int, np.integer)):  # one head (bools refused there)
            head = check_head(head, self.num_heads)
            if head is None:
                return None
        heads = check_indices(head, self.num_heads, "head", "heads per layer", allow_empty=False)
        return torch.as_tensor(heads, dtype=torch.long)

    def _rows(self, rows) -> torch.Tensor:
        n = self.num_tokens
        if rows is None:
            return torch.arange(n)
        if isinstance(rows, slice):
            return torch.arange(n)[rows]
        return torch.as_tensor(check_indices(rows, n, "rows", "tokens"), dtype=torch.long)

    def _visible(self, record: QKRecord, rows: torch.Tensor) -> int:
        """Keys a block of query rows can see: for plain causal attention, up to the block's last row
        (later keys get weight exactly 0, so they are skipped, halving the work of a full pass)."""
        n_keys = record.key.shape[1]
        if record.mask < 0 and record.causal and len(rows):
            last = rows[-1] if isinstance(rows, range) else int(rows.max())  # a range: increasing
            return min(n_keys, last + n_keys - record.query.shape[1] + 1)
        return n_keys

    def _scores(self, layer: int, heads: torch.Tensor | None, rows: torch.Tensor, visible: int,
                out: torch.Tensor | None = None, mask_future: bool = True) -> torch.Tensor:
        """Scores before the softmax, as eager attention computes them: float32 ``[heads, rows, visible]``.

        Same order of operations as transformers' eager attention: ``(q @ k^T) * scaling``, then
        soft-capping, then the mask (future keys of plain causal attention: the dtype's minimum).
        Query heads that share a key head (grouped-query attention) are stacked as the rows of one
        matmul, so keys are never copied per head. ``out``: a contiguous float32 buffer to write into.
        ``mask_future=False`` leaves the future keys of plain causal attention unmasked (for a caller
        that stops each row at its own position anyway, like the pattern engine).
        """
        record = self._records[layer]
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
        if record.softcap is not None:
            scores.div_(record.softcap).tanh_().mul_(record.softcap)
        if record.mask < 0 and not mask_future:
            return scores
        return self._apply_mask(scores, record, rows)

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

    def _apply_mask(self, scores: torch.Tensor, record: QKRecord, rows) -> torch.Tensor:
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
        mask = self._masks[record.mask][rows][:, :scores.shape[-1]]
        if mask.dtype == torch.bool:
            return scores.masked_fill_(~mask, minimum)
        return scores.add_(mask.to(scores.dtype))

    def pattern(self, layer: int, head: int | None = None, rows=None) -> np.ndarray:
        """Attention weights of one layer as float32 ``[query, key]``.

        ``head=None`` averages over heads; ``rows`` (a slice, an int or a list of ints) computes only
        those query rows, in blocks, so a few rows of a long sequence cost little memory.
        """
        layer = self._layer(layer)
        heads = self._heads(head)
        row_index = self._rows(rows)
        n_heads = self.num_heads if heads is None else len(heads)
        block = max(1, ROW_BLOCK_ELEMENTS // max(1, n_heads * self.num_tokens))
        out = np.empty((len(row_index), self.num_tokens), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(row_index), block):
                chunk = row_index[start:start + block]
                weights = self._weights(layer, heads, chunk)
                out[start:start + len(chunk)] = weights.mean(dim=0).numpy()
        return out

    def head_patterns(self, layer: int, rows=None) -> np.ndarray:
        """All heads of one layer: float32 ``[head, query, key]``."""
        layer = self._layer(layer)
        with torch.no_grad():
            return self._weights(layer, None, self._rows(rows)).numpy()

    def patterns(self, layers=None) -> np.ndarray:
        """Weights of several layers: float32 ``[layer, head, query, key]`` (all layers by default).

        This holds ``len(layers) x heads x tokens^2`` floats: prefer :meth:`pattern` with ``rows``
        for long sequences.
        """
        layer_list = check_layers(layers, self.num_layers)
        n = self.num_tokens
        check_fits(4 * len(layer_list) * self.num_heads * n * n,
                   f"patterns() for {len(layer_list)} layers x {self.num_heads} heads x {n}^2 tokens",
                   "Ask for fewer layers, or rows of one layer with pattern(layer, head, rows=...); the "
                   "analysis functions read a Capture through the pattern engine and need none of this.")
        out = np.empty((len(layer_list), self.num_heads, n, n), dtype=np.float32)
        for i, layer in enumerate(layer_list):
            out[i] = self.head_patterns(layer)
        return out

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the capture to one ``.safetensors`` file that :meth:`load` reopens without a model."""
        return _capture_file.save(self, path)

    @classmethod
    def load(cls, path) -> "Capture":
        """Reopen a capture written by :meth:`save`. The file is checked before use (see
        ``attnwidget._capture_file``): other formats, damaged files and inconsistent descriptions are
        refused with a :class:`~attnwidget.errors.CaptureFileError`; nothing in the file is run."""
        return _capture_file.load(cls, path)


def _take_rows(t: torch.Tensor, rows) -> torch.Tensor:
    """``t[:, rows]``, as a view when the rows are consecutive (the usual row block; a ``range``
    from the pattern engine is taken as one without looking at it)."""
    if isinstance(rows, range) and rows.step == 1:
        return t.narrow(1, rows.start, len(rows))
    if len(rows):
        first, last = int(rows[0]), int(rows[-1])
        if last - first + 1 == len(rows) and (len(rows) < 3 or bool((rows.diff() == 1).all())):
            return t.narrow(1, first, len(rows))
    return t[:, rows]


def _check_model(model, tokenizer) -> None:
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise ArgumentTypeError(
            f"capture expects a transformers PreTrainedModel; got {type(model).__name__}. "
            "Load one with attnwidget.load_model(...) or AutoModel*.from_pretrained(...)."
        )
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens"):
        raise ArgumentTypeError(
            f"capture expects the model's tokenizer as its second argument; got {type(tokenizer).__name__}"
        )
    meta = next((p for p in model.parameters() if p.is_meta), None)
    if meta is not None and not getattr(model, "hf_device_map", None):  # offloaded weights load on use
        raise ArgumentError(
            f"{type(model).__name__}'s weights are on the meta device (shapes only, no values), so it "
            "cannot run. Load it with real weights (from_pretrained without device_map='meta' or "
            "init_empty_weights), or materialise them before capturing."
        )
    if getattr(model.config, "is_encoder_decoder", False):
        raise UnsupportedAttentionError(
            f"{type(model).__name__} is an encoder-decoder model; attnwidget captures decoder-only and "
            "encoder-only models. Pass the encoder (model.get_encoder()) to study its self-attention."
        )


def _check_ids(model, ids: torch.Tensor) -> None:
    """Token ids the embedding can look up: ``0 <= id < vocabulary size``."""
    try:
        embeddings = model.get_input_embeddings()
    except (AttributeError, NotImplementedError, TypeError):  # models without a standard embedding
        embeddings = None
    size = getattr(embeddings, "num_embeddings", None) or getattr(model.config, "vocab_size", None)
    size = size if isinstance(size, int) and size > 0 else None
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or (size is not None and high >= size):
        bad = low if low < 0 else high
        raise OutOfRangeError(
            f"token id {bad} is out of range: {type(model).__name__} has a vocabulary of {size} ids "
            f"(0..{None if size is None else size - 1}). Were the ids made with this model's tokenizer?"
        )


def _context_length(model) -> int | None:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _forward_kwargs(model, ids, attention_mask) -> dict:
    kwargs = {"input_ids": ids.to(model.device), "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask.to(model.device)
    import inspect

    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = 1  # the capture needs no logits: skip the n x vocab matrix
    return kwargs


def capture(model, tokenizer, inputs, *, generate: int = 0, attention_mask=None,
            add_generation_prompt: bool = True, method: str = "auto", store_dtype=None) -> Capture:
    """Run ``model`` once on ``inputs`` and return a :class:`Capture` of every layer's attention.

    ``inputs``: a string, chat messages (``[{"role": ..., "content": ...}, ...]``, rendered with the
    tokenizer's chat template) or token ids (list, 1-D array, ``[1, n]`` tensor; ``attention_mask``
    may mark padding with zeros). ``generate=N`` first appends ``N`` greedily generated tokens
    (flagged in ``Capture.generated``). ``method``: ``"qk"`` records queries and keys through
    transformers' attention interface (exact, memory ~ tokens x head_dim), ``"weights"`` takes the
    weights eager attention returns (memory ~ tokens^2), ``"auto"`` uses ``"qk"`` when the model
    supports it. The model is left exactly as it was, also when something raises.
    """
    _check_model(model, tokenizer)
    from ._engine import preload

    preload()  # the pattern engine's kernels load while the model runs
    method = check_choice(method, ("auto", "qk", "weights"), "method")
    store_dtype = check_float_dtype(store_dtype, "store_dtype")
    if not is_int(generate) or generate < 0:
        raise ArgumentError(f"generate must be a non-negative int (tokens to append); got {generate!r}")
    encoded = encode(tokenizer, inputs, attention_mask=attention_mask,
                     add_generation_prompt=add_generation_prompt)
    ids = encoded.ids
    _check_ids(model, ids)
    limit = _context_length(model)
    if limit is not None and ids.shape[1] + generate > limit:
        raise ArgumentError(
            f"the input is {ids.shape[1]} tokens (+{generate} to generate) but {type(model).__name__} "
            f"handles at most {limit} positions; shorten the text or capture it in pieces"
        )
    with model_lock(model), torch.no_grad():  # one capture of a model at a time (see _recorder)
        if generate:
            ids = _generate(model, encoded, int(generate))
        recording = _run(model, ids, encoded.attention_mask, method, store_dtype)
    release_free_memory()  # the forward's activations are freed; give their pages back
    records = recording.ordered()
    readable, text, offsets = describe(tokenizer, encoded, ids[0])
    generated = np.zeros(ids.shape[1], dtype=bool)
    generated[encoded.ids.shape[1]:] = True
    first = records[0]
    num_heads = first.weights.shape[0] if isinstance(first, WeightsRecord) else first.query.shape[0]
    return Capture(records=records, masks=recording.masks, token_ids=ids[0].numpy(), tokens=readable.tokens,
                   offsets=offsets, special=readable.special, generated=generated, partial=readable.partial,
                   text=text, model_name=_model_name(model), is_causal=_is_causal(model, records),
                   num_heads=num_heads)


def _run(model, ids, attention_mask, method, store_dtype) -> Recording:
    use_qk = method == "qk" or (method == "auto" and model._can_set_attn_implementation())
    if method == "qk" and not model._can_set_attn_implementation():
        raise UnsupportedAttentionError(
            f"{type(model).__name__} does not route attention through transformers' AttentionInterface; "
            "use method='weights' (or 'auto')"
        )
    kwargs = _forward_kwargs(model, ids, attention_mask)
    if use_qk:
        with record_qk(model, store_dtype) as recording:
            model(**kwargs)
        if recording.records or method == "qk":
            return _checked(model, recording, method)
    with record_weights(model) as recording:
        model(**kwargs, output_attentions=True)
    return _checked(model, recording, method)


def _check_returned_weights(model, recording: Recording) -> None:
    """The weights fallback takes what the model returns as attention: refuse anything that is not
    (non-finite or negative entries, rows not summing to 1, weight on later tokens of a causal model),
    naming the layer. T5's encoder returns its position bias there and Falcon under sdpa returns
    weights computed without its causal mask: wrong answers, never shown as attention."""
    from ._checks import row_sum_tolerance

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    tolerance = row_sum_tolerance(str(dtype).removeprefix("torch."))
    causal = bool(getattr(model.config, "is_decoder", False)) or type(model).__name__.endswith("ForCausalLM")
    for layer, record in sorted(recording.records.items()):
        if not isinstance(record, WeightsRecord):
            continue
        w = record.weights
        sums = w.sum(-1, dtype=torch.float64)
        if not bool(torch.isfinite(w).all()):
            problem = "non-finite values"
        elif bool((w < 0).any()):
            problem = f"negative values (min {float(w.min()):.3g})"
        elif float((sums - 1).abs().max()) > tolerance:
            problem = f"rows summing to {float(sums.min()):.3g}..{float(sums.max()):.3g}, not 1"
        elif causal and w.shape[-1] > 1 and bool(torch.triu(w, 1).any()):
            problem = "weight on later tokens, although the model is causal"
        else:
            continue
        raise UnsupportedAttentionError(
            f"{type(model).__name__} returned, as the attention weights of layer {layer} ({record.name}), "
            f"an array with {problem}: these are not its attention weights, so attnwidget refuses rather "
            "than show them. Load the model with attn_implementation='eager' and capture again; if that is "
            "refused too, this model's attention is not supported yet."
        )


def _checked(model, recording: Recording, method: str) -> Recording:
    _check_returned_weights(model, recording)
    if not recording.records:
        found = attention_modules(model)
        advice = ("; its attention does not go through transformers' attention interface: use "
                  "method='weights' (or 'auto') to take the weights the model returns in eager mode"
                  if method == "qk" else "; capture works on transformer models with self-attention")
        error = UnsupportedAttentionError if method == "qk" else ArgumentError
        raise error(
            f"found no attention layers in {type(model).__name__}"
            + ("" if not found else f" that attnwidget can read (candidates: {[n for n, _ in found][:3]})")
            + advice
        )
    return recording


def _generate(model, encoded, steps: int) -> torch.Tensor:
    if not hasattr(model, "generate") or not getattr(model, "can_generate", lambda: False)():
        raise ArgumentError(f"generate={steps} needs a model that can generate; {type(model).__name__} cannot")
    kwargs = {"input_ids": encoded.ids.to(model.device), "max_new_tokens": steps, "do_sample": False,
              "num_beams": 1}
    mask = encoded.attention_mask if encoded.attention_mask is not None else torch.ones_like(encoded.ids)
    kwargs["attention_mask"] = mask.to(model.device)
    pad = getattr(model.generation_config, "pad_token_id", None)
    if pad is None:
        kwargs["pad_token_id"] = getattr(model.generation_config, "eos_token_id", None)
    with _eval_mode(model):
        out = model.generate(**kwargs)
    if encoded.attention_mask is not None:
        grown = torch.ones(1, out.shape[1] - encoded.ids.shape[1], dtype=torch.long)
        encoded.attention_mask = torch.cat([encoded.attention_mask, grown], dim=1)
    return out.cpu()


def _is_causal(model, records) -> bool:
    qk = [r for r in records if isinstance(r, QKRecord)]
    if qk:
        return any(r.causal for r in qk) or bool(getattr(model.config, "is_decoder", False))
    # Returned weights: causal when no query attends to a later key in any layer.
    return all(bool((torch.triu(r.weights, diagonal=1) == 0).all()) for r in records) and records[0].weights.shape[-1] > 1


def _model_name(model) -> str:
    name = getattr(model.config, "name_or_path", "") or type(model).__name__
    base = os.path.basename(str(name).rstrip("/")) or type(model).__name__
    return base
