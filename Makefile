# fedgov: the two quick-start commands. Each creates .venv when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fedgov-installed
# pip on this workplace lists local mirrors that do not all exist; hide that noise only.
PIPQ := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export FLWR_HOME := $(CURDIR)/.flwr
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing fedgov into $(VENV) (CPU torch build)"
	$(PY) -m pip install -q --upgrade pip $(PIPQ)
	# torch first, pinned: resolves to the CPU wheel on CPU-only machines, never a CUDA build.
	$(PY) -m pip install -q torch==2.13.0 $(PIPQ)
	$(PY) -m pip install -q -e '.[test]' $(PIPQ)
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fedgov demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf .fedgov .flwr fedgov-runs
