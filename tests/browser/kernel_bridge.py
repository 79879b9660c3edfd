"""A kernel without Jupyter: a real AttentionWidget in this Python process behind the harness page.

The harness' fake model calls ``window.__kernel(payload)`` (a Playwright binding) when the page saves
trait values (``{"state": {...}}``) or sends a message (``{"msg": {...}, "buffers": [base64]}``).
:class:`KernelBridge` hands them to the widget as Jupyter would (``set_state``, the message handler)
and answers with what changed in the widget's state and the messages it sent, as the harness'
base64 markers; the page applies them like a kernel's update. So a page test can check the round
trip: a click in the page, the Python observers, the data they push, the page's new drawing.
"""

from __future__ import annotations

import base64

SKIP = ("layout", "tabbable", "tooltip", "comm", "keys")


def to_markers(value):
    """A trait value with its wire arrays (``{buffer: bytes, dtype, shape}``) as harness markers."""
    if isinstance(value, dict):
        if isinstance(value.get("buffer"), (bytes, bytearray, memoryview)) and "dtype" in value:
            return {"__wire": True, "b64": base64.b64encode(bytes(value["buffer"])).decode("ascii"),
                    "dtype": value["dtype"], "shape": list(value["shape"])}
        return {k: to_markers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_markers(v) for v in value]
    return value


class KernelBridge:
    """The Python side of one page (see the module docstring)."""

    def __init__(self, widget):
        self.widget = widget
        self.outbox: list[dict] = []
        widget.send = self._send  # the widget's custom messages go to the page through the bridge
        self.sent = self.state()

    def state(self) -> dict:
        raw = self.widget.get_state()
        return {k: to_markers(v) for k, v in raw.items() if not k.startswith("_") and k not in SKIP}

    def _send(self, content, buffers=None):
        self.outbox.append({"content": to_markers(content),
                            "buffers": [base64.b64encode(bytes(b)).decode("ascii") for b in buffers or []]})

    def receive(self, payload: dict) -> dict:
        """The page's saved values or message -> {"state": changed traits, "messages": sent messages}."""
        if "state" in payload:
            values = payload["state"]
            self.widget.set_state(values)
            for name, value in values.items():  # the page knows what it set (no echo, as in Jupyter)
                self.sent[name] = value
        elif "msg" in payload:
            buffers = [memoryview(base64.b64decode(b)) for b in payload.get("buffers") or []]
            self.widget._on_message(self.widget, payload["msg"], buffers)
        return self.changes()

    def changes(self) -> dict:
        now = self.state()
        diff = {k: v for k, v in now.items() if self.sent.get(k) != v}
        self.sent = now
        messages, self.outbox = self.outbox, []
        return {"state": diff, "messages": messages}
