"""Temporary recording of what each attention layer sees, undone in ``finally``.

Two ways in, both context managers that leave the model exactly as they found it:

* :func:`record_qk` registers a recorder under a fresh name in transformers' ``AttentionInterface``
  (and the model's own mask function under the same name in ``AttentionMaskInterface``), switches
  the model to it, and restores the original implementation afterwards. The recorder keeps the
  query (after rotary embedding), the key (before grouped-query expansion), the mask, the scaling
  and the extras that shape the pattern, then hands the call to the model's original attention
  function, so the forward output is what the model computes anyway. Memory: layers x heads x
  tokens x head_dim, plus one copy per distinct mask.
* :func:`record_weights` is the fallback for attention that does not go through the interface:
  eager attention with ``output_attentions=True`` and forward hooks on the attention modules
  that keep the returned weights ([heads, n, n] per layer).
"""

from __future__ import annotations

import itertools
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from . import _values
from ._position_bias import RelativeBias, relative_bias
from .errors import UnsupportedAttentionError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    #: ``part_of(module name, module)``: the part an attention call belongs to ("encoder", "decoder", "cross").
    PartOf = Callable[[str, torch.nn.Module], str]
# Keyword arguments an attention call may carry that do not change the pattern.
NEUTRAL_KWARGS = {
    "dropout", "scaling", "is_causal", "sliding_window", "position_ids", "use_cache",
    "output_attentions", "cache_position", "past_key_values", "past_key_value", "layer_idx",
    "head_mask", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "token_type_ids",
    "attention_type", "layer_type", "target_dtype", "output_hidden_states", "return_dict",
}
SINK_KWARGS = ("s_aux", "sinks")

_counter = itertools.count()
RECORDER_PREFIX = "attnwidget_recorder_"
_ACTIVE: set[str] = set()  # recorder names of captures in progress


@dataclass
class QKRecord:
    """What one attention layer saw. Tensors live on the CPU, batch dimension removed."""

    name: str
    query: torch.Tensor  # [heads, n_q, head_dim], after rotary embedding
    key: torch.Tensor  # [kv_heads, n_k, head_dim], before grouped-query expansion
    mask: int  # index into Recording.masks, or -1 for "no mask tensor"
    causal: bool  # with no mask tensor: causal (True) or full (False)
    scaling: float
    softcap: float | None = None
    sinks: torch.Tensor | None = None  # [heads] learned sink logits (gpt-oss style)
    bias: int = -1  # index into Recording.biases (T5's relative position bias), or -1 for none
    # capture(..., values=True): the value [kv_heads, n_k, head_dim_v] (after v_proj and its bias, before
    # grouped-query expansion) and the output projection's per-head slices [heads, head_dim_v, hidden]
    # with its bias [hidden]: head h maps value j into the residual stream as value[h // groups, j] @ out_proj[h]
    value: torch.Tensor | None = None
    out_proj: torch.Tensor | None = None
    out_bias: torch.Tensor | None = None


@dataclass
class WeightsRecord:
    """Attention weights returned by the model itself (fallback path)."""

    name: str
    weights: torch.Tensor  # [heads, n_q, n_k], float32


