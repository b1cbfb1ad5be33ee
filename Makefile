# Two commands on a fresh machine: `make test` and `make run`. Each creates .venv (Python 3.11) when it
# is missing and installs the project with its pinned dependencies; later calls reuse it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# The pipeline's tools run from the venv (dvc.yaml's `netadapt ...` resolves there), telemetry off.
export PATH := $(BIN):$(PATH)
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: test run venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing netadapt and its pinned dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -e '.[dev]' > $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "pip install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

run: $(STAMP)
	$(BIN)/dvc repro
	@echo
	@echo "== results =="
	@$(BIN)/dvc metrics show
	@echo
	@echo "artifacts: $(CURDIR)/artifacts   metrics: $(CURDIR)/metrics"

clean:
	rm -rf artifacts metrics .dvc/cache .dvc/tmp
