"""Capture cost on SmolLM2: time against a plain sdpa forward, memory against eager output_attentions.

Run: ``python benchmarks/bench_capture.py [--quick]`` (``make bench`` runs every benchmark).

Time (1024 tokens): one process loads the model, warms up a plain forward *and* a capture at the
measured length, then alternates forward / capture ``--repeats`` times; the figure is the median of
the per-pair ratios (both calls of a pair see the same machine load).

Memory (2048 tokens): each case is a fresh process that loads the model, resets the kernel's RSS
high-water mark (``PeakRSS``) and runs one call: the plain sdpa forward, ``capture`` alone,
``capture`` + the widget's initial state (``AttentionWidget(cap)``: thumbnails + first heatmap tile),
and an eager model's forward with ``output_attentions=True`` (what BertViz and most notebooks do).
A 16-token call of the same kind first pages in the memory-mapped weights; no full-length warm-up
(memory it frees would stay in the allocator and hide part of the peak).

Writes ``benchmarks/results/capture.md`` (both tables) and ``capture.json`` (figures for run_all).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import RESULTS, PeakRSS, _status, machine, today, token_ids  # noqa: E402

GOAL_TIME = 1.5  # capture / forward
GOAL_MEM = 0.2  # (capture + default view) / eager output_attentions, peak RSS above the loaded model
MiB = 2**20
GiB = 2**30


# -- cases (each runs in its own process) -----------------------------------------------------------

def case_time(n: int, repeats: int) -> dict:
    import torch

    import attnwidget

    model, tok = attnwidget.load_model("smollm2")
    ids = token_ids(tok, n)
    x = torch.tensor([ids])

    def forward():
        with torch.no_grad():  # the forward capture runs: same kwargs (see capture._forward_kwargs)
            model(x, use_cache=False, logits_to_keep=1)

    def cap():
        return attnwidget.capture(model, tok, ids)

    forward()  # warm-up at this length: one-off kernel and allocator setup stays out of the timings
    recorded = cap().nbytes
    pairs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        c = cap()
        t2 = time.perf_counter()
        del c
        pairs.append((t1 - t0, t2 - t1))
    return {"tokens": n, "pairs": pairs, "recorded": recorded, "threads": torch.get_num_threads()}


def case_mem(kind: str, n: int) -> dict:
    import torch

    import attnwidget

    eager = kind == "eager"
    model, tok = attnwidget.load_model("smollm2", **({"attn_implementation": "eager"} if eager else {}))
    ids = token_ids(tok, n)
    x = torch.tensor([ids])
    # A 16-token call of the same kind first: safetensors weights are memory-mapped and only become
    # resident when a forward touches them (~0.5 GiB), and the first call imports and sets up lazily.
    # Neither is the call's own memory; a 16-token call leaves almost nothing else behind.
    short = ids[:16]
    with torch.no_grad():
        if kind in ("forward", "eager"):
            model(torch.tensor([short]), use_cache=False, logits_to_keep=1, output_attentions=eager)
        else:
            warm = attnwidget.capture(model, tok, short)
            if kind == "view":
                attnwidget.AttentionWidget(warm).close()
            del warm
    held = None
    with PeakRSS() as peak:
        if kind == "forward":
            with torch.no_grad():
                held = model(x, use_cache=False, logits_to_keep=1)
        elif kind == "eager":
            # use_cache/logits_to_keep as in capture: the comparison is about attention only
            with torch.no_grad():
                held = model(x, use_cache=False, logits_to_keep=1, output_attentions=True)
            held_bytes = sum(a.numel() * a.element_size() for a in held.attentions)
        elif kind == "capture":
            held = attnwidget.capture(model, tok, ids)
        elif kind == "view":
            cap = attnwidget.capture(model, tok, ids)
            t0 = time.perf_counter()
            widget = attnwidget.AttentionWidget(cap)
            widget.wait()  # the whole default view: every layer passed over, head means kept
            held = (cap, widget)
            view_s = time.perf_counter() - t0
        else:
            raise ValueError(kind)
    out = {"kind": kind, "tokens": n, "seconds": peak.seconds, "start": peak.start, "peak": peak.peak,
           "above": peak.above, "rss_after": _status("VmRSS")}
    if kind == "eager":
        out["held"] = held_bytes
    if kind in ("capture", "view"):
        out["held"] = (held if kind == "capture" else held[0]).nbytes
    if kind == "view":
        out["view_seconds"] = view_s
    return out


def run_case(*args) -> dict:
    return _common.run_case(__file__, *args)


# -- tables ---------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="256 / 512 tokens, 3 repeats")
    parser.add_argument("--tokens", type=int, help="length for the time comparison (default 1024)")
    parser.add_argument("--mem-tokens", type=int, help="length for the memory comparison (default 2048)")
    parser.add_argument("--repeats", type=int, help="forward/capture pairs (default 7)")
    args = parser.parse_args()
    if args.case:
        kind = args.case[0]
        result = case_time(int(args.case[1]), int(args.case[2])) if kind == "time" else case_mem(kind, int(args.case[1]))
        print(json.dumps(result))
        return
    n_time = args.tokens or (256 if args.quick else 1024)
    n_mem = args.mem_tokens or (512 if args.quick else 2048)
    repeats = args.repeats or (3 if args.quick else 7)

    # time
    t = run_case("time", n_time, repeats)
    fwd = [p[0] for p in t["pairs"]]
    cap = [p[1] for p in t["pairs"]]
    ratios = [c / f for f, c in t["pairs"]]
    ratio = statistics.median(ratios)
    time_rows = [[i + 1, f"{f:.2f}", f"{c:.2f}", f"{c / f:.2f}x"] for i, (f, c) in enumerate(t["pairs"])]
    time_rows.append(["**median**", f"{statistics.median(fwd):.2f}", f"{statistics.median(cap):.2f}",
                      f"**{ratio:.2f}x**"])
    time_notes = [
        f"SmolLM2-135M-Instruct, {n_time} tokens of English prose, {t['threads']} torch threads. One process: "
        f"model load, one warm-up forward and one warm-up capture at {n_time} tokens, then {repeats} pairs "
        "(plain forward, then capture). Figure: median of the per-pair ratios.",
        "Plain forward = the model's own sdpa forward with the kwargs capture uses (use_cache=False, "
        "logits_to_keep=1). Capture = attnwidget.capture(model, tok, ids): the same forward with the "
        f"q/k recorder attached, plus building the Capture ({t['recorded'] / MiB:.0f} MiB of q/k kept).",
        f"Goal: capture / forward <= {GOAL_TIME}x: {'met' if ratio <= GOAL_TIME else 'NOT met'} ({ratio:.2f}x).",
    ]
    if ratio > GOAL_TIME:
        extra = statistics.median(c - f for f, c in t["pairs"])
        time_notes.append(
            f"What limits it: a capture is the same forward plus a copy of every layer's queries and keys "
            f"({t['recorded'] / MiB:.0f} MiB) and the token bookkeeping; that costs {extra:.2f} s more per call "
            "here (median). On this shared 2-core machine single calls also vary a lot: the pair ratios "
            f"range {min(ratios):.2f}x..{max(ratios):.2f}x.")

    # memory, fresh processes
    mem = {kind: run_case(kind, n_mem) for kind in ("forward", "capture", "view", "eager")}
    mem_ratio = mem["view"]["above"] / mem["eager"]["above"]
    abs_ratio = mem["view"]["peak"] / mem["eager"]["peak"]
    label = {
        "forward": "plain sdpa forward (no attention kept)",
        "capture": "attnwidget.capture",
        "view": "attnwidget.capture + AttentionWidget(cap) (thumbnails + first heatmap tile)",
        "eager": "eager model, forward with output_attentions=True",
    }
    mem_rows = []
    for kind in ("forward", "capture", "view", "eager"):
        m = mem[kind]
        held = f"{m['held'] / MiB:.0f} MiB" if "held" in m else ""
        mem_rows.append([label[kind], f"{m['above'] / MiB:.0f} MiB", f"{m['peak'] / GiB:.2f} GiB", held,
                         f"{m['seconds']:.1f}"])
    mem_rows.append(["**ratio (capture + view) / eager**", f"**{mem_ratio:.3f}x**", f"{abs_ratio:.3f}x", "", ""])
    n_layers, n_heads = 30, 9
    dense = n_layers * n_heads * n_mem * n_mem * 4
    mem_notes = [
        f"SmolLM2-135M-Instruct at {n_mem} tokens. Each row is a fresh process: load the model (sdpa, or "
        "attn_implementation='eager' for the last row), reset the RSS high-water mark (clear_refs), run "
        "the call once, read VmHWM. Before that, one 16-token call of the same kind pages in the "
        "memory-mapped weights and does the lazy setup (without it every row carries ~0.5 GiB of weights "
        "being paged in); no full-length warm-up (memory it frees would stay in the allocator and hide "
        "part of the peak).",
        "Peak above model = VmHWM during the call minus RSS before it (the loaded model, ~0.6 GiB, is common "
        "to every row); whole-process peak includes the model and Python.",
        f"Eager: use_cache=False, logits_to_keep=1 as in capture, so the difference is attention alone; "
        f"its output holds {n_layers} x {n_heads} x {n_mem}^2 float32 weights = {dense / GiB:.2f} GiB.",
        f"AttentionWidget(cap) alone took {mem['view']['view_seconds']:.1f} s "
        "(thumbnails read every layer's patterns in row blocks; tile = the middle layer's head mean).",
        f"Goal: peak above model, (capture + view) / eager <= {GOAL_MEM}x: "
        f"{'met' if mem_ratio <= GOAL_MEM else 'NOT met'} ({mem_ratio:.3f}x).",
    ]
    if mem_ratio > GOAL_MEM:
        mem_notes.append(
            f"What limits it: our side is q/k kept ({mem['view']['held'] / MiB:.0f} MiB, grows with tokens) plus "
            f"the row blocks of patterns the capture and the thumbnails recompute (capture alone peaks "
            f"{mem['capture']['above'] / MiB:.0f} MiB above the model, with the view {mem['view']['above'] / MiB:.0f} MiB); "
            f"the eager side holds tokens^2 weights ({dense / GiB:.2f} GiB here), so the ratio falls as the "
            "sequence grows and is highest at short lengths.")

    header_t = ["pair", "plain forward s", "capture s", "capture / forward"]
    header_m = ["case", "peak RSS above model", "whole-process peak", "held afterwards", "call s"]
    text = "\n".join([
        f"## Capture time vs a plain forward, SmolLM2 at {n_time} tokens", "",
        f"Measured {today()} on {machine()}.", "", _table(header_t, time_rows), "",
        *[f"- {x}" for x in time_notes], "",
        f"## Peak memory: capture + default view vs eager output_attentions, SmolLM2 at {n_mem} tokens", "",
        _table(header_m, mem_rows), "", *[f"- {x}" for x in mem_notes], "",
    ])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capture.md").write_text(text)
    (RESULTS / "capture.json").write_text(json.dumps({
        "time": {"tokens": n_time, "ratio": ratio, "ratios": ratios, "goal": GOAL_TIME,
                 "forward_s": statistics.median(fwd), "capture_s": statistics.median(cap)},
        "memory": {"tokens": n_mem, "ratio": mem_ratio, "goal": GOAL_MEM, "abs_ratio": abs_ratio, "cases": mem},
    }, indent=1))
    print(text)


def _table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


if __name__ == "__main__":
    main()
