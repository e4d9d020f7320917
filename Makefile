# The book's commands. README.md names two of them: `make book` and `make test`.
# Both create the virtual environment in $(VENV) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
LINTED := src tests scripts _ext conftest.py $(wildcard benchmarks)
NBVAL_OPTS := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1200

.PHONY: install book pdf test unit nbval nbval-portable site lint notebooks notebook translations clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed

## Build the static site into _build/html, and its Korean edition into _build/html/ko (any
## Sphinx warning fails either build). The site carries its own MathJax, from npm's copy in
## node_modules (_ext/local_mathjax.py).
book: $(VENV)/.installed node_modules/.installed
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	$(PY) scripts/translations.py build

## Re-extract the English text and update the Korean catalogs in locales/ko (CONTRIBUTING.md).
translations: $(VENV)/.installed
	$(PY) scripts/translations.py update

## The book as one PDF, _build/pdf/cnnbook.pdf: the single-page build printed by Chromium
## (scripts/build_pdf.py; needs Debian's chromium).
pdf: $(VENV)/.installed node_modules/.installed
	$(PY) scripts/build_pdf.py

## Everything CI checks: lint, the concept chapters on PyTorch's non-vectorised kernels, then
## unit tests, every notebook under nbval, and the site in Chromium.
test: lint nbval-portable node_modules/.installed
	$(PY) -m pytest tests $(NBVAL_OPTS) chapters

unit: $(VENV)/.installed
	$(PY) -m pytest tests --ignore=tests/test_site.py --ignore=tests/test_pdf.py --ignore=tests/test_colab.py

nbval: $(VENV)/.installed
	$(PY) -m pytest $(NBVAL_OPTS) chapters

## The concept chapters under nbval with PyTorch's non-vectorised (default-ISA) kernels: a
## stand-in for another CPU, whose arithmetic differs in the last digits (CONTRIBUTING.md).
nbval-portable: $(VENV)/.installed
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -p no:cacheprovider $(NBVAL_OPTS) $$($(PY) tests/test_notebooks.py concept)

site: $(VENV)/.installed node_modules/.installed
	$(PY) -m pytest tests/test_site.py tests/test_pdf.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINTED) chapters
	$(VENV)/bin/ruff format --check $(LINTED) chapters

## Re-execute notebooks in a fresh kernel and save their outputs and per-cell timings.
## One notebook: make notebook NB=chapters/07_mnist.ipynb
notebooks: $(VENV)/.installed
	$(PY) scripts/run_notebooks.py

notebook: $(VENV)/.installed
	flock /tmp/cnnbook-notebook.lock $(PY) scripts/run_notebooks.py $(NB)

clean:
	rm -rf _build
