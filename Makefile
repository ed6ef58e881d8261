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

.PHONY: demo demo-deploy test bench clean chromium

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

# The real thing rehearsed on loopback: a TLS coordinator and three authenticated nodes in separate processes,
# a governed run, the ledger verified, everything stopped (also on Ctrl-C). Its own workspace: fedgov-runs/deploy.
DEPLOY_HOME := $(CURDIR)/fedgov-runs/deploy/.fedgov
demo-deploy: $(STAMP)
	@export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" FEDGOV_HOME="$(DEPLOY_HOME)" \
	  FEDGOV_PASSPHRASE="$${FEDGOV_PASSPHRASE:-fedgov-demo-passphrase}"; \
	trap 'fedgov federation down || true' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	set -e -x; \
	fedgov federation up --nodes 3; \
	fedgov federation status; \
	fedgov run --purpose "rehearsal: breast-cancer screening model" --nodes 3 --rounds 2; \
	fedgov audit verify --require-signed

# Debian's Chromium, for the test that opens `fedgov report`'s page headless (tests/e2e/test_governed_rounds.py).
# Installed only when missing, and only as root; `make test` goes on without it (that test then skips, saying so),
# .ci/run requires it.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "make chromium: $(CHROMIUM) is missing; as root: apt-get install chromium" >&2; exit 1; fi; \
	echo "installing Debian's chromium (for the compliance report's browser test)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null && $(CHROMIUM) --version

test: $(STAMP)
	@$(MAKE) --no-print-directory chromium || echo "chromium is missing and could not be installed: the report's browser test will skip (make chromium)"
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf .fedgov .flwr fedgov-runs
