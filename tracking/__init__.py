"""MLflow tracking for stage runs: one parent run per pipeline execution, one child run per stage.

The folder `tracking/`, imported as `netadapt_tracking`: `store` (on or off, the tracking URI, the
SQLite store's lock and retry), `runs` (a stage's run and its parent: open, finish, close),
`contents` (what a run holds), `registry` (the registered model and its versions), `scoring`
(the registered model's code), `ui` (the UI's addresses and the experiment's saved runs view), `app`
(the `mlflow ui --app-name netadapt` server app).

Both front ends (the stage CLI that `dvc.yaml` runs, and the Prefect tasks) wrap a stage in
`stage_run`, which opens the stage's child run before the stage starts and closes it when it ends:

    with stage_run(stage, cfg, paths) as run:   # after config validation; imports MLflow only here
        metrics = stage_fn(cfg, paths)
        run.finish(metrics)                     # params, metrics, curves, artifacts, model, registry

- Status: FINISHED when the block ends, FAILED when the stage raises an `Exception` (the error is
  tagged `netadapt.error`; metrics and artifacts the stage wrote before failing are logged),
  KILLED on a `BaseException` that is not an `Exception` (Ctrl-C, Prefect cancellation). The
  exception always propagates. The parent run takes the status of its latest stage.
- Failure policy. A run that cannot be *opened* (bad URI, unreachable store) raises `NetAdaptError`
  before the stage does any work: nothing is lost and the user fixes it or sets
  `NETADAPT_TRACKING=off`. A failure while *logging* a finished stage is a warning, the run is
  closed FAILED (its record is incomplete) with a `netadapt.tracking_error` tag where the store
  still answers, and the stage itself succeeds:
  its outputs, `metrics/<stage>.json` and its report are written, and failing it would make `dvc
  repro` leave it out of `dvc.lock` and Prefect not cache it, so hours of work would run again for a
  record.
- Parent run: named verdict first (`latency ≤ 40% · MET · model · dataset · backend · front end`,
  `pending` until evaluate checks the budget: `netadapt.verdict`); holds every param, `total_seconds`
  (the stages' own `seconds`, summed over its latest child per stage) and, once evaluate is
  logged, the headline metrics (`test_acc`, `latency_measured_ms`, `latency_ratio`, `budget_met`).
- Registry: finetune logs the model as a pyfunc that scores images as users hold them (uint8 or
  float pixels in [0, 255], normalization inside: `scoring`) and registers it as
  `netadapt-<dataset>-<model>` (a named device's: `netadapt-<dataset>-<model>-<device>`), its version
  tagged with the model file's digest. Evaluate finds that version by digest, tags it with the
  budget, test accuracy, latency, backend, dataset digest and git commit, writes its description,
  and points the budget's alias (`best-b050`) at it when it is the best budget-met version.
- Datasets: supernet and finetune (context `training`) and evaluate (`testing`) log the prepared
  data as an MLflow dataset input named `data.name`, digest `netadapt.io.content_digest`.
- Devices: a named device's stage run (`Paths.for_device`) is named `<stage>@<device>` and tagged
  `netadapt.device`; its evaluate logs its headline metrics to the parent as `<device>/<metric>`.
- The search run holds `search/candidates.json` (`mlflow.log_table`): every evaluated candidate.
- The UI (`ui`): MLflow 3.17 picks an experiment's view from the browser (its workflow switch,
  default GenAI) or the address's `workflowType`, not from the experiment: the addresses the project
  prints carry `workflowType=machine_learning` (a run's: its overview page). The experiment holds a
  saved runs view, `netadapt-results` (the verdict and the final network's figures as columns), and
  the tag `mlflow.experimentKind = custom_model_development`; neither overrides what the user set.
  `mlflow ui --app-name netadapt` (`app`, the command the project prints) serves MLflow's page with
  the browser's workflow switch preset to model training where the user has not chosen, so that a
  click on the experiment in MLflow's own list lands on the runs table.
- Tracking URI: `MLFLOW_TRACKING_URI`, default a SQLite file in the working directory (`mlflow.db`).
- Pipeline id: `NETADAPT_PIPELINE_ID` when set (the flow sets it), else the `dvc repro` process
  that started the stage, else one per process (all stages of `netadapt run` share a parent run).
- `NETADAPT_TRACKING=off` turns tracking off; `stage_run` then yields a run that logs nothing and
  MLflow is never imported.
"""

from netadapt_tracking.contents import (CANDIDATES_TABLE, DEVICE_TAG, PIPELINE_TAG, ROLE_TAG, STAGE_TAG,
                                        candidates_table, dataset_digest)
from netadapt_tracking.registry import MODEL_DIGEST_TAG, git_commit, model_name
from netadapt_tracking.runs import StageRun, log_stage, pipeline_id, pipeline_name, stage_run
from netadapt_tracking.store import enabled, tracking_uri

__all__ = ["StageRun", "stage_run", "log_stage", "pipeline_id", "pipeline_name", "model_name", "tracking_uri",
           "enabled", "candidates_table", "dataset_digest", "git_commit", "PIPELINE_TAG", "STAGE_TAG", "ROLE_TAG",
           "DEVICE_TAG", "MODEL_DIGEST_TAG", "CANDIDATES_TABLE"]
