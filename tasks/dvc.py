"""netadapt in a DVC project: DVC's write lock on the project's folders held with netadapt's lock
(`dvc_writes`), and recording the flow's work in `dvc.lock`: whether this project is the DVC project
whose `dvc repro` would have written what the flow wrote, and `dvc commit` of the stages whose outputs
changed, so that `dvc status` has nothing to do after a flow (the task is
`netadapt_tasks.pipeline.dvc_commit_task`).

Why DVC's lock: `dvc repro` removes a stage's outputs before it runs the stage's command, so a
command that refuses on netadapt's lock refuses too late (issue 27, item 5: `dvc repro` during a flow
deleted `artifacts/prepared`). DVC registers each stage's outputs as written, and its deps as read,
in `.dvc/tmp/rwlock` for the whole stage, command included (its repo lock, `.dvc/tmp/lock`, it lets
go while the command runs), and refuses a stage whose paths another live process writes, before
touching them, naming that process. A netadapt command that holds the project's lock registers the
project's folders there as written too: a `dvc repro` (or `dvc checkout`, `dvc status`) then refuses
at its first stage, naming the netadapt command, and a netadapt command refuses, in one line naming
`dvc`, while a `dvc repro` stage runs. A command that `dvc repro` runs (`DVC_STAGE` set for this
project) registers nothing: its `dvc` holds its outputs already.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netadapt.config import load_config, parse_config, to_dict
from netadapt.errors import NetAdaptError
from netadapt.layout import DEVICE_STAGES, STAGES, Paths
from netadapt.lock import LockHeld, holder_pids

DVC_FOLDERS = Paths().folders()  # as dvc.yaml declares them

log = logging.getLogger("netadapt")
HOLDING = "(netadapt, holding {lock})"  # ends the command DVC records (and prints) for the lock's holder


def dvc_root(folder: Path) -> Path | None:
    """The DVC project `folder` lies in (the nearest folder above it, or itself, with a `.dvc`
    folder, as DVC finds its root), or None."""
    for candidate in [folder.resolve(), *folder.resolve().parents]:
        if (candidate / ".dvc").is_dir():
            return candidate
    return None


def _run_by_dvc(root: Path) -> bool:
    """This process is a stage command that `dvc repro` runs in the project at `root`."""
    dvc_root_env = os.environ.get("DVC_ROOT")
    return bool(os.environ.get("DVC_STAGE")) and bool(dvc_root_env) and Path(dvc_root_env).resolve() == root


def _hardlink(root: Path) -> bool:
    from dvc.config import Config

    return bool(Config(dvc_dir=str(root / ".dvc"))["core"].get("hardlink_lock", False))


def _refusal(rwlock_file: Path, exc: Exception) -> LockHeld:
    """DVC's refusal as one line: the processes its `(PID n): command` lines name, else its words."""
    found = re.findall(r"\(PID (\d+)\): (.*)", str(exc))
    if not found:
        return LockHeld(f"{rwlock_file}: {' '.join(str(exc).split())}")
    holders = "; ".join(f"pid {pid} ({cmd.strip()})" for pid, cmd in found)
    return LockHeld(f"{rwlock_file}: the project's outputs are in use by {holders}; wait for it (DVC removes "
                    f"that lock when its process is gone)")


@contextmanager
def dvc_writes(artifacts: Path, command: str) -> Iterator[None]:
    """A `netadapt.lock` guard: while the project's lock is held, DVC's write lock on the folders
    `dvc.yaml` declares (artifacts, metrics, plots) and on `artifacts`, in the DVC project `artifacts`
    lies in (nothing outside one, or when `dvc repro` runs this process). Raises LockHeld, one line
    naming the DVC process, when one writes or reads any of them."""
    root = dvc_root(artifacts)
    if root is None or _run_by_dvc(root):
        yield
        return
    from dvc.exceptions import DvcException
    from dvc.fs import localfs
    from dvc.rwlock import rwlock

    tmp = root / ".dvc" / "tmp"
    tmp.mkdir(exist_ok=True)
    paths = sorted({str(root / folder) for folder in DVC_FOLDERS.values()} | {str(artifacts.resolve())})
    label = f"{command} {HOLDING.format(lock=artifacts.resolve() / '.lock')}"  # what `dvc repro` prints
    try:
        held = rwlock(str(tmp), localfs, label, [], paths, _hardlink(root))
        held.__enter__()
    except DvcException as exc:  # another process's entries, or a broken rwlock file or DVC config
        raise _refusal(tmp / "rwlock", exc) from None
    try:
        yield
    finally:
        try:
            held.__exit__(None, None, None)
        except Exception as exc:  # noqa: BLE001 - the rwlock file was removed or edited meanwhile
            log.warning("%s: could not remove this command's entries: %s", tmp / "rwlock", exc)


@contextmanager
def _as_this_process(root: Path) -> Iterator[None]:
    """Lend this process's DVC commands the write entries `dvc_writes` made for the project's lock
    holder (this process, or the `netadapt serve` that started it): relabelled for the block as DVC
    labels this process (pid, command line), so that its `dvc status` / `dvc commit` is not refused
    on its own behalf, then put back."""
    import sys

    from dvc.fs import localfs
    from dvc.rwlock import _edit_rwlock  # DVC's own editing of the file, under its guard

    tmp = root / ".dvc" / "tmp"
    if not (tmp / "rwlock").exists():
        yield
        return
    me = {"pid": os.getpid(), "cmd": " ".join(sys.argv)}
    hardlink = _hardlink(root)
    with _edit_rwlock(str(tmp), localfs, hardlink) as lock:
        lent = {path: info for path, info in lock["write"].items()
                if info["pid"] in holder_pids() and HOLDING.split("{")[0] in info["cmd"]}
        for path in lent:
            lock["write"][path] = me
    try:
        yield
    finally:
        if lent:
            with _edit_rwlock(str(tmp), localfs, hardlink) as lock:
                for path, info in lent.items():
                    if lock["write"].get(path) == me:
                        lock["write"][path] = info


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
        with _as_this_process(root), Repo(str(root)) as repo:
            changed = repo.status()
            committed = [stage for stage in order if stage in changed]
            for stage in committed:
                repo.commit(stage, force=True, relink=False)  # relink=False: leave the outputs' files alone
    finally:
        dvc_log.setLevel(level)
    return committed
