# Two entry points (see README): `make demo` and `make test`. Both create .venv when missing and install.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test install lint format notebooks clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m lseg_nb demo $(DEMO_ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check lseg_nb tests benchmarks notebooks
	$(VENV)/bin/ruff format --check lseg_nb tests benchmarks notebooks

format: $(STAMP)
	$(VENV)/bin/ruff format lseg_nb tests benchmarks notebooks
	$(VENV)/bin/ruff check --fix lseg_nb tests benchmarks notebooks

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/*.py

clean:
	rm -rf $(VENV) runs .pytest_cache
