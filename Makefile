# Two commands on a fresh machine: `make test` and `make run`. Each creates .venv (Python 3.11) when it
# is missing and installs the project with its pinned dependencies; later calls reuse it.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed

# The tools run from the venv (dvc.yaml's cmds find .venv/bin by themselves, too), telemetry off in
# the values each tool honours (the CLI sets the same: flows/telemetry.py; MLflow ignores DO_NOT_TRACK=1).
export PATH := $(BIN):$(PATH)
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export ORT_DISABLE_TELEMETRY := 1

.PHONY: test test-all test-busy run venv clean exp exp-show results metrics plots plots-template

# `make exp BUDGET=0.4`, or any overrides: `make exp ARGS='-S search.budget=0.4 -S finetune.epochs=4'`.
BUDGET ?=
ARGS ?=
# `make exp-show`: the experiments side by side, reduced to the figures a reviewer compares (kept even
# when equal), plus every param that differs between them. Override EXP_KEEP / EXP_DROP (regexes on
# column names; DVC prefixes a metric with its file when two files share the key, as each named
# device's metrics/devices/<name>/*.json do) to see more.
EXP_KEEP ?= Experiment|Created|(metrics/(devices/[^/]+/)?evaluate\.json:)?(test_acc|latency_measured_ms|budget_met|measured_over_budget|macs|params)$$|(metrics/(devices/[^/]+/)?search\.json:)?(holdout_acc|resource_estimated)$$|devices\.[^.]+\.budget$$
EXP_DROP ?= (?!seed$$)[^.]*$$|metrics/|artifacts/|netadapt|data/

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing netadapt and its pinned dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -e '.[dev]' > $(VENV)/install.log 2>&1 \
		|| { tail -n 30 $(VENV)/install.log; echo "pip install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

# `make test`: everything but the tests marked slow (the kill sweep, the DVC and Prefect runs, kill -9
# resumes), what a developer runs between changes; `make test-all`: every test, what CI runs.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# `make test` with two CPU burners beside it (bench/busy.sh starts them and always stops them): as on
# a busy 2-core machine. Tests take measured latency from a fake device (tests/fake_device.py), so
# every verdict is the same as on a quiet machine; only the time taken grows.
test-busy: $(STAMP)
	BURNER_PYTHON=$(BIN)/python bench/busy.sh -n 2 $(MAKE) --no-print-directory test

run: $(STAMP)
	$(BIN)/dvc repro
	@$(MAKE) --no-print-directory results
	@echo
	@echo "artifacts: $(CURDIR)/artifacts  (final model: artifacts/finetune/model.pt, model.onnx)"
	@echo "plots:     $(CURDIR)/plots  (fidelity.png, search.png, tradeoff.png; all in one page: make plots)"
	@echo "change the budget: git add dvc.lock metrics plots && git commit -m baseline   (the row experiments compare with),"
	@echo "                   then make exp BUDGET=0.4   (re-runs search, finetune, evaluate only; compare: make exp-show)"
	@echo "review in MLflow:  MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --app-name netadapt --backend-store-uri sqlite:///$(CURDIR)/mlflow.db   (then http://127.0.0.1:5000; docs/mlflow.md: the model-training view and the saved columns)"
	@echo "the Prefect flow:  $(BIN)/netadapt flow   (served, with its UI: $(BIN)/netadapt serve)"

# An experiment: the pipeline with params overridden (only the stages they affect re-run); its
# results land in the workspace, and `make exp-show` lists it beside the others.
exp: $(STAMP)
	$(BIN)/dvc exp run $(if $(BUDGET),-S search.budget=$(BUDGET)) $(ARGS)
	@$(MAKE) --no-print-directory results
	@echo
	@echo "compare with the committed baseline and the other experiments: make exp-show"

# What `make run` and `make exp` end with: the budget's verdict (MET or MISSED, with the measurement,
# the budget and its tolerance), then a line of headline figures per stage, from the reports on disk.
results: $(STAMP)
	@echo
	@echo "== results (every figure: make metrics, artifacts/reports/<stage>.json) =="
	@$(BIN)/python -m netadapt_flows.console

exp-show: $(STAMP)
	@$(BIN)/dvc exp show --md --only-changed --keep '$(EXP_KEEP)' --drop '$(EXP_DROP)'

# Every metrics file dvc.yaml declares, one block per file (`dvc metrics show` puts them all in one
# sparse table).
metrics: $(STAMP)
	@$(BIN)/dvc metrics show --json | $(BIN)/python -c "$$METRICS_PY"

# One HTML page with every plot dvc.yaml declares; it loads nothing from the network.
plots: $(STAMP)
	$(BIN)/dvc plots show --html-template plots_template/offline.html

# Rebuild the offline template from the npm registry (pinned versions in plots_template/build.py).
plots-template: $(STAMP)
	$(BIN)/python plots_template/build.py

clean:
	rm -rf artifacts metrics dvc_plots .dvc/cache .dvc/tmp

define METRICS_PY
import json, sys, textwrap
shown = next(iter(json.load(sys.stdin).values()), {})  # the workspace
for path, entry in shown.get("data", {}).items():
    if "error" in entry:
        print(f"{path}: not there yet"); continue
    items = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry["data"].items()]
    print(textwrap.fill("  ".join(items), width=110, initial_indent=f"{path:24}", subsequent_indent=" " * 24,
                        break_on_hyphens=False))
endef
export METRICS_PY
