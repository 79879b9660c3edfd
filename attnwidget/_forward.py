"""One recorded forward of a model: the checks before it, the recorder around it, the checks after.

Shared by every family's capture (text models in ``capture.py``, encoder-decoders in
``_capture_seq2seq.py``, vision models in ``_capture_vision.py``), so that each refusal is written once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from ._recorder import (
    QKRecord,
    Recording,
    UnsupportedAttentionError,
    WeightsRecord,
    _eval_mode,
    _implementations,
    attention_modules,
    record_qk,
    record_weights,
)
from .errors import ArgumentError, ArgumentTypeError, OutOfRangeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ._inputs import Encoded
    from ._recorder import PartOf

_NO_TOKENIZER = object()  # a vision model is checked without one


def check_model(model: object, tokenizer: object = _NO_TOKENIZER) -> None:
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise ArgumentTypeError(
            f"capture expects a transformers PreTrainedModel; got {type(model).__name__}. "
            "Load one with attnwidget.load_model(...) or AutoModel*.from_pretrained(...)."
        )
    if tokenizer is not _NO_TOKENIZER and (not callable(tokenizer) or not hasattr(tokenizer, "convert_ids_to_tokens")):
        raise ArgumentTypeError(
            f"capture expects the model's tokenizer (or, for a vision model, its image processor) as its "
            f"second argument; got {type(tokenizer).__name__}"
        )
    meta = next((p for p in model.parameters() if p.is_meta), None)
    if meta is not None and not getattr(model, "hf_device_map", None):  # offloaded weights load on use
        raise ArgumentError(
            f"{type(model).__name__}'s weights are on the meta device (shapes only, no values), so it "
            "cannot run. Load it with real weights (from_pretrained without device_map='meta' or "
            "init_empty_weights), or materialise them before capturing."
        )


def check_ids(model: PreTrainedModel, ids: torch.Tensor) -> None:
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


def context_length(model: PreTrainedModel) -> int | None:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def forward_kwargs(model: PreTrainedModel, ids: torch.Tensor, attention_mask: torch.Tensor | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"input_ids": ids.to(model.device), "use_cache": False}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask.to(model.device)
    import inspect

    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        kwargs["logits_to_keep"] = 1  # the capture needs no logits: skip the n x vocab matrix
    return kwargs


def run(model: PreTrainedModel, method: str, store_dtype: torch.dtype | None, forward: Callable[[bool], object],
        part_of: PartOf | None = None, attention_mask: torch.Tensor | None = None, values: bool = False,
        residual: bool = False) -> Recording:
    """Record one forward (``forward(output_attentions)`` runs the model) with the recorder for
    ``method``; the weights fallback's result is checked, retried in eager attention when it fails
    (as loading with ``attn_implementation="eager"`` would), and refused when that fails too.
    ``attention_mask`` (``[1, n]``, 0 for padding): padded query rows see no real key, so the causal check
    skips them (eager gives them some weight everywhere; the views do not read them). ``values`` and
    ``residual`` (see :mod:`attnwidget._values`) need the query/key recorder: a model it cannot record is
    refused rather than given weights without them."""
    use_qk = method == "qk" or (method == "auto" and model._can_set_attn_implementation())
    if method == "qk" and not model._can_set_attn_implementation():
        raise UnsupportedAttentionError(
            f"{type(model).__name__} does not route attention through transformers' AttentionInterface; "
            "use method='weights' (or 'auto')"
        )
    extras = [name for name, wanted in (("values=True", values), ("residual=True", residual)) if wanted]
    if extras and (method == "weights" or not use_qk):
        raise UnsupportedAttentionError(
            f"{' and '.join(extras)} need the query/key recorder (method='auto' or 'qk' on a model whose attention "
            f"goes through transformers' AttentionInterface); {type(model).__name__} with method={method!r} gives "
            "only the weights the model returns. Capture without them."
        )
    qk_refusal = None
    if use_qk:
        try:
            with record_qk(model, store_dtype, part_of=part_of, values=values, residual=residual) as recording:
                forward(False)
        except UnsupportedAttentionError as refusal:  # a term the recorder cannot reproduce
            if method == "qk" or part_of is not None or extras or not getattr(refusal, "weights_may_help", False):
                raise
            qk_refusal = refusal
        else:
            if recording.records or method == "qk":
                return checked(model, recording, method, attention_mask)
            if extras:
                raise UnsupportedAttentionError(
                    f"{' and '.join(extras)}: no attention call of {type(model).__name__} went through transformers' "
                    "AttentionInterface, so there is nothing to record them with. Capture without them."
                )
    with record_weights(model) as recording:
        forward(True)
    if qk_refusal is not None and not recording.records:
        raise qk_refusal
    try:
        return checked(model, recording, method, attention_mask)
    except UnsupportedAttentionError as refusal:
        if all(impl == "eager" for _, impl in _implementations(model)):
            raise
        with forced_eager(model), record_weights(model) as retry:
            forward(True)
        try:
            return checked(model, retry, method, attention_mask)
        except UnsupportedAttentionError:
            advice = ("Use method='auto' (the default): this model's attention goes through transformers' attention "
                      "interface, where attnwidget records queries and keys exactly."
                      if method == "weights" and model._can_set_attn_implementation()
                      else "This model's attention is not supported yet.")
            raise UnsupportedAttentionError(
                f"{refusal} attnwidget also ran it in eager attention, with the same result. {advice}"
            ) from None


@contextmanager
def forced_eager(model: PreTrainedModel) -> Iterator[None]:
    """Every config of the model set to eager attention for the block, as ``from_pretrained(...,
    attn_implementation="eager")`` would have; each restored in ``finally``."""
    saved = _implementations(model)
    try:
        for config, _ in saved:
            config._attn_implementation = "eager"
        yield
    finally:
        for config, implementation in saved:
            config._attn_implementation = implementation


def check_returned_weights(model: PreTrainedModel, recording: Recording,
                           attention_mask: torch.Tensor | None = None) -> None:
    """The weights fallback takes what the model returns as attention: refuse anything that is not
    (non-finite or negative entries, rows not summing to 1, weight on later tokens of a causal model),
    naming the layer. T5's encoder returns its position bias there and Falcon under sdpa returns
    weights computed without its causal mask: wrong answers, never shown as attention."""
    from ._checks import row_sum_tolerance

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    tolerance = row_sum_tolerance(str(dtype).removeprefix("torch."))
    causal = bool(getattr(model.config, "is_decoder", False)) or type(model).__name__.endswith("ForCausalLM")
    for (_, layer), record in sorted(recording.records.items()):
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
        elif causal and w.shape[-1] > 1 and bool(_real_rows(torch.triu(w, 1), attention_mask).any()):
            problem = "weight on later tokens, although the model is causal"
        else:
            continue
        raise UnsupportedAttentionError(
            f"{type(model).__name__} returned, as the attention weights of layer {layer} ({record.name}), "
            f"an array with {problem}: these are not its attention weights, so attnwidget refuses rather "
            "than show them."
        )


def _real_rows(w: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The query rows of real tokens (all rows without a padding mask)."""
    if attention_mask is None:
        return w
    real = attention_mask.reshape(-1).bool()
    return w[:, real] if real.numel() == w.shape[1] else w


def checked(model: PreTrainedModel, recording: Recording, method: str,
            attention_mask: torch.Tensor | None = None) -> Recording:
    check_returned_weights(model, recording, attention_mask)
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


def generate(model: PreTrainedModel, encoded: Encoded, steps: int) -> torch.Tensor:
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


def is_causal(model: PreTrainedModel, records: Sequence[QKRecord | WeightsRecord],
              attention_mask: torch.Tensor | None = None) -> bool:
    qk = [r for r in records if isinstance(r, QKRecord)]
    if qk:
        return any(r.causal for r in qk) or bool(getattr(model.config, "is_decoder", False))
    # Returned weights: causal when no real query (padding rows aside) attends to a later key in any layer.
    returned = [r for r in records if isinstance(r, WeightsRecord)]  # every record, here
    return (returned[0].weights.shape[-1] > 1
            and all(not bool(_real_rows(torch.triu(r.weights, diagonal=1), attention_mask).any()) for r in returned))


def model_name(model: PreTrainedModel) -> str:
    name = getattr(model.config, "name_or_path", "") or type(model).__name__
    base = os.path.basename(str(name).rstrip("/")) or type(model).__name__
    return base