@dataclass
class Recording:
    """What one recorded forward saw, by part (``"self"`` for a plain model; ``"encoder"``,
    ``"decoder"`` and ``"cross"`` for an encoder-decoder) and layer."""

    records: dict[tuple[str, int], QKRecord | WeightsRecord] = field(default_factory=dict)
    masks: list[torch.Tensor] = field(default_factory=list)  # bool [n_q, n_k] or additive float
    biases: list[RelativeBias] = field(default_factory=list)
    residual: torch.Tensor | None = None  # capture(..., residual=True): float32 [layers + 1, n, hidden]
    # with values too: per block, its output is input + attention output + FFN output (_values.ResidualStream)
    residual_checks: list[bool] | None = None
    _mask_ids: dict[int, int] = field(default_factory=dict)
    _bias_ids: dict[int, int] = field(default_factory=dict)
    _mask_refs: list[torch.Tensor] = field(default_factory=list)

    def ordered(self, part: str = "self") -> list[QKRecord | WeightsRecord]:
        return [self.records[k] for k in sorted(k for k in self.records if k[0] == part)]

    def parts(self) -> set[str]:
        return {part for part, _ in self.records}

    def add_mask(self, mask: Any, n_q: int, n_k: int) -> int:  # a mask tensor or a flex attention BlockMask
        """Store one CPU copy per distinct mask tensor (layers usually share one), as ``[n_q, n_k]``:
        a mask broadcast over query rows (an encoder's padding mask) is expanded, and a flex
        attention ``BlockMask`` is evaluated into the dense boolean mask it stands for."""
        key = id(mask)
        if key not in self._mask_ids:
            self._mask_refs.append(mask)  # keeps the id valid during the forward
            flat = _dense_mask(mask, n_q, n_k)
            if flat.dim() == 4:  # [batch, heads, q, k]: one sequence
                if flat.shape[0] != 1:
                    raise UnsupportedAttentionError(f"expected a mask for one sequence; got shape {tuple(mask.shape)}")
                flat = flat[0]
            if flat.dim() == 3 and flat.shape[0] == 1:
                flat = flat[0]  # broadcast over heads
            flat = flat[..., :n_k].to("cpu").clone()
            if flat.dim() >= 2 and flat.shape[-2] == 1 and n_q > 1:
                flat = flat.expand(*flat.shape[:-2], n_q, n_k)  # a view: one row of storage for every query
            # [q, k], or [heads, q, k] for a per-head additive term passed as the mask (BEiT's relative
            # position bias): kept whole, like the weights of the fallback
            if tuple(flat.shape[-2:]) != (n_q, n_k) or flat.dim() not in (2, 3):
                raise UnsupportedAttentionError(
                    f"expected an attention mask of [{n_q} queries, {n_k} keys] (optionally per head); got "
                    f"shape {tuple(mask.shape)}"
                )
            self._mask_ids[key] = len(self.masks)
            self.masks.append(flat)
        return self._mask_ids[key]

    # module: Any, a T5-like attention module whose relative_attention_bias and bucket settings are read
    def add_bias(self, module: Any, position_bias: torch.Tensor) -> int:
        """The index of a T5-style relative position bias in :attr:`biases` (-1 for an all-zero
        bias), after checking that the tensor the layer received is exactly what the recorded table
        rebuilds; anything else is refused rather than approximated."""
        key = id(position_bias)
        if key in self._bias_ids:
            return self._bias_ids[key]
        self._mask_refs.append(position_bias)
        pb = position_bias.detach()
        if not bool(pb.any()):
            index = -1  # T5's cross-attention and layers without their own table pass zeros
        elif getattr(module, "has_relative_attention_bias", False) and hasattr(module, "relative_attention_bias"):
            bias = RelativeBias(
                weight=module.relative_attention_bias.weight.detach().float().cpu().clone(),
                bidirectional=not bool(getattr(module, "is_decoder", False)),
                num_buckets=int(module.relative_attention_num_buckets),
                max_distance=int(module.relative_attention_max_distance),
            )
            n_q, n_k = pb.shape[-2], pb.shape[-1]
            rebuilt = relative_bias(bias, range(n_q), n_k).to(pb.dtype)
            if pb.dim() != 4 or pb.shape[0] != 1 or not torch.equal(rebuilt, pb[0].cpu()):
                raise UnsupportedAttentionError(
                    f"{type(module).__name__} passes a position_bias that is not its relative position table "
                    "alone (a mask folded in, or a cache offset); attnwidget cannot reproduce it exactly, so it "
                    "refuses rather than answer wrongly."
                )
            index = len(self.biases)
            self.biases.append(bias)
        else:
            raise _weights_may_help(UnsupportedAttentionError(
                f"{type(module).__name__} passes a non-zero position_bias that attnwidget cannot trace to a "
                "relative position table; it refuses rather than answer wrongly. Use capture(..., "
                "method='weights') to take the weights the model returns in eager mode."
            ))
        self._bias_ids[key] = index
        return index

    def release(self) -> None:
        self._mask_refs.clear()
        self._mask_ids.clear()
        self._bias_ids.clear()


def _weights_may_help(error: UnsupportedAttentionError) -> UnsupportedAttentionError:
    """Mark a refusal of the query/key recorder after which ``method="auto"`` tries the weights the
    model returns (checked like any returned weights) before refusing."""
    error.weights_may_help = True
    return error


