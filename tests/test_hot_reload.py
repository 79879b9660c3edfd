"""Hot reload for front-end work (CONTRIBUTING.md): with ``ANYWIDGET_HMR=1`` and watchfiles installed
(the dev extra), a rebuilt bundle reaches every live widget as a new ``_esm`` value, which anywidget's
front end re-imports in place. Without watchfiles anywidget silently turns this off; this test catches
that. It appends a comment to the built bundle in a subprocess and puts the file back afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from attnwidget.widget import STATIC

PROBE = textwrap.dedent('''
    import sys, time
    import numpy as np
    from attnwidget import AttentionWidget, Capture
    from attnwidget.widget import STATIC

    weights = np.full((1, 1, 3, 3), 1 / 3, dtype=np.float32)
    widget = AttentionWidget(Capture.from_attentions(weights, tokens=["a", "b", "c"]), background=False)
    before = widget._esm
    bundle = STATIC / "widget.js"
    original = bundle.read_bytes()
    try:
        time.sleep(0.5)  # the watcher thread has started
        bundle.write_bytes(original + b"\\n// attnwidget hot-reload probe\\n")
        deadline = time.monotonic() + 20
        while widget._esm == before and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bundle.write_bytes(original)
    print("RELOADED" if widget._esm.endswith("// attnwidget hot-reload probe\\n") else "NOT RELOADED")
''')


def test_a_rebuilt_bundle_reaches_a_live_widget():
    bundle = STATIC / "widget.js"
    original = bundle.read_bytes()
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "ANYWIDGET_HMR": "1"})
    finally:
        if bundle.read_bytes() != original:  # the probe died before putting it back
            bundle.write_bytes(original)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Live-reloading feature is disabled" not in done.stderr  # watchfiles is installed
    assert done.stdout.strip().endswith("RELOADED") and "NOT" not in done.stdout, done.stdout + done.stderr[-2000:]
