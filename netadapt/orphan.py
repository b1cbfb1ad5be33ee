"""A command that `dvc repro` runs belongs to that `dvc` process: it finds it (`dvc_parent`: the
pipeline's id in MLflow names it) and stops when it is gone (`stop_with`).

DVC dies of a SIGTERM without passing it on: its stage process, reparented, went on training and
held the project's lock for as long (issue 27, item 9). `stop_with` watches the `dvc` process and
sends this process SIGTERM once it is gone, which the CLI turns into a clean stop (lock released,
MLflow runs KILLED, finished epochs kept).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 1.0


def dvc_parent() -> Any | None:
    """The `dvc` process (a `psutil.Process`) among this process's ancestors, or None (none, or no
    process information)."""
    try:
        import psutil

        for parent in psutil.Process().parents():
            if any(Path(part).name == "dvc" for part in parent.cmdline()[:2]):
                return parent
    except Exception:  # noqa: BLE001 - no process information: not run by dvc, as far as we can tell
        pass
    return None


def stop_with(parent: Any) -> threading.Thread:
    """SIGTERM to this process once `parent` (a `psutil.Process`) has ended; checked every
    `POLL_SECONDS` in a daemon thread (a pid reused by another process does not count as alive)."""
    def alive() -> bool:
        try:
            return parent.is_running() and parent.status() != "zombie"
        except Exception:  # noqa: BLE001 - psutil.NoSuchProcess: gone between the two questions
            return False

    def watch() -> None:
        while alive():
            time.sleep(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="netadapt-stop-with-dvc", daemon=True)
    thread.start()
    return thread
