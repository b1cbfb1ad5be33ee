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
	@echo "== results (metrics/*.json; all of them: dvc metrics show) =="
	@$(BIN)/python -c "import json, pathlib; [print(f'{p.stem:9}', '  '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in json.loads(p.read_text()).items())) for s in ('prepare', 'profile', 'supernet', 'search', 'finetune', 'evaluate') for p in [pathlib.Path('metrics', s + '.json')] if p.exists()]"
	@echo
	@echo "artifacts: $(CURDIR)/artifacts  (final model: artifacts/finetune/model.pt, model.onnx)"
	@echo "plots:     $(CURDIR)/plots  (fidelity.png, search.png, tradeoff.png; or: dvc plots show)"
	@echo "change the budget: dvc exp run -S search.budget=0.4   (re-runs search, finetune, evaluate only)"
	@echo "review in MLflow:  $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db   (then http://127.0.0.1:5000)"
	@echo "the Prefect flow:  $(BIN)/netadapt flow   (its UI: PREFECT_HOME=$(CURDIR)/.prefect $(BIN)/prefect server start)"

clean:
	rm -rf artifacts metrics .dvc/cache .dvc/tmp
