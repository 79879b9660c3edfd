"""export_html and `python -m attnwidget export`: one self-contained, escaped HTML page."""

from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import LONG_TEXT, tiny_model

import attnwidget
from attnwidget import export as ex
from attnwidget import reduce as r

ROOT = Path(__file__).resolve().parents[1]
MALICIOUS = [
    "</script><script>window.__pwned=1</script>",
    "<img src=x onerror=\"window.__pwned=2\">",
    "<!--",
    "</SCRIPT >",
    "&lt;b&gt;",
    "\u2028\u2029",
    "'\"`${x}`",
]


def build_bundles_if_needed():
    js = ROOT / "js"
    sources = list((js / "src").rglob("*.js"))
    built = [path for path in ex.BUNDLES.values() if path.is_file()]
    if len(built) == len(ex.BUNDLES) and min(p.stat().st_mtime for p in built) >= max(
            p.stat().st_mtime for p in sources):
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not found: install Node.js >= 20.19 and build the bundle with `make js`")
    if not (js / "node_modules").exists():
        subprocess.run([npm, "--prefix", str(js), "ci"], check=True)
    subprocess.run([npm, "--prefix", str(js), "run", "build"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def cap(byte_tokenizer):
    build_bundles_if_needed()
    return attnwidget.capture(tiny_model("llama"), byte_tokenizer, "The cat sat on the mat. The dog sat.")


class ScriptParser(html.parser.HTMLParser):
    """Collects every element and attribute, and the text of each <script>, as a browser tokenizes them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self._script = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = [dict(attrs), ""]

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(tuple(self._script))
            self._script = None


def parse(page: str) -> ScriptParser:
    parser = ScriptParser()
    parser.feed(page)
    parser.close()
    return parser


def embedded(page: str, element_id: str):
    scripts = {attrs.get("id"): text for attrs, text in parse(page).scripts}
    return json.loads(scripts[element_id])


def decode(entry: dict) -> np.ndarray:
    data = base64.b64decode(entry["b64"])
    if entry["compression"] == "zlib":
        data = zlib.decompress(data)
    return np.frombuffer(data, dtype=np.dtype(entry["dtype"]).newbyteorder("<")).reshape(entry["shape"])


def test_one_self_contained_page(cap, tmp_path):
    path = ex.export_html(cap, tmp_path / "page.html")
    assert list(tmp_path.iterdir()) == [path]
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    # No URL but XML namespace names (the SVG export's, js/src/svg.js: identifiers, never fetched).
    bare = page.replace("http://www.w3.org/2000/svg", "").replace("http://www.w3.org/1999/xlink", "")
    assert "http://" not in bare and "https://" not in bare
    parsed = parse(page)
    # Nothing is loaded from anywhere: no src/href attributes at all, four inline scripts (the theme
    # toggle's, the data, the modules, the bootstrap).
    assert [tag for tag, attrs in parsed.tags if {"src", "href"} & set(attrs)] == []
    types = [attrs.get("type") for attrs, _ in parsed.scripts]
    assert types == [None, "application/json", "application/json", "module"]
    modules = embedded(page, "attnwidget-modules")
    assert modules["widget"] == ex.BUNDLES["widget"].read_text(encoding="utf-8")
    assert modules["static_model"] == ex.BUNDLES["static_model"].read_text(encoding="utf-8")
    csp = next(attrs["content"] for tag, attrs in parsed.tags if attrs.get("http-equiv") == "Content-Security-Policy")
    script_src = csp.split("script-src")[1].split(";")[0]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in script_src
    # Only the two fixed inline scripts run (by hash): the theme toggle and the bootstrap.
    assert script_src.split() == [ex._csp_hash(ex.THEME_SCRIPT), ex._csp_hash(ex.BOOTSTRAP), "blob:"]
    assert [text for attrs, text in parsed.scripts if attrs.get("type") is None] == [ex.THEME_SCRIPT]
    assert "Embedded:" in page and "rollout" in page.lower()


def test_the_page_has_one_theme_and_a_toggle(cap, tmp_path):
    page = ex.export_html(cap, tmp_path / "page.html").read_text(encoding="utf-8")
    parsed = parse(page)
    radios = [attrs for tag, attrs in parsed.tags if tag == "input" and attrs.get("name") == "attnwidget-theme"]
    assert [(r["type"], r["value"]) for r in radios] == [("radio", "light"), ("radio", "dark"), ("radio", "auto")]
    assert [r["value"] for r in radios if "checked" in r] == ["auto"]  # no script: prefers-color-scheme decides
    # The page defines the variables the widget reads (js/src/colors.js), light and dark, and uses them.
    for variable in ("--jp-layout-color0", "--jp-layout-color1", "--jp-ui-font-color0", "--jp-ui-font-color1",
                     "--jp-ui-font-color2", "--jp-border-color1", "--jp-border-color2", "--jp-brand-color1",
                     "--jp-warn-color1", "--jp-error-color1", "--jp-ui-font-family", "--jp-code-font-family"):
        assert f"{variable}:" in ex.STYLE, variable
    for variable in ("--jp-layout-color0", "--jp-ui-font-color1", "--jp-error-color1"):
        assert ex._LIGHT.count(f"{variable}:") == ex._DARK.count(f"{variable}:") == 1
    assert "@media (prefers-color-scheme: dark)" in ex.STYLE and "background: var(--jp-layout-color0)" in ex.STYLE
    assert "#ffffff; color" not in ex.STYLE  # no fixed page colours left
    assert "sessionStorage" in ex.THEME_SCRIPT and "jpThemeLight" in ex.THEME_SCRIPT


def test_the_model_name_reaches_the_figures(cap):
    payload, _ = ex.build_payload(cap)
    assert payload["state"]["model_name"] == cap.model_name != ""
    widget = attnwidget.AttentionWidget(cap)
    widget.model_name = "renamed"
    assert ex.build_payload(widget)[0]["state"]["model_name"] == "renamed"  # as the widget's titles show it
    payload, _ = ex.build_payload(np.stack([cap.patterns()[0]] * 2))
    assert payload["state"]["model_name"] == ""  # bare arrays name no model


def test_embedded_data_decodes_to_the_same_arrays(cap):
    payload, arrays = ex.build_payload(cap)
    page = ex.render_html(payload, title="t")
    data = embedded(page, "attnwidget-data")
    assert data["state"]["tokens"] == cap.tokens
    assert set(data["arrays"]) == set(arrays)
    for name, entry in data["arrays"].items():
        assert isinstance(entry["b64"], str) and entry["compression"] == "zlib"
        np.testing.assert_array_equal(decode(entry), arrays[name], err_msg=name)
    # ... and those arrays are the capture's weights (8-bit) and rollout (float16).
    n, L, H = cap.num_tokens, cap.num_layers, cap.num_heads
    heat = decode(data["arrays"]["heat"]).astype(np.float64) / 255
    scale = decode(data["arrays"]["heat_scale"])
    assert heat.shape == (L, H + 1, n, n) and data["meta"]["heat_factor"] == 1  # short: full resolution
    for layer in range(L):
        expected = np.concatenate([cap.head_patterns(layer), cap.pattern(layer)[None]])
        np.testing.assert_allclose(heat[layer] * scale[layer][:, None, None], expected, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(decode(data["arrays"]["rollout"]), attnwidget.rollout(cap), atol=2e-3)
    assert data["state"]["layer"] == L // 2 and data["state"]["head"] is None


def test_pooled_heatmaps_full_layer_and_rollout_row(cap):
    n = cap.num_tokens
    payload, arrays = ex.build_payload(cap, heatmap_side=8, rollout_rows=4, layer=0, head=1)
    from attnwidget._engine import tile_factor

    f = tile_factor(n, 8)  # the stored tiles pool a power of two of tokens per cell
    assert arrays["heat"].shape[-1] == -(-n // f) and payload["meta"]["heat_factor"] == f
    pooled = r.max_pool(cap.head_patterns(2), f)
    np.testing.assert_allclose(arrays["heat"][2, :4] / 255 * arrays["heat_scale"][2, :4, None, None], pooled,
                               atol=0.5 / 255 + 1e-6)
    assert payload["meta"]["full_layer"] == 0 and arrays["full"].shape == (cap.num_heads + 1, n, n)
    assert payload["meta"]["rollout_rows"] == [n - 1] and arrays["rollout"].shape == (1, n)
    assert payload["state"]["head"] == 1
    assert f"max-pooled to {-(-n // f)} x {-(-n // f)}" in payload["note"]
    assert "layer 0 is also embedded at full resolution" in payload["note"]
    _, without = ex.build_payload(cap, heatmap_side=8, full_resolution=False, graph=False)
    assert "full" not in without and "graph_pos" not in without


def test_malicious_tokens_are_escaped(cap, tmp_path):
    tokens = [MALICIOUS[i % len(MALICIOUS)] for i in range(cap.num_tokens)]
    widget = attnwidget.AttentionWidget(cap, tokens=tokens, layer=1, head=2, view="lines")
    path = ex.export_html(widget, tmp_path / "page.html", title="</title><script>window.__pwned=3</script>")
    page = path.read_text(encoding="utf-8")
    for bad in MALICIOUS[:4] + ["<script>window.__pwned", "<img"]:
        assert bad not in page, bad
    # "onerror=" survives only as text inside the JSON data (a script element's raw text).
    data_text = next(text for attrs, text in parse(page).scripts if attrs.get("id") == "attnwidget-data")
    assert page.count("onerror=") == data_text.count("onerror=") > 0
    assert "\u2028" not in page and "\u2029" not in page
    parsed = parse(page)
    assert len(parsed.scripts) == 4 and page.lower().count("<script") == 4 and page.lower().count("</script") == 4
    assert [tag for tag, _ in parsed.tags if tag in ("img", "iframe", "object", "embed", "svg")] == []
    data = embedded(page, "attnwidget-data")
    assert data["state"]["tokens"] == tokens  # round trip is exact
    assert (data["state"]["layer"], data["state"]["head"], data["state"]["view"]) == (1, 2, "lines")
    assert "&lt;/title&gt;&lt;script&gt;" in page


def test_explorer_and_overrides(cap, tmp_path):
    explorer = attnwidget.show(cap, layer=2, head=3, view="graph", threshold=0.25)
    payload, arrays = ex.build_payload(explorer)
    state = payload["state"]
    assert (state["layer"], state["head"], state["view"], state["threshold"]) == (2, 3, "graph", 0.25)
    assert payload["meta"]["graph"] == {"layer": 2, "head": 3, "threshold": 0.25}
    assert "graph_edges" in arrays and arrays["graph_edges"].dtype == np.uint32
    payload, _ = ex.build_payload(explorer, layer=0, head="mean", view="rollout")
    assert (payload["state"]["layer"], payload["state"]["head"], payload["state"]["view"]) == (0, None, "rollout")
    raw = np.stack([cap.patterns()[0]] * 2)  # a plain [layer, head, query, key] array works too
    payload, _ = ex.build_payload(raw)
    assert payload["state"]["tokens"] == [str(i) for i in range(cap.num_tokens)]


def test_errors(cap, tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="Capture, an AttentionWidget"):
        ex.export_html("some text", tmp_path / "x.html")
    with pytest.raises(ValueError, match="layer 99 is out of range: there are 3 layers"):
        ex.export_html(cap, tmp_path / "x.html", layer=99)
    with pytest.raises(TypeError, match="head must be an int .*got str 'first'"):
        ex.export_html(cap, tmp_path / "x.html", head="first")
    monkeypatch.setitem(ex.BUNDLES, "widget", tmp_path / "missing" / "widget.js")
    with pytest.raises(FileNotFoundError, match="make js"):
        ex.export_html(cap, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "attnwidget", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, **kwargs)


def test_cli_help_and_errors(tmp_path):
    result = run_cli("--help")
    assert result.returncode == 0 and "export" in result.stdout
    result = run_cli("export", "--help")
    assert result.returncode == 0 and "--model" in result.stdout and "--head" in result.stdout
    result = run_cli("export", "hello")  # -o is required
    assert result.returncode != 0 and "-o/--output" in result.stderr
    result = run_cli("export", "hello", "-o", str(tmp_path / "p.html"), "--model", str(tmp_path / "no-model"))
    assert result.returncode == 1 and result.stderr.startswith("attnwidget: error:")
    assert "Traceback" not in result.stderr and not (tmp_path / "p.html").exists()


@pytest.mark.slow
def test_cli_exports_smollm2(tmp_path):
    out = tmp_path / "page.html"
    result = run_cli("export", LONG_TEXT, "-o", str(out), "--layer", "3", "--head", "mean",
                     env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout and re.search(r"\d+(\.\d)? (KB|MB)", result.stdout)
    data = embedded(out.read_text(encoding="utf-8"), "attnwidget-data")
    assert (data["state"]["num_layers"], data["state"]["num_heads"]) == (30, 9)
    assert (data["state"]["layer"], data["state"]["head"]) == (3, None)
    assert out.stat().st_size < 4_000_000


def test_encoder_capture(byte_tokenizer, tmp_path):
    enc = attnwidget.capture(tiny_model("bert"), byte_tokenizer, "The dog sat on the log.")
    payload, arrays = ex.build_payload(enc, rollout_rows=2)
    assert payload["state"]["is_causal"] is False
    assert payload["meta"]["rollout_rows"] == [0]  # encoders: the first (CLS) row
    path = ex.export_html(enc, tmp_path / "bert.html", compress=False)
    data = embedded(path.read_text(encoding="utf-8"), "attnwidget-data")
    assert data["arrays"]["heat"]["compression"] is None
    np.testing.assert_array_equal(decode(data["arrays"]["heat"]), arrays["heat"])
