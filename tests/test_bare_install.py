"""The default install, as a new user gets it: the wheel alone (torch first) in a fresh virtualenv.

``pip install attnwidget`` gives capture, patterns, the widget and metrics; numba, scipy, gguf and
accelerate are extras (attnwidget/_optional.py). This test builds the wheel from this checkout,
installs it with nothing else into an empty virtualenv, and runs what the default install promises on
MiniLM (its weights read from the folder the dev install has, through plain ``from_pretrained``):
capture, the widget's data, export_html, and the features of the extras either working or refusing
with the ``pip install "attnwidget[...]"`` command. Also ``import attnwidget`` in the dev install,
where every extra is present, leaves the heavy optional packages unimported.

It takes one to three minutes (the install dominates: pip reads torch from the local wheel and the
rest from its cache), so it is one test that checks everything in one interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAZY = ("bqplot", "pandas", "numba", "llvmlite", "scipy", "gguf", "accelerate")

SMOKE = textwrap.dedent('''
    import importlib.util, json, sys, tempfile, pathlib
    folder, out = sys.argv[1], pathlib.Path(sys.argv[2])
    result = {"absent": [m for m in ("numba", "llvmlite", "scipy", "gguf", "accelerate")
                         if importlib.util.find_spec(m) is None]}
    import attnwidget
    result["imported_after_import"] = [m for m in %r if m in sys.modules]
    from transformers import AutoModel, AutoTokenizer
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    cap = attnwidget.capture(model, tokenizer, "The cat sat on the mat, and 猫坐在垫子上.")
    result["shape"] = list(cap.patterns().shape)
    result["rows_sum_to_one"] = bool(abs(cap.pattern(2, 3).sum(-1) - 1).max() < 1e-5)
    widget = attnwidget.AttentionWidget(cap, background=False)
    matrix = widget.heatmap_data["matrix"]  # what the page receives: bytes, never JSON numbers
    result["heatmap_bytes"] = len(matrix["buffer"]) if isinstance(matrix["buffer"], bytes) else -1
    result["heatmap_shape"] = matrix["shape"]
    result["grid_keys"] = sorted(widget.grid_data)
    result["rollout"] = float(attnwidget.rollout(cap)[-1].sum())
    result["metrics"] = sorted(attnwidget.compute_metrics(cap).keys())[:3]
    page = attnwidget.export_html(cap, out / "page.html")
    result["page_bytes"] = page.stat().st_size
    result["page_has_cdn"] = "cdn." in page.read_text(encoding="utf-8")
    for name, call in (("flow", lambda: attnwidget.attention_flow(cap, targets=[0])),
                       ("cluster", lambda: attnwidget.similar_heads(cap))):
        try:
            call()
            result[name] = "ran"
        except attnwidget.MissingExtraError as error:
            result[name] = str(error)
    widget.close()
    print("RESULT " + json.dumps(result))
''' % (LAZY,))


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_import_leaves_the_heavy_optional_packages_unimported():
    """``python -X importtime -c "import attnwidget"`` shows none of them, though all are installed here."""
    done = run(sys.executable, "-X", "importtime", "-c", "import attnwidget")
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & set(LAZY), sorted(imported & set(LAZY))
    assert "torch" in imported  # the check reads the right output


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT))
    (found,) = out.glob("attnwidget-*.whl")
    return found


def test_the_wheel_alone_captures_shows_and_exports_minilm(wheel, tmp_path):
    from attnwidget.models import minilm_path

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run(str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0", env=env)
    run(str(python), "-m", "pip", "install", "--quiet", str(wheel), env=env)
    done = run(str(python), "-c", SMOKE, str(minilm_path()), str(tmp_path), env=env, cwd=tmp_path)
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))

    assert set(result["absent"]) == {"numba", "llvmlite", "scipy", "gguf", "accelerate"}, result["absent"]
    assert result["imported_after_import"] == []
    assert result["shape"][:2] == [6, 12] and result["rows_sum_to_one"]  # MiniLM: 6 layers x 12 heads
    rows, cols = result["heatmap_shape"][-2:]
    assert result["heatmap_bytes"] >= rows * cols > 0 and {"thumbs", "layer_mean"} <= set(result["grid_keys"])
    assert abs(result["rollout"] - 1) < 1e-4
    assert result["metrics"] and result["page_bytes"] > 10_000 and not result["page_has_cdn"]
    # Exact flow either runs with the numpy fallback or names the extra; clustering names its extra.
    assert result["flow"] == "ran" or 'pip install "attnwidget[flow]"' in result["flow"], result["flow"]
    assert 'pip install "attnwidget[cluster]"' in result["cluster"], result["cluster"]
