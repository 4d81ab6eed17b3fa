# Two commands do everything on a fresh machine:
#   make run    set up, then run the main job (quick leaderboard on local MPE datasets)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MINARI_DATASETS_PATH ?= $(CURDIR)/data/minari

.PHONY: setup run test lint bench-perf
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU torch first: a looser request would pull several GB of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,smax,ray]"
	touch $@

run: setup
	$(VENV)/bin/diffusion-agents main

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests

lint: setup
	$(VENV)/bin/ruff check wrappers diffusion_agents benchmarks tests
