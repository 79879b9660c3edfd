"""What ``capture(..., values=True)`` and ``capture(..., residual=True)`` record beside queries and keys.

* **Values and the output projection** (Kobayashi et al. 2020). The recorder already sees each layer's
  value (after ``v_proj`` and its bias, before grouped-query expansion). The output projection is
  found, not guessed by name: after a layer's attention call, the first linear layer (``nn.Linear`` or
  GPT-2's ``Conv1D``) whose input is exactly that call's output (``[.., heads x head_dim]``, compared
  element for element) is the layer's ``W_O``; its columns for head ``h`` map that head's values into
  the residual stream, ``f_h(x_j) = v_j^h W_O^h``. A layer whose output is transformed before any
  linear layer reads it (a gate, a norm) is refused: no contribution is reported that the model does
  not compute.
* **The residual stream**: the hidden state entering each block of the model's one stack of layers
  (the ``nn.ModuleList`` holding the attention modules) and the state leaving the last block,
  ``[layers + 1, tokens, hidden]`` float32 (what ``attnwidget.flow_routes`` decomposes).

Both are hooks registered for the capture and removed in ``finally`` by the recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from .errors import UnsupportedAttentionError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ._recorder import QKRecord, Recording


def _linear_weight(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """``(W [in, out], bias [out] | None)`` of a linear-like module, else None."""
    if isinstance(module, torch.nn.Linear):
        return module.weight.detach().T, None if module.bias is None else module.bias.detach()
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return weight.detach(), None if bias is None else bias.detach()
    return None


class OutputProjections:
    """Finds each recorded layer's output projection (see the module docstring) and stores its per-head
    slices on the layer's record: ``out_proj`` float32 ``[heads, head_dim, hidden]`` and ``out_bias``."""

    def __init__(self, model: PreTrainedModel, owner: int) -> None:
        import threading

        self.owner = owner
        self._thread = threading
        # the record whose projection is awaited, its attention output and heads
        self.pending: dict[str, Any] = {}
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        # the projection just matched, whose output is the layer's attention output
        self.awaiting: torch.nn.Module | None = None
        # what the last matched projection returned (for ResidualStream's check)
        self.attention_output: torch.Tensor | None = None
        # what the last linear layer returned (a block's FFN ends with one)
        self.last_output: torch.Tensor | None = None
        for module in model.modules():
            if _linear_weight(module) is not None:
                self.handles.append(module.register_forward_pre_hook(self._pre_hook))
                self.handles.append(module.register_forward_hook(self._post_hook))

    def expect(self, record: QKRecord, output: torch.Tensor) -> None:
        """The next linear layer reading ``output`` (the attention call's ``[1, n, heads, head_dim]``
        result) is ``record``'s output projection."""
        heads = record.query.shape[0]
        self.pending = {"record": record, "output": output.detach(), "heads": heads}

    def _pre_hook(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if not self.pending or self._thread.get_ident() != self.owner or not args:
            return
        x, out = args[0], self.pending["output"]
        if not isinstance(x, torch.Tensor) or x.numel() != out.numel() or x.shape[-1] != out.shape[-2] * out.shape[-1]:
            return
        if not torch.equal(x.reshape(-1), out.reshape(-1)):
            return
        record, heads = self.pending["record"], self.pending["heads"]
        linear = _linear_weight(module)
        assert linear is not None  # only linear-like modules have this hook
        weight, bias = linear
        d = out.shape[-1]
        record.out_proj = weight.float().cpu().reshape(heads, d, weight.shape[-1]).clone()
        record.out_bias = None if bias is None else bias.float().cpu().clone()
        self.pending = {}
        self.awaiting = module

    def _post_hook(self, module: torch.nn.Module, args: tuple[Any, ...], output: object) -> None:
        if self._thread.get_ident() != self.owner or not isinstance(output, torch.Tensor):
            return
        if module is self.awaiting:
            self.attention_output, self.awaiting = output.detach(), None
        self.last_output = output.detach()

    def check(self, recording: Recording) -> None:
        """Every recorded layer has its projection; the hooks' last expectation was met."""
        missing = [r.name for r in recording.records.values() if getattr(r, "query", None) is not None
                   and getattr(r, "out_proj", None) is None]
        if missing:
            raise UnsupportedAttentionError(
                f"values=True needs each attention layer's output projection: the linear layer that reads the "
                f"attention output as it is. In {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                                                                 else "")
                + " the output is transformed first (a gate or a norm), so ||alpha f(x)|| would not be what the "
                "model adds to its residual stream; attnwidget refuses rather than answer wrongly. Capture "
                "without values=True for the attention weights."
            )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.pending = {}
        self.awaiting = self.attention_output = self.last_output = None


def layer_stacks(model: PreTrainedModel, attention_names: list[str]) -> list[list[tuple[str, torch.nn.Module]]]:
    """The ``nn.ModuleList`` stacks whose every block holds attention modules, innermost, as
    ``[[(name, block), ...], ...]`` (a plain model has one; CLIP has a text and a vision stack)."""
    stacks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module):
            prefix = f"{name}." if name else ""
            if all(any(a.startswith(f"{prefix}{i}.") for a in attention_names) for i in range(len(module))):
                stacks.append((name, module))
    inner = [(n, m) for n, m in stacks if not any(o != n and o.startswith(n + ".") for o, _ in stacks)]
    return [[(f"{n}.{i}" if n else str(i), block) for i, block in enumerate(m)] for n, m in inner]


