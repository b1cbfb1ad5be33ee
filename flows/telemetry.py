"""Telemetry off for the tools the project runs (MLflow, Prefect, DVC, ONNX Runtime), in the values each
honours.

`telemetry_off()` sets them in this process's environment, so every library imported here and every
process started from here (the Prefect server, Dask workers, DVC, `mlflow ui`) reads them. The CLI's
`main` calls it first; the Makefile exports the same values for the `dvc` and `mlflow` commands it
runs (tests/test_telemetry.py checks both, and each library's own answer). The values, as read by
the installed versions:

- MLflow 3.17 (`mlflow.telemetry.utils.is_telemetry_disabled`): `MLFLOW_DISABLE_TELEMETRY` true or
  1, or `DO_NOT_TRACK` exactly `true` (it ignores `DO_NOT_TRACK=1`).
- Prefect 3 (`prefect.analytics.is_telemetry_enabled`, the client): `DO_NOT_TRACK` 1, true or yes;
  its server's startup report: `PREFECT_SERVER_ANALYTICS_ENABLED=false`.
- DVC 3 (`dvc.analytics.is_enabled`): `DVC_NO_ANALYTICS` set to anything (and `core.analytics =
  false` in `.dvc/config`).
- ONNX Runtime 1.32 (its 1DS telemetry, on Linux too): `ORT_DISABLE_TELEMETRY` 1. Without it, the
  first session a process creates writes a device id and an event store (`onnxruntime.db`) under
  `~/.cache/Microsoft/DeveloperTools/.onnxruntime/`: files outside the project.

The values are set, not defaulted: a `DO_NOT_TRACK=1` already in the environment (which MLflow
ignores) becomes `true`.
"""

from __future__ import annotations

import os

TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "ORT_DISABLE_TELEMETRY": "1",
}


def telemetry_off() -> None:
    """Set `TELEMETRY_OFF` in this process's environment (before MLflow or Prefect is imported)."""
    os.environ.update(TELEMETRY_OFF)
