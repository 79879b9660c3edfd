"""One version everywhere: pyproject.toml, ``attnwidget.__version__`` and js/package.json agree, and the
license is the same (Apache-2.0) in pyproject, package.json and the LICENSE file."""

from __future__ import annotations

import json
import tomllib
from importlib import metadata
from pathlib import Path

import attnwidget

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def package_json() -> dict:
    return json.loads((ROOT / "js" / "package.json").read_text(encoding="utf-8"))


def test_versions_agree():
    project = pyproject()
    if "version" in project:  # written in pyproject
        assert project["version"] == attnwidget.__version__
    else:  # dynamic: hatch reads it from attnwidget/__init__.py, the installed metadata shows it
        assert "version" in project.get("dynamic", [])
        assert metadata.version("attnwidget") == attnwidget.__version__
    assert package_json()["version"] == attnwidget.__version__


def test_license_is_apache_everywhere():
    project = pyproject()
    license_ = project["license"]
    assert (license_.get("text") if isinstance(license_, dict) else license_) == "Apache-2.0"
    assert package_json()["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Copyright 2026 the attnwidget authors" in text and "[yyyy]" not in text
