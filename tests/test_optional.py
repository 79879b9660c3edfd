"""Extras: a feature whose optional package is absent refuses with MissingExtraError (an ImportError)
naming the ``pip install "attnwidget[extra]"`` command, and nothing else is affected. The packages
are hidden here by a ``None`` entry in ``sys.modules`` (Python then refuses to import them); the real
default install is tested in tests/test_bare_install.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from widget_captures import make_capture  # noqa: E402

import attnwidget  # noqa: E402
from attnwidget import MissingExtraError, models  # noqa: E402
from attnwidget._optional import EXTRAS, has, require  # noqa: E402
from attnwidget.errors import AttnwidgetError  # noqa: E402


def hide(monkeypatch, *names: str) -> None:
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def test_the_error_is_ours_and_an_import_error():
    with pytest.raises(MissingExtraError) as info:
        require("attnwidget_no_such_package", "a feature")
    assert isinstance(info.value, AttnwidgetError) and isinstance(info.value, ImportError)
    assert "a feature needs the optional package 'attnwidget_no_such_package'" in str(info.value)
    assert 'pip install "attnwidget[all]"' in str(info.value)  # unknown packages: the extra with everything
    assert not has("attnwidget_no_such_package") and has("numpy")


def test_every_extra_is_declared_in_pyproject():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for package, extra in EXTRAS.items():
        assert any(req.startswith(package) for req in extras[extra]), (package, extra, extras[extra])
        assert not any(req.startswith(package) for req in project["dependencies"]), package
    assert set(extras["all"][0].split("[")[1].rstrip("]").split(",")) == set(EXTRAS.values())


def test_similar_heads_names_the_cluster_extra(monkeypatch):
    cap = make_capture(["a", "b", "c", "d"], causal=True, layers=2, heads=2, seed=1)
    assert attnwidget.similar_heads(cap).labels.shape == (2, 2)  # with scipy
    hide(monkeypatch, "scipy", "scipy.cluster", "scipy.cluster.hierarchy")
    with pytest.raises(MissingExtraError, match=r'similar_heads .*pip install "attnwidget\[cluster\]"'):
        attnwidget.similar_heads(cap)
    assert np.isfinite(attnwidget.head_distances(cap)).all()  # the distances themselves need no scipy


def test_device_map_names_the_accelerate_extra(monkeypatch):
    hide(monkeypatch, "accelerate")
    with pytest.raises(MissingExtraError, match=r'device_map=.*pip install "attnwidget\[accelerate\]"'):
        models.load_model("minilm", device_map="cpu")


def test_the_gguf_conversion_names_the_examples_extra(monkeypatch, tmp_path):
    hide(monkeypatch, "gguf")
    with pytest.raises(MissingExtraError, match=r'SmolLM2 .*pip install "attnwidget\[examples\]"'):
        models._convert_gguf(tmp_path, "model.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()
