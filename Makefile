# Two entry points (see README): `make demo` and `make test`. Both create .venv when missing and install.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test install chromium lint format notebooks clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m lseg_nb demo $(DEMO_ARGS)

# tests/test_browser.py drives JupyterLab in Debian's chromium (never a downloaded browser build). Installed here
# when missing and we are root; otherwise that test skips with the reason (and fails under CI=true).
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
	      || echo "could not install chromium: the browser test will skip (fail under CI=true)"; \
	  else \
	    echo "chromium not found and not installable here (needs root + apt-get): the browser test will skip"; \
	  fi; \
	fi

test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lseg_nb tests benchmarks notebooks
	$(VENV)/bin/ruff format --check lseg_nb tests benchmarks notebooks

format: $(STAMP)
	$(VENV)/bin/ruff format lseg_nb tests benchmarks notebooks
	$(VENV)/bin/ruff check --fix lseg_nb tests benchmarks notebooks

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/py/*.py

clean:
	rm -rf $(VENV) runs .pytest_cache
