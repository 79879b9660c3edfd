"""Long inputs on SmolLM2, side by side in one run: 2048 and 8192 tokens of prose (issue: long inputs
that stay interactive). Each case runs in its own fresh process, one after another.

Run: ``python benchmarks/bench_long.py [--quick] [--tokens 2048 8192] [--save-state FILE]``.

For each length ``n``:

* **capture / forward**: alternating pairs of a plain sdpa forward (the kwargs capture passes:
  ``use_cache=False, logits_to_keep=1``) and ``attnwidget.capture`` on the same ids, after one
  warm-up of each; the median of the per-pair ratios. Also at 256 and 1024 tokens.
* **full grid + all metrics / floor**: the floor is one ``QK^T + softmax`` pass over every layer,
  timed in the same process, alternating with the pass: per layer and group of query heads sharing a
  key head, blocks of rows of scores over the keys they can see (``(q * scaling) @ k^T``, the causal
  diagonal block masked) and ``torch.softmax``; the faster of 64 and 128 rows per block. The
  pass is what the widget's background thread runs (``Summary(cap, keep_means=True).run()``): every
  layer's heatmap tiles and thumbnails of each head and of the mean, all 9 metrics and 6 head roles,
  and the head-mean patterns kept for rollout rows. Ratio = median over repeats of pass / floor
  (each repeat runs both, the first of the two alternating).
* **layer switch**: after the pass, ``widget.layer = l`` (and ``head``) for 12 layer/head pairs; the
  observer sends the new heatmap tile. Median and maximum of the Python-side time.
* **rollout row for a clicked token**: ``widget.rollout_values(row)`` for two tokens not computed
  before (through the kept head-mean patterns; layers over the memory budget are recomputed).
* **peak RSS**: a fresh process: load the model, capture, ``attnwidget.show`` (explorer) and
  ``wait()`` for the background pass, a clicked rollout row, layer switches: the process's VmHWM.
* **show() to first paint**: a real JupyterLab with headless Chromium: one cell loads the model and
  captures (not timed); the next records ``time.time()`` and calls ``attnwidget.show(cap)``; the time
  is the page's ``data-painted-at`` (a task queued from the first frame that drew the grid and the
  heatmap) minus that start.
* **cgroup**: a child process in a 6 GiB memory cgroup asks a 4096-token capture for
  ``patterns(range(12))`` (7.2 GB): it must get the MemoryError, not the OOM killer.

Text-view hover repaint at 8192 tokens is measured by ``bench_browser.py`` on the state this script
saves (``--save-state``). Writes ``benchmarks/results/long.md`` and ``long.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tools"))
from _common import RESULTS, PeakRSS, token_ids, write_table  # noqa: E402

GOALS = {"capture_ratio": 1.2, "pass_ratio": 1.5, "first_paint_s": 3.0, "switch_ms": 100.0,
         "rollout_s": 15.0, "rss_bytes": 4e9}
GiB = 2**30


# -- cases (each in its own process) ----------------------------------------------------------------

def _capture_pairs(model, tok, n: int, pairs: int) -> dict:
    import torch

    import attnwidget

    ids = token_ids(tok, n)
    x = torch.tensor([ids])

    def forward():
        with torch.no_grad():
            model(x, use_cache=False, logits_to_keep=1)

    forward()
    attnwidget.capture(model, tok, ids)
    times = []
    for _ in range(pairs):
        t0 = time.perf_counter()
        forward()
        t1 = time.perf_counter()
        attnwidget.capture(model, tok, ids)
        times.append((t1 - t0, time.perf_counter() - t1))
    ratios = [c / f for f, c in times]
    return {"tokens": n, "pairs": times, "ratio": statistics.median(ratios)}


def _floor(cap, rows: int) -> float:
    """One QK^T + softmax pass over every layer (see the module docstring); seconds."""
    import torch

    n = cap.num_tokens
    t0 = time.perf_counter()
    with torch.no_grad():
        for record in cap._records:
            q, k = record.query, record.key
            heads, _, d = q.shape
            groups = heads // k.shape[0]
            buffer = torch.empty(groups * rows * n)
            for r0 in range(0, n, rows):
                r1 = min(n, r0 + rows)
                m = r1 - r0
                future = torch.ones(m, m, dtype=torch.bool).triu_(1)
                for kv in range(k.shape[0]):
                    qq = q[kv * groups:(kv + 1) * groups, r0:r1].reshape(groups * m, d) * record.scaling
                    scores = buffer[:groups * m * r1].view(groups * m, r1)
                    torch.mm(qq, k[kv, :r1].T, out=scores)
                    scores = scores.view(groups, m, r1)
                    scores[:, :, r0:r1].masked_fill_(future, float("-inf"))
                    torch.softmax(scores, -1)
    return time.perf_counter() - t0


def case_speed(n: int, quick: bool, save_state: str | None) -> dict:
    import numpy as np

    import attnwidget
    from attnwidget._summary import Summary, default_options

    model, tok = attnwidget.load_model("smollm2")
    out = {"tokens": n, "capture": []}
    if not quick and n == 2048:  # the short lengths ride along in the smaller process
        for small in (256, 1024):
            out["capture"].append(_capture_pairs(model, tok, small, 5))
    out["capture"].append(_capture_pairs(model, tok, n, 2 if n >= 8192 else 5))
    cap = attnwidget.capture(model, tok, token_ids(tok, n))
    del model  # the pass and the floor need only the capture
    repeats = 3 if n >= 8192 else 5
    floors, passes = [], []
    summary = None
    Summary(cap, default_options(cap), keep_means=True).layer(0)  # compile / warm the kernels
    _floor(cap, 64)
    for rep in range(repeats):  # alternate which goes first, so neither always follows the other
        for which in (("floor", "pass") if rep % 2 == 0 else ("pass", "floor")):
            if which == "floor":
                floors.append(min(_floor(cap, rows) for rows in (64, 128)))
            else:
                summary = Summary(cap, default_options(cap), keep_means=True)
                t0 = time.perf_counter()
                summary.run()
                passes.append(time.perf_counter() - t0)
    out["floor_s"], out["pass_s"] = floors, passes
    out["pass_ratio"] = statistics.median([p / f for p, f in zip(passes, floors)])
    out["pass_ratio_fastest"] = min(passes) / min(floors)
    out["kept"] = {"dtype": summary.keep_dtype, "layers": int(summary.keep_layers), "of": cap.num_layers}
    cap.__dict__["_summaries"] = {default_options(cap): summary}  # the widget reuses this pass
    widget = attnwidget.AttentionWidget(cap)
    assert widget._summary is summary and widget.wait()
    rng = np.random.default_rng(0)
    switches = []
    for layer, head in zip(rng.permutation(cap.num_layers)[:12], rng.integers(-1, cap.num_heads, 12)):
        head = None if head < 0 else int(head)
        t0 = time.perf_counter()
        with widget.hold_sync():
            widget.layer, widget.head = int(layer), head
        switches.append((time.perf_counter() - t0) * 1000)
    out["switch_ms"] = switches
    rollout = []
    for row in (n // 2, n // 3):
        t0 = time.perf_counter()
        values = widget.rollout_values(row)
        rollout.append(time.perf_counter() - t0)
        assert abs(values.sum() - 1) < 1e-3
    out["rollout_s"] = rollout
    if save_state:
        import _widget_state

        widget.view = "text"
        widget.selected_tokens = [n - 1]
        widget.color_scale = "log"
        _widget_state.save(Path(save_state), _widget_state.from_widget(widget))
    return out


def case_rss(n: int) -> dict:
    import attnwidget

    model, tok = attnwidget.load_model("smollm2")
    ids = token_ids(tok, n)
    with PeakRSS() as peak:
        cap = attnwidget.capture(model, tok, ids)
        explorer = attnwidget.show(cap)
        explorer.wait()
        explorer.widget.rollout_values(n // 2)
        for layer in (3, 17, 29 % cap.num_layers):
            explorer.widget.layer = layer
    return {"tokens": n, "peak": peak.peak, "start": peak.start, "above": peak.above, "seconds": peak.seconds,
            "recorded": cap.nbytes, "kept": explorer.widget._summary.keep_layers}


LAB_CELLS = [
    "import sys, time\n"
    f"sys.path.insert(0, {str(HERE)!r})\n"
    "import attnwidget\n"
    "from _common import token_ids\n"
    'model, tok = attnwidget.load_model("smollm2")\n'
    "cap = attnwidget.capture(model, tok, token_ids(tok, {n}))\n"
    "print('READY', cap.num_tokens)",
    "t0 = time.time()\n"
    "explorer = attnwidget.show(cap)\n"
    "t1 = time.time()\n"
    "print(f'SHOW {{t0!r}} {{t1!r}}')\n"
    "explorer",
]


def case_lab(n: int) -> dict:
    import jupyter_run

    with tempfile.TemporaryDirectory(prefix="attnwidget-bench-lab-") as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        root.mkdir()
        cells = [cell.format(n=n) for cell in LAB_CELLS]
        (root / "long.ipynb").write_text(json.dumps(jupyter_run.notebook_json(cells)))
        with jupyter_run.jupyter_server("lab", root, tmp / "state", tmp / "lab.log", notebook="long.ipynb") as lab:
            allowed = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")
            with jupyter_run.offline_chromium(lambda url: url.startswith(allowed),
                                              viewport={"width": 1500, "height": 1000}) as context:
                page = context.new_page()
                page.goto(lab["url"], timeout=60000)
                idle = f"{jupyter_run.KERNEL}?.status === 'idle'"
                page.wait_for_function(f"{idle} && document.querySelectorAll('.jp-CodeCell').length === 2",
                                       timeout=120000, polling=200)
                page.evaluate("window.jupyterapp.shell.collapseLeft?.()")
                run = "window.jupyterapp.commands.execute('notebook:run-cell-and-select-next')"
                page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0")
                page.evaluate(run)
                page.wait_for_function("() => document.body.innerText.includes('READY')", timeout=600000, polling=500)
                page.wait_for_function(idle, timeout=60000, polling=100)
                page.evaluate(run)
                page.wait_for_function("() => document.querySelector('.attnwidget')?.dataset.paintedAt",
                                       timeout=120000, polling=20)
                painted = float(page.evaluate("document.querySelector('.attnwidget').dataset.paintedAt"))
                started = float(page.evaluate("document.querySelector('.attnwidget').dataset.renderStartedAt"))
                page.wait_for_function("() => document.body.innerText.includes('SHOW ')", timeout=60000, polling=50)
                line = next(x for x in page.evaluate("document.body.innerText").splitlines() if x.startswith("SHOW "))
                t0, t1 = (float(v) for v in line.split()[1:3])
                blocked = list(context.blocked_requests)
                page.close()
    return {"tokens": n, "first_paint_s": painted / 1000 - t0, "show_s": t1 - t0,
            "render_start_s": started / 1000 - t0, "blocked": blocked}


def case_cgroup() -> dict:
    """4096 tokens, patterns(range(12)) under a 6 GiB memory cgroup (this process is moved into it)."""
    here = Path("/proc/self/cgroup").read_text().splitlines()
    cgroup = None
    for line in here:
        _, controllers, path = line.split(":", 2)
        for base, limit_file, ok in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory" in controllers.split(",")),
                                     ("/sys/fs/cgroup", "memory.max", controllers == "")):
            if not ok:
                continue
            candidate = Path(base) / path.lstrip("/") / f"attnwidget-bench-{os.getpid()}"
            try:
                candidate.mkdir()
                (candidate / limit_file).write_text(str(6 * GiB))
                (candidate / "cgroup.procs").write_text(str(os.getpid()))
                cgroup = candidate
                break
            except OSError:
                continue
        if cgroup:
            break
    if cgroup is None:
        return {"ran": False, "why": "no writable memory cgroup on this machine"}
    import attnwidget

    model, tok = attnwidget.load_model("smollm2")
    cap = attnwidget.capture(model, tok, token_ids(tok, 4096))
    try:
        cap.patterns(range(12))
    except MemoryError as error:
        return {"ran": True, "raised": True, "message": str(error)}
    return {"ran": True, "raised": False, "message": "patterns() returned"}


# -- runner ------------------------------------------------------------------------------------------

def run_case(args: list[str], timeout: float = 1800) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--case", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        return {"failed": True, "returncode": proc.returncode,
                "why": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_ms(values) -> str:
    return f"{statistics.median(values):.0f} ms (max {max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="512 and 1024 tokens, fewer repeats")
    parser.add_argument("--tokens", type=int, nargs="+")
    parser.add_argument("--save-state", help="write the 8192-token widget state (text view) here for bench_browser")
    args = parser.parse_args()
    if args.case:
        kind, *rest = args.case
        if kind == "speed":
            result = case_speed(int(rest[0]), rest[1] == "quick", rest[2] if len(rest) > 2 else None)
        elif kind == "rss":
            result = case_rss(int(rest[0]))
        elif kind == "lab":
            result = case_lab(int(rest[0]))
        else:
            result = case_cgroup()
        print(json.dumps(result))
        return

    sizes = args.tokens or ([512, 1024] if args.quick else [2048, 8192])
    started = time.time()
    results = {}
    for n in sizes:
        state = [os.path.abspath(args.save_state)] if args.save_state and n == max(sizes) else []
        print(f"[long] {n} tokens: speed", flush=True)
        results[f"speed{n}"] = run_case(["speed", str(n), "quick" if args.quick else "full", *state])
        print(f"[long] {n} tokens: peak RSS", flush=True)
        results[f"rss{n}"] = run_case(["rss", str(n)])
        print(f"[long] {n} tokens: JupyterLab first paint", flush=True)
        results[f"lab{n}"] = run_case(["lab", str(n)])
    print("[long] cgroup", flush=True)
    results["cgroup"] = run_case(["cgroup"]) if not args.quick else {"ran": False, "why": "quick run"}
    (RESULTS / ("long.json" if not args.quick else "long.quick.json")).write_text(json.dumps(results, indent=1))
    write(results, sizes, time.time() - started, args.quick)
    if any(r.get("failed") for r in results.values()):
        raise SystemExit(1)


def write(results: dict, sizes: list[int], seconds: float, quick: bool) -> None:
    rows, met = [], {}

    def cell(key, fn):
        r = results.get(key, {})
        if r.get("failed"):
            return f"failed: {r['why']}"
        try:
            return fn(r)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            return f"no result ({error})"

    def goal(name, ok):
        met[name] = met.get(name, True) and bool(ok)
        return "" if ok else " **(over)**"

    # capture / forward at every length
    caps = {}
    for n in sizes:
        for c in results.get(f"speed{n}", {}).get("capture", []):
            caps[c["tokens"]] = c
    for t in sorted(caps):
        c = caps[t]
        f, cp = statistics.median(p[0] for p in c["pairs"]), statistics.median(p[1] for p in c["pairs"])
        rows.append([f"capture / plain sdpa forward, {t} tokens ({len(c['pairs'])} alternating pairs)",
                     f"<= {GOALS['capture_ratio']}x",
                     f"{c['ratio']:.2f}x ({cp:.2f} s vs {f:.2f} s){goal('capture', c['ratio'] <= GOALS['capture_ratio'])}"])
    for n in sizes:
        rows.append([f"show() call to first painted widget, JupyterLab + headless Chromium, {n} tokens (after capture)",
                     f"<= {GOALS['first_paint_s']:.0f} s" + (" (8192)" if n < 8192 else ""),
                     cell(f"lab{n}", lambda r: f"{r['first_paint_s']:.2f} s (show() returned after {r['show_s']:.2f} s)"
                          + goal("paint", n < 8192 or r["first_paint_s"] <= GOALS["first_paint_s"]))])
    for n in sizes:
        rows.append([f"full grid + all metrics (the widget's pass) / one QK^T + softmax pass, {n} tokens x 30 layers",
                     f"<= {GOALS['pass_ratio']}x",
                     cell(f"speed{n}", lambda r: f"{r['pass_ratio']:.2f}x median of {len(r['pass_s'])} alternating "
                          f"pairs ({statistics.median(r['pass_s']):.1f} s vs {statistics.median(r['floor_s']):.1f} s); "
                          f"fastest of each: {r['pass_ratio_fastest']:.2f}x"
                          + goal("pass", r["pass_ratio"] <= GOALS["pass_ratio"]))])
    for n in sizes:
        rows.append([f"switching layer / head after the pass, {n} tokens (Python side, 12 switches)",
                     f"<= {GOALS['switch_ms']:.0f} ms",
                     cell(f"speed{n}", lambda r: _fmt_ms(r["switch_ms"])
                          + goal("switch", statistics.median(r["switch_ms"]) <= GOALS["switch_ms"]))])
    for n in sizes:
        rows.append([f"rollout row for a clicked token, {n} tokens (2 tokens)",
                     f"<= {GOALS['rollout_s']:.0f} s" + (" (8192)" if n < 8192 else ""),
                     cell(f"speed{n}", lambda r: f"{max(r['rollout_s']):.1f} s max (head means kept: "
                          f"{r['kept']['layers']}/{r['kept']['of']} layers, {r['kept']['dtype']})"
                          + goal("rollout", max(r["rollout_s"]) <= GOALS["rollout_s"]))])
    for n in sizes:
        rows.append([f"peak RSS, whole process (model, capture, explorer + background pass, rollout row, "
                     f"layer switches), {n} tokens", f"<= {GOALS['rss_bytes'] / 1e9:.0f} GB",
                     cell(f"rss{n}", lambda r: f"{r['peak'] / 1e9:.2f} GB ({r['peak'] / GiB:.2f} GiB; model and "
                          f"Python before: {r['start'] / GiB:.2f} GiB)" + goal("rss", r["peak"] <= GOALS["rss_bytes"]))])
    cg = results.get("cgroup", {})
    if cg.get("ran"):
        rows.append(["4096-token patterns(range(12)) (7.2 GB) under a 6 GiB memory cgroup", "MemoryError, not killed",
                     ("MemoryError: " + cg["message"][:140] + "...") if cg.get("raised") else "**not raised**"])
    else:
        rows.append(["4096-token patterns(range(12)) under a 6 GiB memory cgroup", "MemoryError, not killed",
                     f"not run: {cg.get('why', cg)}"])
    notes = [
        f"SmolLM2-135M-Instruct (30 layers x 9 heads, 3 key heads), prose from benchmarks/_common.py; every case a "
        f"fresh process, one after another; total {seconds / 60:.1f} min.",
        "Floor: one QK^T + softmax pass over every layer in row blocks over the visible keys (the faster of 64 and "
        "128 rows a block); the pass adds to it every tile, thumbnail, metric, role and the kept head means. Floor "
        "and pass alternate, each first in turn; the ratio is the median of the per-pair ratios (both halves of a "
        "pair see the same machine), and the ratio of the fastest run of each (the least disturbed) is shown too.",
        "Text-view hover repaint at 8192 tokens: see the browser table (bench_browser.py).",
    ]
    write_table("long" if not quick else "long_quick", "Long inputs, side by side", ["measure", "goal", "measured"],
                rows, notes)
    path = RESULTS / ("long.json" if not quick else "long.quick.json")
    data = json.loads(path.read_text())
    data["_met"] = met
    path.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