def _dense_mask(mask: object, n_q: int, n_k: int) -> torch.Tensor:
    """A tensor mask as it is; a flex attention ``BlockMask`` as the boolean ``[n_q, n_k]`` mask its
    ``mask_mod`` defines (``True``: the query sees the key)."""
    if isinstance(mask, torch.Tensor):
        return mask.detach()
    mask_mod = getattr(mask, "mask_mod", None)
    if mask_mod is None:
        raise UnsupportedAttentionError(
            f"expected an attention mask tensor or a flex attention BlockMask; got {type(mask).__name__}"
        )
    from torch.nn.attention.flex_attention import create_mask

    with torch.no_grad():
        dense = create_mask(mask_mod, 1, 1, n_q, n_k, device="cpu")[0, 0]
    return dense.to(torch.bool)


def _cpu_copy(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    out = t.detach().to(device="cpu", dtype=dtype or t.dtype)
    return out.clone(memory_format=torch.contiguous_format) if out.data_ptr() == t.data_ptr() else out.contiguous()


def _original_attention(model: PreTrainedModel, implementation: str) -> Callable[..., Any]:
    """The function the model would call for ``implementation``."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if implementation in ALL_ATTENTION_FUNCTIONS:
        return ALL_ATTENTION_FUNCTIONS[implementation]
    if implementation == "eager":
        per_module: dict[str, Callable[..., Any]] = {}

        def eager(module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            mod = type(module).__module__
            if mod not in per_module:
                fn = getattr(sys.modules[mod], "eager_attention_forward", None)
                if fn is None:
                    raise UnsupportedAttentionError(f"{mod} has no eager_attention_forward to delegate to")
                per_module[mod] = fn
            return per_module[mod](module, *args, **kwargs)

        return eager
    raise UnsupportedAttentionError(
        f"attention implementation {implementation!r} is not registered in transformers' AttentionInterface"
    )


def _mask_function(implementation: str) -> Callable[..., Any]:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if implementation in ALL_MASK_ATTENTION_FUNCTIONS and not implementation.startswith("flash"):
        return ALL_MASK_ATTENTION_FUNCTIONS[implementation]
    return sdpa_mask


def _implementations(model: PreTrainedModel) -> list[tuple[PretrainedConfig, str | None]]:
    """Every config in the model with its attention implementation (composite models have several)."""
    seen: set[int] = set()
    out: list[tuple[PretrainedConfig, str | None]] = []
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and id(config) not in seen and hasattr(config, "_attn_implementation"):
            seen.add(id(config))
            out.append((config, config._attn_implementation))
    return out


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Dropout off for the capture; every module's own ``training`` flag restored exactly afterwards
    (``model.train()`` on a parent would also flip children the user had put in eval mode)."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


_LOCKS_GUARD = threading.Lock()
_LOCKS: "weakref.WeakKeyDictionary[torch.nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
#: recorder name -> the implementation it replaced, kept until that capture has restored it; a name
#: still here after its capture ended (a process killed mid-capture cannot reach this, but a
#: KeyboardInterrupt inside a C call can) lets the next capture put the real implementation back.
_REPLACED: dict[str, str] = {}


@contextmanager
def model_lock(model: torch.nn.Module) -> Iterator[None]:
    """Serialise captures of one model: the attention implementation is per model, so two captures of
    the same model at once would each read (and restore) the other's recorder. Captures of different
    models run in parallel."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
    with lock:
        yield


def repair_stale_recorder(model: PreTrainedModel) -> None:
    """A model left pointing at a recorder that no longer exists (a capture interrupted before its
    ``finally`` ran) gets its real implementation back, with a warning."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    repaired: dict[str, str] = {}
    for config, implementation in _implementations(model):
        if not isinstance(implementation, str) or not implementation.startswith(RECORDER_PREFIX):
            continue
        if implementation in ALL_ATTENTION_FUNCTIONS and implementation in _ACTIVE:
            continue  # a capture running now (another thread of this model would hold the lock)
        if implementation not in repaired:
            real = _REPLACED.get(implementation) or ("sdpa" if getattr(model, "_supports_sdpa", False) else "eager")
            repaired[implementation] = real
            warnings.warn(
                f"{type(model).__name__} was left using attnwidget's recorder {implementation!r} by a "
                f"capture that did not finish; restoring its attention implementation to {real!r}.",
                RuntimeWarning, stacklevel=4,
            )
        config._attn_implementation = repaired[implementation]
    for name in repaired:
        _REPLACED.pop(name, None)


@contextmanager
def record_qk(model: PreTrainedModel, store_dtype: torch.dtype | None = None, part_of: PartOf | None = None,
              values: bool = False, residual: bool = False) -> Iterator[Recording]:
    """Record query/key per attention layer for the duration of the block (see module docstring).
    ``values``: also each layer's value and output projection; ``residual``: the hidden state between
    blocks (both: :mod:`attnwidget._values`; their hooks are removed in ``finally`` too).

    Captures of one model are serialised (:func:`model_lock`); only calls from the capturing thread
    are recorded, so another thread's plain forward of the same model during the capture is answered
    by the model's own implementation and leaves the recording alone."""
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    with model_lock(model):
        repair_stale_recorder(model)
        name = f"{RECORDER_PREFIX}{next(_counter)}"
        original = model.config._attn_implementation
        saved = _implementations(model)
        delegate = _original_attention(model, original)
        names = {id(m): n for n, m in model.named_modules()}
        recording = Recording()
        owner = threading.get_ident()

        projections: _values.OutputProjections | None = None
        stream: _values.ResidualStream | None = None

        def recorder(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != owner:
                return delegate(module, query, key, value, attention_mask, **kwargs)
            record = _record(recording, names, module, query, key, attention_mask, kwargs, store_dtype, part_of)
            result = delegate(module, query, key, value, attention_mask, **kwargs)
            if projections is not None:
                record.value = _cpu_copy(value[0], store_dtype)
                projections.expect(record, result[0] if isinstance(result, tuple) else result)
            return result

        _REPLACED[name] = original
        _ACTIVE.add(name)
        AttentionInterface.register(name, recorder)
        AttentionMaskInterface.register(name, _mask_function(original))
        try:
            with _eval_mode(model):
                model.set_attn_implementation(name)
                for config, implementation in saved:  # configs set_attn_implementation did not reach
                    if implementation == original and config._attn_implementation != name:
                        config._attn_implementation = name  # (EncoderDecoderModel's modules keep stale copies)
                if model.config._attn_implementation != name:
                    raise UnsupportedAttentionError(
                        f"{type(model).__name__} refused to switch its attention implementation"
                    )
                if values:
                    projections = _values.OutputProjections(model, owner)
                if residual:
                    stream = _values.ResidualStream(model, [n for n, _ in attention_modules(model)], owner, projections)
                yield recording
                if projections is not None and recording.records:
                    projections.check(recording)
                if stream is not None and recording.records:
                    recording.residual = stream.stacked()
                    recording.residual_checks = stream.block_checks()
        finally:
            for hooks in (projections, stream):
                if hooks is not None:
                    hooks.remove()
            try:
                model.set_attn_implementation(original)
            finally:
                for config, implementation in saved:
                    if config._attn_implementation != implementation:
                        config._attn_implementation = implementation
                AttentionInterface._global_mapping.pop(name, None)
                AttentionMaskInterface._global_mapping.pop(name, None)
                _ACTIVE.discard(name)
                if all(c._attn_implementation != name for c, _ in _implementations(model)):
                    _REPLACED.pop(name, None)
                recording.release()


def _record(recording: Recording, names: dict[int, str], module: torch.nn.Module, query: torch.Tensor,
            key: torch.Tensor, mask: object, kwargs: dict[str, Any], store_dtype: torch.dtype | None,
            part_of: PartOf | None = None) -> QKRecord:
    if query.shape[0] != 1:
        raise UnsupportedAttentionError(f"expected a batch of one sequence; got {query.shape[0]}")
    name = names.get(id(module), type(module).__name__)
    part = "self" if part_of is None else part_of(name, module)
    layer = getattr(module, "layer_idx", None)
    if layer is None:
        layer = sum(1 for p, _ in recording.records if p == part)
    unknown = sorted(
        k for k, v in kwargs.items()
        if k not in NEUTRAL_KWARGS and k not in SINK_KWARGS and k not in ("softcap", "position_bias")
        and v is not None and v is not False
    )
    if unknown:
        raise _weights_may_help(UnsupportedAttentionError(
            f"{type(module).__name__} passes {unknown} to its attention function; attnwidget cannot "
            "reproduce the pattern with that term exactly, so it refuses rather than answer wrongly. "
            "Use capture(..., method='weights') to take the weights the model returns in eager mode."
        ))
    if kwargs.get("dropout"):
        raise UnsupportedAttentionError("attention dropout is active; call model.eval() first")
    scaling = kwargs.get("scaling")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    sinks = next((kwargs[k] for k in SINK_KWARGS if kwargs.get(k) is not None), None)
    if mask is None:
        mask_index = -1
        window = kwargs.get("sliding_window")
        if window is not None and key.shape[-2] > window:
            raise UnsupportedAttentionError(
                f"{type(module).__name__} uses a sliding window of {window} but received no mask "
                f"for {key.shape[-2]} keys; cannot tell which keys it saw"
            )
    else:
        mask_index = recording.add_mask(mask, query.shape[-2], key.shape[-2])
    bias = kwargs.get("position_bias")
    bias_index = -1 if bias is None else recording.add_bias(module, bias)
    is_causal = kwargs.get("is_causal")
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    if (part, int(layer)) in recording.records:
        raise UnsupportedAttentionError(
            f"{name} ran as layer {layer} of {part!r}, which another module already filled "
            f"({recording.records[(part, int(layer))].name}); attnwidget records one call per attention layer "
            "(capture without a cache, and one sequence at a time)"
        )
    record = recording.records[(part, int(layer))] = QKRecord(
        name=name,
        query=_cpu_copy(query[0], store_dtype),
        key=_cpu_copy(key[0], store_dtype),
        mask=mask_index,
        causal=bool(is_causal) and query.shape[-2] > 1,
        scaling=float(scaling),
        softcap=None if kwargs.get("softcap") is None else float(kwargs["softcap"]),
        sinks=None if sinks is None else sinks.detach().float().cpu().clone(),
        bias=bias_index,
    )
    return record


def attention_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Modules that compute attention: innermost modules whose class name ends in 'Attention'."""
    found = [(n, m) for n, m in model.named_modules() if type(m).__name__.endswith("Attention")]
    inner = []
    for name, module in found:
        if not any(other != name and other.startswith(name + ".") for other, _ in found):
            inner.append((name, module))
    return inner


@contextmanager
def record_weights(model: PreTrainedModel) -> Iterator[Recording]:
    """Fallback: eager attention, ``output_attentions=True``, hooks keeping returned weights (from the
    capturing thread only; captures of one model are serialised, as for :func:`record_qk`)."""
    with model_lock(model):
        repair_stale_recorder(model)
        recording = Recording()
        modules = attention_modules(model)
        saved = _implementations(model)
        handles: list[torch.utils.hooks.RemovableHandle] = []
        owner = threading.get_ident()

        def make_hook(index: int, name: str) -> Callable[[torch.nn.Module, tuple[Any, ...], object], None]:
            def hook(module: torch.nn.Module, args: tuple[Any, ...], output: object) -> None:
                if threading.get_ident() != owner:
                    return
                weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
                if isinstance(weights, torch.Tensor) and weights.dim() == 4:
                    if weights.shape[0] != 1:
                        raise UnsupportedAttentionError(f"expected a batch of one; got {weights.shape[0]}")
                    recording.records[("self", index)] = WeightsRecord(name, weights[0].detach().float().cpu().clone())

            return hook

        try:
            with _eval_mode(model):
                for index, (name, module) in enumerate(modules):
                    handles.append(module.register_forward_hook(make_hook(index, name)))
                if model.config._attn_implementation != "eager" and model._can_set_attn_implementation():
                    model.set_attn_implementation("eager")
                yield recording
        finally:
            for handle in handles:
                handle.remove()
            try:
                if model.config._attn_implementation != saved[0][1]:
                    model.set_attn_implementation(saved[0][1])
            finally:
                for config, implementation in saved:
                    if config._attn_implementation != implementation:
                        config._attn_implementation = implementation
