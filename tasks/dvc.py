"""Recording the flow's work in `dvc.lock`: whether this project is the DVC project whose `dvc repro`
would have written what the flow wrote, and `dvc commit` of the stages whose outputs changed, so that
`dvc status` has nothing to do after a flow (the task is `netadapt_tasks.pipeline.dvc_commit_task`)."""

from __future__ import annotations

import logging
from pathlib import Path

from netadapt.config import load_config, parse_config, to_dict
from netadapt.errors import NetAdaptError
from netadapt.layout import DEVICE_STAGES, STAGES, Paths

DVC_FOLDERS = Paths().folders()  # as dvc.yaml declares them


def dvc_project(params: dict, folders: dict[str, str], root: Path | None = None) -> tuple[Path | None, str]:
    """`(root, "")` when what the flow wrote is what `dvc repro` would have written in this project:
    a DVC project in the working directory, the folders `dvc.yaml` declares, and the params of its
    `params.yaml` (no `-S` override or other `--params` that changes them); else `(None, why not)`."""
    root = (root or Path.cwd()).resolve()
    if not ((root / "dvc.yaml").is_file() and (root / ".dvc").is_dir()):
        return None, "not a DVC project"
    if any(Path(folders.get(k, v)).resolve() != root / v for k, v in DVC_FOLDERS.items()):
        return None, "the folders are not dvc.yaml's (artifacts, metrics, plots)"
    try:
        declared = to_dict(load_config(root / "params.yaml"))
    except NetAdaptError as exc:
        return None, f"params.yaml: {exc}"
    if declared != params:
        return None, "the params differ from params.yaml (an -S override or another --params file)"
    return root, ""


def commit_changed(root: Path, params: dict) -> list[str]:
    """`dvc commit` each stage of the project at `root` whose outputs DVC sees as changed, in
    `dvc.yaml`'s order (the shared stages, then each device's foreach stages); returns their names."""
    from dvc.repo import Repo  # imported here: only a DVC project needs it

    dvc_log = logging.getLogger("dvc")
    level = dvc_log.level
    dvc_log.setLevel(logging.WARNING)  # "Updating lock file" per stage: the summary says it once
    order = list(STAGES) + [f"device-{stage}@{name}" for name in parse_config(params).devices
                                   for stage in DEVICE_STAGES]  # dvc.yaml's foreach stages
    try:
        with Repo(str(root)) as repo:
            changed = repo.status()
            committed = [stage for stage in order if stage in changed]
            for stage in committed:
                repo.commit(stage, force=True, relink=False)  # relink=False: leave the outputs' files alone
    finally:
        dvc_log.setLevel(level)
    return committed
