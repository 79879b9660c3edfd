"""First paint and hover repaint of the widget in headless Chromium, on real SmolLM2 states.

Run: ``python benchmarks/bench_browser.py [--quick] [--tokens 512 2048 8192] [--state N=FILE ...]``.

For each length, the widget's real initial state (``AttentionWidget(cap).get_state()``'s synced
traits for a SmolLM2 capture of that many tokens of prose: grid thumbnails, first heatmap tile,
tokens) is built in a separate process (not timed; ``--state N=FILE`` reuses one written by
``bench_long.py --save-state``). A local server on 127.0.0.1 serves the built bundle
(``attnwidget/static/widget.js``) and ``benchmarks/browser/``; the page renders the widget with a
stand-in for anywidget's model (``get/set/on/off/save_changes/send``) in an offline Chromium.

- First paint: in a fresh page, at the start of a frame, ``render({model, el})`` (grid + heatmap
  drawn), then the end of that frame's style/layout/paint (a task queued from the frame). Median of
  ``--repeats`` fresh pages; the grid and heatmap canvases are checked for painted pixels afterwards.
- Hover repaint: ``--moves`` pointermove events over random heatmap cells, each dispatched at the start
  of a frame; time from the event to the end of that frame's rendering (the handler: hit test,
  tooltip, overlay redraw, ``model.set('hovered_token')`` -> grid and heatmap highlights). Median
  and 95th percentile; idle frames (no event) are measured the same way as a baseline.

Writes ``benchmarks/results/browser.md`` and ``browser.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))
import jupyter_run  # noqa: E402 (tools/: the offline Chromium and the file server the tests use)
from _common import RESULTS, token_ids, write_table  # noqa: E402

ROOT = HERE.parent
BUNDLE = ROOT / "attnwidget" / "static" / "widget.js"
PAGE = HERE / "browser"
CHROMIUM = jupyter_run.CHROMIUM
GOAL_PAINT_MS = 500.0
GOAL_HOVER_MS = 16.0


# -- states (separate process: the model is not resident while the browser is timed) ---------------

def build_states(sizes: list[int], folder: Path) -> dict[int, float]:
    """Write ``folder/N.json`` for each size from ``AttentionWidget(capture)``; returns build seconds."""
    import attnwidget
    import _widget_state

    model, tok = attnwidget.load_model("smollm2")
    seconds = {}
    for n in sizes:
        t0 = time.perf_counter()
        cap = attnwidget.capture(model, tok, token_ids(tok, n))
        widget = attnwidget.AttentionWidget(cap, background=False)
        widget.view = "text"  # fills text_data (the last token's row) for the text-view timings
        widget.color_scale = "log"
        state = _widget_state.from_widget(widget)
        _widget_state.save(folder / f"{n}.json", state)
        seconds[n] = time.perf_counter() - t0
        print(f"state for {n} tokens built in {seconds[n]:.1f} s", flush=True)
    return seconds


# -- server and browser ---------------------------------------------------------------------------

@contextlib.contextmanager
def offline_chromium(origin: str):
    """tools/jupyter_run's offline Chromium, allowed ``origin`` only (and data:, blob:); a request
    anywhere else fails the benchmark."""
    def allowed(url: str) -> bool:
        return url.startswith(origin + "/") or url.startswith(("data:", "blob:"))

    with jupyter_run.offline_chromium(allowed) as context:
        yield context
        blocked = list(context.blocked_requests)
    if blocked:
        raise RuntimeError(f"the benchmark page tried to leave 127.0.0.1: {blocked[:3]}")


def _page(context, origin: str, n: int, overrides: dict):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(origin + "/")
    page.wait_for_function("window.benchReady === true")
    page.evaluate("async ([url, over]) => window.loadState(await (await fetch(url)).json(), over)",
                  [f"/state/{n}.json", overrides])
    return page, errors


def measure(context, origin: str, n: int, repeats: int, moves: int) -> dict:
    paints, renders, painted = [], [], []
    hover = None
    for r in range(repeats):
        page, errors = _page(context, origin, n, {"view": "heatmap"})
        fp = page.evaluate("window.firstPaint()")
        paints.append(fp["paint_ms"])
        renders.append(fp["render_ms"])
        painted.append([page.evaluate("s => window.paintedPixels(s)", s)
                        for s in (".attnwidget-grid-base", ".attnwidget-heatmap-base")])
        if r == repeats - 1:
            hover = page.evaluate("([count]) => window.hoverBench(count)", [moves])
        if errors:
            raise RuntimeError(f"page errors at {n} tokens: {errors[:3]}")
        page.close()
    if any(p <= 0 for pair in painted for p in pair):
        raise RuntimeError(f"at {n} tokens a canvas stayed blank: painted pixels (grid, heatmap) = {painted}")
    page, errors = _page(context, origin, n, {"view": "text"})
    page.evaluate("window.firstPaint()")
    text_painted = page.evaluate("s => window.paintedPixels(s)", ".attnwidget-text-base")
    text = page.evaluate("([count]) => window.textHoverBench(count)", [moves])
    if errors or text_painted <= 0:
        raise RuntimeError(f"text view at {n} tokens: errors {errors[:3]}, painted pixels {text_painted}")
    page.close()
    frame = sorted(m[1] for m in hover["moves"])
    text_frame = sorted(m[1] for m in text["moves"])
    update_frame = sorted(u[1] for u in text["updates"])
    return {
        "tokens": n, "paint_ms": paints, "render_ms": renders, "painted": painted,
        "paint_median": statistics.median(paints), "render_median": statistics.median(renders),
        "hover_median": statistics.median(frame), "hover_p95": frame[min(len(frame) - 1, int(0.95 * len(frame)))],
        "hover_max": frame[-1], "handler_median": statistics.median(m[0] for m in hover["moves"]),
        "idle_median": statistics.median(hover["idle"]), "hovers": hover["hovers"], "moves": len(frame),
        "cell_px": [hover["cellW"], hover["cellH"]],
        "text_hover_median": statistics.median(text_frame),
        "text_hover_p95": text_frame[min(len(text_frame) - 1, int(0.95 * len(text_frame)))],
        "text_handler_median": statistics.median(m[0] for m in text["moves"]),
        "text_update_median": statistics.median(update_frame),
        "text_update_p95": update_frame[min(len(update_frame) - 1, int(0.95 * len(update_frame)))],
        "text_visible_tokens": text["tokens"],
    }


def chromium_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "Chromium (version unknown)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-states", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="256, 512 and 1024 tokens")
    parser.add_argument("--tokens", type=int, nargs="+")
    parser.add_argument("--state", action="append", default=[], metavar="N=FILE",
                        help="use this saved initial state for N tokens (bench_long.py --save-state)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh pages for first paint (median)")
    parser.add_argument("--moves", type=int, default=60, help="hover moves (median, p95)")
    args = parser.parse_args()
    if args.build_states:
        folder, sizes = Path(args.build_states[0]), [int(s) for s in args.build_states[1:]]
        print(json.dumps({str(k): v for k, v in build_states(sizes, folder).items()}))
        return
    if not BUNDLE.is_file():
        raise SystemExit(f"bench_browser: {BUNDLE} is missing; build it with `make js`")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"bench_browser: Chromium not found at {CHROMIUM} (apt-get install chromium)")
    sizes = args.tokens or ([256, 512, 1024] if args.quick else [512, 2048, 8192])
    given = {int(k): Path(v) for k, v in (s.split("=", 1) for s in args.state)}

    with tempfile.TemporaryDirectory(prefix="attnwidget-bench-states-") as tmp:
        folder = Path(tmp)
        states, build_s = {}, {}
        for n in sizes:
            if n in given and given[n].is_file():
                states[n] = given[n]
                build_s[n] = None
        missing = [n for n in sizes if n not in states]
        if missing:
            out = subprocess.run([sys.executable, __file__, "--build-states", str(folder), *map(str, missing)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.stderr.write(out.stderr)
                raise SystemExit("bench_browser: building the widget states failed")
            for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                states[int(k)], build_s[int(k)] = folder / f"{k}.json", v
        routes = {"/": PAGE / "index.html", "/bench.js": PAGE / "bench.js", "/widget.js": BUNDLE,
                  **{f"/state/{n}.json": path for n, path in states.items()}}
        results = []
        with jupyter_run.serve_files(routes) as origin, offline_chromium(origin) as context:
            for n in sizes:
                res = measure(context, origin, n, args.repeats, args.moves)
                res["state_bytes"] = states[n].stat().st_size
                res["state_build_s"] = build_s[n]
                results.append(res)
                print(f"{n} tokens: first paint {res['paint_median']:.1f} ms, hover {res['hover_median']:.2f} ms "
                      f"(p95 {res['hover_p95']:.2f}), text hover {res['text_hover_median']:.2f} ms, text "
                      f"recolour {res['text_update_median']:.2f} ms", flush=True)

    rows = []
    for res in results:
        rows.append([res["tokens"], f"{res['paint_median']:.0f}", f"{res['render_median']:.0f}",
                     f"{res['hover_median']:.1f}", f"{res['hover_p95']:.1f}", f"{res['handler_median']:.1f}",
                     f"{res['idle_median']:.1f}",
                     f"{res['text_hover_median']:.1f} (p95 {res['text_hover_p95']:.1f})",
                     f"{res['text_update_median']:.1f} (p95 {res['text_update_p95']:.1f})",
                     "yes" if res["paint_median"] <= GOAL_PAINT_MS else "NO",
                     "yes" if max(res["hover_median"], res["text_hover_median"]) <= GOAL_HOVER_MS else "NO"])
    notes = [
        f"{chromium_version()}, headless, --disable-gpu (software canvas), viewport 1200 x 900, "
        "devicePixelRatio 1, driven by Playwright; page and bundle served from 127.0.0.1 "
        f"(bundle {BUNDLE.stat().st_size / 1024:.0f} KiB).",
        "State: AttentionWidget(capture)'s synced traits for SmolLM2 on N tokens of prose (30 x 9 thumbnails "
        "of 64 x 64 uint8 + layer means, the middle layer's head-mean tile as float16, max-pooled to <= 512 x 512, "
        "N token strings); " + ", ".join(
            f"{r['tokens']}: {r['state_bytes'] / 2**20:.1f} MiB as JSON/base64"
            + (f", built in {r['state_build_s']:.0f} s" if r["state_build_s"] else ", from bench_long")
            for r in results) + " (not timed).",
        f"First paint: median of {args.repeats} fresh pages; render({{model, el}}) called at the start of a "
        "frame, until the end of that frame's style/layout/paint (a task queued from inside the frame). "
        "'render() alone' is the synchronous part (DOM, decoding, drawing the grid and heatmap canvases). "
        "Module loading and decoding the base64 test state are not counted (in a notebook the comm delivers "
        "DataViews). Every page's grid and heatmap canvases were checked for painted pixels.",
        f"Hover: {args.moves} pointermove events over random heatmap cells (lower triangle), each dispatched "
        "at the start of a frame; time from the event to the end of that frame's rendering. Handler = the "
        "synchronous part (hit test, tooltip, overlay, hovered_token -> grid and heatmap highlight). Idle frame = "
        "the same measurement with no event (the browser's own per-frame cost).",
        f"Text view: {args.moves} pointermove events over random visible tokens (hit test, tooltip, overlay, "
        "hovered_token -> grid highlight), each dispatched at the start of a frame, to the end of that frame; "
        f"then {args.moves} new text_data values (another focus token's row, as the kernel sends after a hover) "
        "set at the start of a frame, to the end of that frame (recolouring the visible lines and the minimap). "
        "The kernel's round trip is not in these figures (no kernel in this page).",
        f"Goals: first paint <= {GOAL_PAINT_MS:.0f} ms, hover repaint <= {GOAL_HOVER_MS:.0f} ms (median, heatmap and "
        "text view).",
    ]
    for res in results:
        if res["hovers"] < 0.8 * res["moves"]:
            notes.append(f"Warning: at {res['tokens']} tokens only {res['hovers']} of {res['moves']} moves changed "
                         "hovered_token (neighbouring moves hit the same row).")
        if res["paint_median"] > GOAL_PAINT_MS:
            notes.append(f"What limits first paint at {res['tokens']} tokens: render() itself takes "
                         f"{res['render_median']:.0f} ms of the {res['paint_median']:.0f} ms; the rest is the "
                         "browser's style/layout/paint of that frame.")
        if res["hover_median"] > GOAL_HOVER_MS:
            notes.append(f"What limits hover at {res['tokens']} tokens: the handler takes "
                         f"{res['handler_median']:.1f} ms of the {res['hover_median']:.1f} ms; an idle frame "
                         f"costs {res['idle_median']:.1f} ms.")
    write_table("browser", "Headless Chromium: first paint and hover repaint (SmolLM2 states)",
                ["tokens", "first paint ms (median)", "render() alone ms", "hover frame ms (median)",
                 "hover p95 ms", "hover handler ms", "idle frame ms", "text view hover ms (median)",
                 "text view recolour ms (median)", "paint <= 500 ms", "hover <= 16 ms"],
                rows, notes)
    (RESULTS / "browser.json").write_text(json.dumps({"results": results, "goal_paint_ms": GOAL_PAINT_MS,
                                                      "goal_hover_ms": GOAL_HOVER_MS}, indent=1))


if __name__ == "__main__":
    main()
