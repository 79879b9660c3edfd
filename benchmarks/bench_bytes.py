"""Bytes sent to the browser for the explorer's initial view, against BertViz's HTML, at 512 tokens.

Run: ``python benchmarks/bench_bytes.py`` (needs ``pip install --no-deps -r benchmarks/requirements.txt``
for the BertViz side; ``make bench`` does that). Each side runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRSS, token_ids, write_table  # noqa: E402

GOAL_RATIO = 0.001


def _state_bytes(widget) -> int:
    """Size of the comm message that opens a widget: JSON state without buffers + binary buffers."""
    from ipywidgets.widgets.widget import _remove_buffers

    state, _paths, buffers = _remove_buffers(widget.get_state())
    return len(json.dumps(state, separators=(",", ":"))) + sum(len(memoryview(b).cast("B")) for b in buffers)


def ours(n: int) -> dict:
    import ipywidgets

    import attnwidget

    model, tok = attnwidget.load_model("smollm2")
    ids = token_ids(tok, n)
    with PeakRSS() as peak:
        explorer = attnwidget.show(model, tok, ids)
        explorer.wait()  # every layer's thumbnails and panels (the same bytes as at first paint)
    instances = list(ipywidgets.Widget.widgets.values()) if hasattr(ipywidgets.Widget, "widgets") else []
    if not instances:
        from ipywidgets.widgets.widget import _instances

        instances = list(_instances.values())
    total = sum(_state_bytes(w) for w in instances)
    return {"bytes": total, "widget_bytes": _state_bytes(explorer.widget), "widgets": len(instances),
            "seconds": peak.seconds, "peak_above": peak.above}


def bertviz(n: int, view: str) -> dict:
    import torch
    from bertviz import head_view, model_view

    import attnwidget

    model, tok = attnwidget.load_model("smollm2", attn_implementation="eager")
    ids = token_ids(tok, n)
    tokens = tok.convert_ids_to_tokens(ids)
    with PeakRSS() as peak:
        with torch.no_grad():
            attention = model(torch.tensor([ids]), output_attentions=True).attentions
        fn = head_view if view == "head_view" else model_view
        html = fn(attention, tokens, html_action="return")
        size = len(html.data.encode("utf-8"))
    return {"bytes": size, "seconds": peak.seconds, "peak_above": peak.above}


def run(*args) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--case", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed",
                "seconds": time.perf_counter() - t0}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--skip-bertviz", action="store_true")
    args = parser.parse_args()
    if args.case:
        kind, n = args.case[0], int(args.case[1])
        print(json.dumps(ours(n) if kind == "ours" else bertviz(n, kind)))
        return
    n = args.tokens
    mine = run("ours", n)
    rows = [["attnwidget explorer (widget + bqplot panels)", f"{mine['bytes'] / 2**20:.2f} MiB",
             f"{mine['seconds']:.1f}", f"{mine['peak_above'] / 2**30:.2f} GiB"]]
    notes = [f"attnwidget: {mine['widgets']} widget models; the AttentionWidget alone sends "
             f"{mine['widget_bytes'] / 2**20:.2f} MiB (thumbnails 30 x 9 x 64 x 64 uint8, a 512 x 512 "
             "float16 heatmap, tokens).",
             "Bytes = the JSON state of every widget model plus its binary buffers, i.e. what the kernel sends "
             "when the view opens."]
    total_peer = 0
    for view in ([] if args.skip_bertviz else ["head_view", "model_view"]):
        peer = run(view, n)
        if "error" in peer:
            rows.append([f"BertViz {view}", "failed: " + peer["error"], f"{peer['seconds']:.1f}", ""])
            continue
        total_peer += peer["bytes"]
        rows.append([f"BertViz {view} (html_action='return')", f"{peer['bytes'] / 2**20:.1f} MiB",
                     f"{peer['seconds']:.1f}", f"{peer['peak_above'] / 2**30:.2f} GiB"])
    if total_peer:
        ratio = mine["bytes"] / total_peer
        notes.append(f"ratio attnwidget / (head_view + model_view) = {ratio:.5f} "
                     f"(goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'NOT met'}).")
    write_table("bytes", f"Bytes to the browser for the initial view, SmolLM2 at {n} tokens",
                ["what", "bytes", "build s", "peak RSS above model"], rows, notes)


if __name__ == "__main__":
    main()
