"""Results that display: the report, the quality score, head roles and the comparisons have an HTML
table form (``_repr_html_``, all text escaped) and a pandas form (``to_pandas``); a notebook cell ending
in ``attention_report(cap)`` shows HTML; ``import attnwidget`` does not load pandas on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import attnwidget
from attnwidget.heads import ROLES
from attnwidget.templates import TEMPLATE_STATS
from widget_captures import make_capture

HOSTILE = "<img src=x onerror=alert(1)>"
TOKENS = ["The", " cat", HOSTILE, " sat", " on", " the", " mat", "&", "."]
OTHER = ["A", " dog", " sat", " on", HOSTILE, " log", "."]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cap():
    return make_capture(TOKENS, causal=True, layers=3, heads=4, seed=1)


@pytest.fixture(scope="module")
def other():
    return make_capture(OTHER, causal=True, layers=3, heads=4, seed=2)


def check_html(html: str, *hostile: str) -> None:
    assert "<table>" in html and "</table>" in html
    assert "<img" not in html and "onerror=alert(1)>" not in html  # no live markup from the data
    for text in hostile:
        assert text not in html


def test_report_html_and_pandas(cap):
    report = attnwidget.attention_report(cap)
    html = report._repr_html_()
    check_html(html, HOSTILE)
    assert html.count("<table>") >= 4 and "Parts of the score" in html
    if report.recommendations:
        assert "<ul>" in html and html.count("<li>") == len(report.recommendations)
    frames = report.to_pandas()
    assert set(frames) == {"summary", "layers", "heads", "highlights", "recommendations", "quality"}
    L, H = report.num_layers, report.num_heads
    heads = frames["heads"]
    assert heads.shape[0] == L * H and list(heads.index.names) == ["layer", "head"]
    for name, values in report.metrics.items():
        np.testing.assert_array_equal(heads[name].to_numpy().reshape(L, H), values)
    np.testing.assert_array_equal(heads["role"].to_numpy().reshape(L, H), report.roles)
    np.testing.assert_allclose(heads["score"].to_numpy().reshape(L, H), report.quality.by_head)
    assert frames["layers"].shape[0] == L
    for name, values in report.layers.items():
        np.testing.assert_array_equal(frames["layers"][name].to_numpy(), values)
    assert frames["summary"]["value"].to_dict() == pytest.approx(report.summary)
    assert list(frames["recommendations"]["code"]) == [r.code for r in report.recommendations]
    assert len(frames["highlights"]) == sum(len(v) for v in report.highlights.values())


def test_report_escapes_the_model_name_and_recommendations():
    n = 4  # short input: the short_input recommendation fires
    attn = np.full((1, 2, n, n), 1.0 / n, dtype=np.float32)
    report = attnwidget.attention_report(attn)
    report.model = HOSTILE
    report.recommendations[0] = type(report.recommendations[0])("x", HOSTILE, 1.0, 2.0)
    html = report._repr_html_()
    check_html(html, HOSTILE)
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == 2 and "<ul><li>" in html


def test_quality_score_shows_its_parts(cap):
    for expected in (None, "previous"):
        q = attnwidget.quality_score(cap, expected)
        parts = q.parts()
        assert len(parts) == (3 if expected is None else 4)
        assert sum(p[3] for p in parts) == pytest.approx(q.overall)
        assert sum(p[1] for p in parts) == pytest.approx(1.0)
        html = q._repr_html_()
        check_html(html)
        assert "Parts of the score" in html and "locality" in html and (expected is None or "pattern match" in html)
        df = q.to_pandas()
        L, H = q.by_head.shape
        assert df.shape[0] == L * H and list(df.index.names) == ["layer", "head"]
        np.testing.assert_array_equal(df["score"].to_numpy().reshape(L, H), q.by_head)
        np.testing.assert_array_equal(df["locality"].to_numpy().reshape(L, H), q.locality)
        assert ("pattern_match" in df) == (expected is not None)


def test_head_roles_html_and_pandas(cap):
    roles = attnwidget.head_roles(cap)
    html = roles._repr_html_()
    check_html(html)
    for role in ROLES:
        assert f"<th style=\"text-align:left\">{role}</th>" in html
    df = roles.to_pandas()
    L, H = roles.shape
    assert df.shape == (L * H, len(ROLES) + 1) and list(df.columns) == [*ROLES, "dominant"]
    for role in ROLES:
        np.testing.assert_array_equal(df[role].to_numpy().reshape(L, H), roles.scores(role))
    np.testing.assert_array_equal(df["dominant"].to_numpy().reshape(L, H), roles.dominant())


def test_template_comparison_html_and_pandas(cap, other):
    result = attnwidget.compare_templates(captures={HOSTILE: cap, "plain": other})
    html = result._repr_html_()
    check_html(html, HOSTILE)
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the template's name, escaped
    df = result.to_pandas()
    assert df.shape == (2, len(TEMPLATE_STATS)) and list(df.index) == [HOSTILE, "plain"]
    assert list(df.columns) == list(TEMPLATE_STATS)
    for s in TEMPLATE_STATS:
        np.testing.assert_allclose(df[s].to_numpy(), result.stats[s])
    # outside a kernel the mime bundle stays the text table; IPython adds the HTML next to it
    assert result._repr_mimebundle_() == {"text/plain": str(result)}
    data, _ = display_formats(result)
    assert data["text/plain"] == str(result) and "<table>" in data["text/html"]


def test_language_comparison_html_and_pandas(cap, other):
    result = attnwidget.compare_languages(captures={"en": cap, "xx": other}, top_k=3, exclude_first=False)
    html = result._repr_html_()
    check_html(html, HOSTILE)
    assert html.count("<table>") == 3
    df = result.to_pandas()
    assert list(df.index) == ["en", "xx"]
    assert list(df.columns) == ["num_tokens", "num_chars", "chars_per_token", "entropy", "normalized_entropy",
                                "sparsity"]
    for name in ("en", "xx"):
        stats = result[name]
        assert df.loc[name, "num_tokens"] == stats.num_tokens
        assert df.loc[name, "entropy"] == pytest.approx(stats.entropy.mean())
        assert df.loc[name, "chars_per_token"] == pytest.approx(stats.chars_per_token)
    data, _ = display_formats(result)
    assert "text/html" in data and "text/plain" in data


def test_hostile_token_in_top_tokens_is_escaped():
    # top_k = every token: the hostile one is listed, quoted and escaped
    c = make_capture(TOKENS, causal=False, layers=1, heads=2, seed=0)
    result = attnwidget.compare_languages(captures={"en": c}, top_k=len(TOKENS))
    assert HOSTILE in [t for t, _, _ in result["en"].top]
    html = result._repr_html_()
    check_html(html, HOSTILE)
    assert "&#x27;&lt;img src=x onerror=alert(1)&gt;&#x27;" in html  # quoted, then escaped


def display_formats(obj):
    from IPython.core.formatters import DisplayFormatter

    return DisplayFormatter().format(obj)


def test_display_formatter_offers_html(cap):
    for obj in (attnwidget.attention_report(cap), attnwidget.quality_score(cap), attnwidget.head_roles(cap)):
        data, _ = display_formats(obj)
        assert "<table>" in data["text/html"] and data["text/plain"] == repr(obj)


def test_import_does_not_load_pandas():
    """``import attnwidget`` must not import pandas itself. bqplot (imported eagerly today) loads pandas:
    then the test checks that the first import of pandas came from bqplot, not from attnwidget."""
    code = textwrap.dedent('''
        import json, sys, traceback

        class Watch:
            stack = None
            def find_spec(self, name, path=None, target=None):
                if name == "pandas" and Watch.stack is None:
                    Watch.stack = [f.filename for f in traceback.extract_stack()]
                return None

        sys.meta_path.insert(0, Watch())
        import attnwidget
        print(json.dumps({"pandas": "pandas" in sys.modules, "bqplot": "bqplot" in sys.modules,
                          "stack": Watch.stack or []}))
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    if seen["pandas"]:
        assert seen["bqplot"], "pandas is imported by attnwidget without bqplot"
        first_outside = [f for f in seen["stack"] if "importlib" not in f and "<frozen" not in f]
        assert any("bqplot" in f or "bqscales" in f or "traittypes" in f for f in first_outside), seen["stack"]
    # no attnwidget module imports pandas at module level
    for path in (ROOT / "attnwidget").glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert not line.startswith(("import pandas", "from pandas")), f"{path.name}: {line}"


def test_notebook_cell_shows_the_report_as_html(byte_tokenizer, tmp_path):
    """A real kernel runs a cell ending in ``attention_report(cap)``: its output has ``text/html``
    (about 20 s: a kernel start and a tiny random model)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    byte_tokenizer.save_pretrained(tmp_path / "tok")
    source = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from transformers import AutoTokenizer
        import attnwidget
        from helpers import tiny_model
        tok = AutoTokenizer.from_pretrained({str(tmp_path / "tok")!r})
        cap = attnwidget.capture(tiny_model("gpt2"), tok, "the cat sat on the mat <img src=x onerror=alert(1)>")
        attnwidget.attention_report(cap)
    ''')
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = nb.cells[0].outputs
    results = [o for o in outputs if o.output_type == "execute_result"]
    assert results, outputs
    data = results[0]["data"]
    assert "<table>" in data["text/html"] and data["text/plain"].startswith("AttentionReport(")
    assert "<img" not in data["text/html"]
