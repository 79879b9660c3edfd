"""End to end at 8192 tokens on SmolLM2: capture, grid thumbnails, all metrics, first heatmap tile.

Run: ``python benchmarks/bench_scale.py [--quick] [--tokens N] [--save-state FILE]``.

One fresh process loads SmolLM2, resets the RSS high-water mark (``PeakRSS``), then times each step
of what opening the explorer on a long text costs: ``attnwidget.capture``, the layer x head grid
(``reduce.thumbnails``, as ``AttentionWidget`` builds it), ``attnwidget.compute_metrics(cap)`` (what
the explorer's metric panels and ``color_by`` read) and the first heatmap tile (middle layer, mean of
heads). The peak RSS is that of the whole process (model included) over all four steps.
``--save-state`` writes the widget's initial state (JSON) for ``bench_browser.py``.

Writes ``benchmarks/results/scale.md`` and ``scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, PeakRSS, _status, token_ids, write_table  # noqa: E402

GOAL_BYTES = 24 * 10**9  # "completes within 24 GB"
GiB = 2**30


def case(n: int, save_state: str | None) -> dict:
    import attnwidget
    from attnwidget import reduce as r

    t0 = time.perf_counter()
    model, tok = attnwidget.load_model("smollm2")
    load_s = time.perf_counter() - t0
    ids = token_ids(tok, n)
    steps = []
    rss = []

    def step(name, fn):
        t = time.perf_counter()
        out = fn()
        steps.append((name, time.perf_counter() - t))
        rss.append(_status("VmHWM"))
        return out

    with PeakRSS() as peak:
        cap = step("capture", lambda: attnwidget.capture(model, tok, ids))
        source = r.PatternSource(cap)
        thumbs, means = step("grid thumbnails", lambda: r.thumbnails(source))
        metrics = step("compute_metrics (all)", lambda: attnwidget.compute_metrics(cap))
        layer = cap.num_layers // 2
        tile = step("first heatmap tile", lambda: r.heatmap_tile(source, layer, None))
    out = {"tokens": n, "load_s": load_s, "steps": steps, "hwm_after_step": rss, "start": peak.start,
           "peak": peak.peak, "above": peak.above, "total_s": peak.seconds, "recorded": cap.nbytes,
           "metrics": sorted(metrics), "layers": cap.num_layers, "heads": cap.num_heads,
           "tile_shape": tile["matrix"]["shape"], "thumb_shape": list(thumbs.shape)}
    if save_state:
        import _widget_state

        _widget_state.save(Path(save_state), _widget_state.from_parts(cap, thumbs, means, tile, layer))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1024 tokens instead of 8192")
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--save-state", help="write the widget's initial state (JSON) here")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(case(int(args.case[0]), args.case[1] if len(args.case) > 1 else None)))
        return
    n = args.tokens or (1024 if args.quick else 8192)
    cmd = [sys.executable, __file__, "--case", str(n)] + ([os.path.abspath(args.save_state)] if args.save_state else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"bench_scale: the {n}-token run failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [[name, f"{secs:.1f}", f"{hwm / GiB:.2f} GiB"] for (name, secs), hwm in zip(res["steps"], res["hwm_after_step"])]
    total = sum(s for _, s in res["steps"])
    met = res["peak"] <= GOAL_BYTES
    rows.append(["**total (4 steps)**", f"**{total:.1f}**", f"**{res['peak'] / GiB:.2f} GiB**"])
    notes = [
        f"SmolLM2-135M-Instruct ({res['layers']} layers x {res['heads']} heads), {n} tokens of English prose, "
        f"one fresh process (model load {res['load_s']:.1f} s, not counted; process wall time with startup "
        f"{wall:.0f} s).",
        "Steps: attnwidget.capture (q/k recorded: "
        f"{res['recorded'] / GiB:.2f} GiB); reduce.thumbnails (the grid: {res['thumb_shape']} uint8 max-pooled, "
        "every layer's patterns recomputed in row blocks); attnwidget.compute_metrics(cap) "
        f"({len(res['metrics'])} metrics, one more pass over every layer); reduce.heatmap_tile (middle layer, "
        f"mean of heads, max-pooled to {res['tile_shape']} float16).",
        f"Peak RSS = the process's VmHWM (model and Python included: {res['start'] / GiB:.2f} GiB before the "
        f"first step); {res['above'] / GiB:.2f} GiB above that. Column 3: VmHWM after each step.",
        f"Goal: completes within 24 GB: {'met' if met else 'NOT met'} "
        f"({res['peak'] / 2**30:.2f} GiB = {res['peak'] / 1e9:.1f} GB peak, {total / 60:.1f} min).",
    ]
    if not met:
        notes.append("What limits it: see the per-step high-water marks above; the step where it jumps "
                     "holds the most at once.")
    write_table("scale", f"End to end at {n} tokens: capture, grid, metrics, first tile", ["step", "seconds",
                "peak RSS so far (whole process)"], rows, notes)
    (RESULTS / "scale.json").write_text(json.dumps({**res, "goal_bytes": GOAL_BYTES, "total_steps_s": total,
                                                     "met": met, "wall_s": wall}, indent=1))


if __name__ == "__main__":
    main()
