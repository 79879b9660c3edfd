"""Run a real Jupyter server and an offline headless Chromium: shared by the browser tests and the
benchmarks (one recipe: /work/shared/BROWSER.md facts, kept here rather than in two copies).

* :func:`jupyter_server` starts JupyterLab or Notebook 7 on 127.0.0.1 with isolated state (config,
  data, runtime, IPython and Lab settings dirs in a folder of the caller's), the news pop-up off,
  waits for ``/api/status`` and shuts it down (then kills its process group) on exit.
* :func:`offline_chromium` is a persistent Playwright Chromium context in a throwaway profile and
  home that refuses, and records, every request whose URL the caller does not allow.
* :func:`serve_files` serves a few files on 127.0.0.1 (a thread), for pages without Jupyter.
Both raise ``RuntimeError`` with the log's tail when something does not start.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("ATTNWIDGET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APPS = {
    "lab": {
        "module": "jupyterlab", "path": "lab/tree",
        "flags": ["--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
                  "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate"],
    },
    "notebook": {
        "module": "notebook", "path": "notebooks",
        "flags": ["--JupyterNotebookApp.expose_app_in_browser=True"],
    },
}
#: The current notebook's kernel, in the page (JupyterLab and Notebook 7 expose ``window.jupyterapp``).
KERNEL = "window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel"


CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".json": "application/json"}


@contextlib.contextmanager
def serve_files(routes: dict[str, Path]):
    """Yield ``http://127.0.0.1:PORT`` serving ``routes`` (URL path -> file, read at each request, so a
    rebuilt file is served fresh; the type from its suffix; 404 elsewhere); stopped on exit."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            path = routes.get(self.path.split("?")[0])
            if path is None:
                self.send_error(404)
                return
            body = Path(path).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notebook_json(cells: list[str]) -> dict:
    """A notebook of code cells, with a kernelspec (or Jupyter asks which kernel, in a dialog)."""
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
                   "outputs": [], "source": source} for i, source in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                    "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def request(url: str, token: str, method: str = "GET", timeout: float = 2.0):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"},
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return response.status, response.read()


@contextlib.contextmanager
def jupyter_server(app: str, root: Path, state: Path, log_path: Path, notebook: str | None = None,
                   env: dict | None = None):
    """Yield ``{app, base, token, root, url}`` for a server of ``app`` ("lab" or "notebook") serving
    ``root``; ``url`` opens ``notebook`` (a file name in ``root``) when given."""
    spec = APPS[app]
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    full_env = {**os.environ,
                "JUPYTER_CONFIG_DIR": str(state / "config"), "JUPYTER_DATA_DIR": str(state / "data"),
                "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "IPYTHONDIR": str(state / "ipython"),
                "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
                "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
                "JUPYTER_PLATFORM_DIRS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1", **(env or {})}
    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", spec["module"], "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--port-retries=0", "--allow-root", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LanguageServerManager.autodetect=False", *spec["flags"]],
            env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{app} exited with {process.returncode}:\n{Path(log_path).read_text()[-3000:]}")
                try:
                    if request(f"{base}/api/status", token)[0] == 200:
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not answer /api/status within 60 s:\n"
                                       f"{Path(log_path).read_text()[-3000:]}")
                time.sleep(0.2)
            url = f"{base}/{spec['path']}/{notebook}?token={token}" if notebook else f"{base}/?token={token}"
            yield {"app": app, "base": base, "token": token, "root": root, "url": url}
        finally:
            try:
                request(f"{base}/api/shutdown", token, method="POST")
                process.wait(timeout=10)
            except Exception:  # noqa: BLE001 (any failure: fall through to the kill)
                pass
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@contextlib.contextmanager
def offline_chromium(allowed, **options):
    """A persistent Chromium context in a throwaway profile and home that refuses (and records in
    ``context.blocked_requests``) every request whose URL ``allowed(url)`` rejects."""
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make setup does it as root)")
    with tempfile.TemporaryDirectory(prefix="attnwidget-chromium-") as home:
        env = {**os.environ, "HOME": home, "XDG_CACHE_HOME": f"{home}/cache", "XDG_CONFIG_HOME": f"{home}/config"}
        with sync_api.sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                f"{home}/profile", executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                env=env, **{"viewport": {"width": 1200, "height": 900}, **options},
            )
            context.blocked_requests = []
            context.on("request", lambda req: allowed(req.url) or context.blocked_requests.append(req.url))
            context.route("**/*", lambda route: route.continue_() if allowed(route.request.url) else route.abort())
            try:
                yield context
            finally:
                context.close()