class ResidualStream:
    """Hooks keeping the hidden state entering each block and leaving the last one (module docstring),
    on every stack of layers; the one stack that ran during the capture is the residual stream."""

    def __init__(self, model: PreTrainedModel, attention_names: list[str], owner: int,
                 projections: OutputProjections | None = None) -> None:
        import threading

        self.owner, self._thread, self.model, self.projections = owner, threading, model, projections
        self.stacks = layer_stacks(model, attention_names)
        # per stack: one float32 [blocks + 1, n, hidden] tensor, allocated at its first state and filled in
        # place (stacking copies at the end would hold the stream twice), and which rows were filled
        self.states: list[torch.Tensor | None] = [None] * len(self.stacks)
        self.filled = [[False] * (len(blocks) + 1) for blocks in self.stacks]
        # with values: per block, does its output equal input + attention output + last linear output?
        self.checks: list[list[bool | None]] = [[None] * len(blocks) for blocks in self.stacks]
        self._entered: tuple[int, int, torch.Tensor | None] | None = None  # (stack, block, the block's input)
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        for s, blocks in enumerate(self.stacks):
            for index, (_, block) in enumerate(blocks):
                self.handles.append(block.register_forward_pre_hook(self._enter(s, index), with_kwargs=True))
                self.handles.append(block.register_forward_hook(self._leave(s, index)))

    def _keep(self, s: int, index: int, state: object) -> None:
        if isinstance(state, (tuple, list)):
            state = state[0]
        if not isinstance(state, torch.Tensor) or state.dim() != 3 or state.shape[0] != 1:
            blocks = self.stacks[s]
            raise UnsupportedAttentionError(
                f"residual=True expected the hidden state of one sequence, [1, tokens, hidden], at block "
                f"{blocks[min(index, len(blocks) - 1)][0]}; got "
                f"{tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__}"
            )
        stream = self.states[s]
        if stream is None:
            stream = self.states[s] = torch.empty((len(self.stacks[s]) + 1,) + tuple(state.shape[1:]),
                                                  dtype=torch.float32)
        if tuple(state.shape[1:]) != tuple(stream.shape[1:]):
            raise UnsupportedAttentionError(
                f"residual=True: block {self.stacks[s][min(index, len(self.stacks[s]) - 1)][0]} saw a hidden state "
                f"of shape {tuple(state.shape)}; the blocks before it saw [1, {', '.join(map(str, stream.shape[1:]))}]"
            )
        stream[index].copy_(state[0].detach())
        self.filled[s][index] = True

    def _enter(self, s: int, index: int) -> Callable[[torch.nn.Module, tuple[Any, ...], dict[str, Any]], None]:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self._thread.get_ident() == self.owner:
                state = args[0] if args else kwargs.get("hidden_states")
                self._keep(s, index, state)
                self._entered = (s, index, state if isinstance(state, torch.Tensor) else None)
                if self.projections is not None:
                    self.projections.attention_output = self.projections.last_output = None
        return hook

    def _leave(self, s: int, index: int) -> Callable[[torch.nn.Module, tuple[Any, ...], object], None]:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], output: object) -> None:
            if self._thread.get_ident() != self.owner:
                return
            if index == len(self.stacks[s]) - 1:
                self._keep(s, len(self.stacks[s]), output)
            if self.projections is not None and self._entered is not None and self._entered[:2] == (s, index):
                self.checks[s][index] = self._adds_up(self._entered[2], output)
        return hook

    def _adds_up(self, x: torch.Tensor | None, output: object) -> bool:
        """The block computed ``out = x + attention output + FFN output`` (the last linear layer it ran):
        the split :func:`attnwidget.flow_routes` makes. A norm after the sum (post-LN, BERT) or after the
        attention (Gemma 2), or an FFN that does not end in a linear layer, makes it false."""
        out = output[0] if isinstance(output, (tuple, list)) else output
        if self.projections is None:
            return False
        attn, ffn = self.projections.attention_output, self.projections.last_output
        if (not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or not isinstance(attn, torch.Tensor)
                or not isinstance(ffn, torch.Tensor) or attn is ffn):
            return False
        if not x.shape == out.shape == attn.shape == ffn.shape:
            return False
        rebuilt = (x.float() + attn.float()) + ffn.float()
        scale = float(out.float().abs().max()) or 1.0
        tolerance = 1e-5 if out.dtype == torch.float32 else 8 * torch.finfo(out.dtype).eps
        return float((rebuilt - out.float()).abs().max()) <= tolerance * scale

    def stacked(self) -> torch.Tensor:
        ran = [s for s, filled in enumerate(self.filled) if any(filled)]
        if len(ran) != 1 or not all(self.filled[ran[0]]):
            names = ", ".join(blocks[0][0].rsplit(".", 1)[0] for blocks in self.stacks) or "none"
            raise UnsupportedAttentionError(
                f"residual=True records the hidden state between the blocks of one stack of layers; in "
                f"{type(self.model).__name__} (stacks: {names}) {len(ran)} stacks ran"
                + ("" if len(ran) != 1 else ", but not every block of it") + ". Encoder-decoder models are not "
                "supported yet: capture without residual=True."
            )
        self.ran = ran[0]
        stream = self.states[self.ran]
        assert stream is not None  # every row of the stack that ran was filled
        return stream

    def block_checks(self) -> list[bool] | None:
        """Per block of the stack that ran: its output is input + attention output + FFN output (None
        without values, when the attention output is not known)."""
        if self.projections is None:
            return None
        return [bool(c) for c in self.checks[self.ran]]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
