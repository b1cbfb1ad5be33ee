"""The MLflow store: whether tracking is on, where it goes, and its first use in a process.

A SQLite store's first use in a process is locked (MLflow creates and migrates a new database's
schema then), and a store another writer holds locked is retried for a while before giving up. A
tracking server (`http(s)://`) is given bounded patience: MLflow's own defaults (120 s per request,
7 retries with backoff) held a stage, and the project's lock, for minutes on a server that accepted
connections but never answered; unless the user sets them, `MLFLOW_HTTP_REQUEST_TIMEOUT` and
`MLFLOW_HTTP_REQUEST_MAX_RETRIES` are `HTTP_TIMEOUT_S` and `HTTP_RETRIES` here (`bound_http`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("netadapt")

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
_STORE_RETRY_SECONDS = 60.0  # how long a stage waits for a SQLite store another writer holds locked
HTTP_TIMEOUT_S = 20  # seconds per request to a tracking server, unless MLFLOW_HTTP_REQUEST_TIMEOUT says otherwise
HTTP_RETRIES = 2  # retries of a request that failed or timed out, unless MLFLOW_HTTP_REQUEST_MAX_RETRIES says
_READY: set[str] = set()  # the SQLite stores this process has opened once (schema created or checked)

T = TypeVar("T")


def enabled() -> bool:
    """Tracking is on unless `NETADAPT_TRACKING` is off (`off`, `0`, `false`, `no`)."""
    return os.environ.get("NETADAPT_TRACKING", "on").lower() not in ("off", "0", "false", "no")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, default a SQLite file in the working directory (`mlflow.db`)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def _remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def bound_http(uri: str) -> None:
    """For a tracking server: MLflow's request timeout and retries bounded (`HTTP_TIMEOUT_S`,
    `HTTP_RETRIES`), unless the environment sets them; MLflow reads them at every request."""
    if not _remote(uri):
        return
    bounds = {"MLFLOW_HTTP_REQUEST_TIMEOUT": HTTP_TIMEOUT_S, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": HTTP_RETRIES,
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1}  # retries after 1, 2 s (MLflow's: 2, 4, ... 128 s)
    for name, value in bounds.items():
        if not os.environ.get(name):
            os.environ[name] = str(value)


def patience(uri: str) -> str:
    """How long a request to `uri` may take, for a message: "" for a local store."""
    if not _remote(uri):
        return ""
    timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or HTTP_TIMEOUT_S
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or HTTP_RETRIES
    return (f"gave up after {timeout} s per request and {retries} retries: MLFLOW_HTTP_REQUEST_TIMEOUT and "
            f"MLFLOW_HTTP_REQUEST_MAX_RETRIES change that")


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` tracking URI (None for any other store, or in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    name = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(name).resolve() if name and name != ":memory:" else None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive lock (flock) around the first use of a SQLite store in this process: MLflow creates
    and migrates a new database's schema when a store is first opened, and two processes doing it at
    once crashed one (`duplicate column name: step`). The lock file lives in the temp folder, named
    after the database, so the project gets no extra file; its holder removes it before releasing it
    (one was left per store: hundreds in a test run), and a waiter that then holds a removed file's lock
    locks the file now at that name instead. Other stores are not locked."""
    db = _sqlite_file(uri)
    if db is None:
        yield
        return
    import fcntl
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(db).encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"netadapt-mlflow-init-{digest}.lock"
    while True:
        handle = open(path, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(handle.fileno()), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        handle.close()  # its holder removed it meanwhile: lock the one at that name now
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()  # and with it the lock


def _locked(exc: BaseException) -> bool:
    """A SQLite store that another writer holds ("database is locked" / "database is busy")."""
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return "database is locked" in text or "database is busy" in text


def retry_while_locked(call: Callable[[], T]) -> T:
    """`call()`, retried for up to `_STORE_RETRY_SECONDS` while it fails because another writer holds
    the SQLite store locked (the error, or the error it wraps, says so); any other failure (and a lock
    held longer) raises. For calls that may be repeated: opening a run, closing it."""
    deadline, wait = time.monotonic() + _STORE_RETRY_SECONDS, 0.2
    while True:
        try:
            return call()
        except Exception as exc:
            if not _locked(exc.__cause__ or exc) or time.monotonic() + wait > deadline:
                raise
            log.info("tracking: the MLflow store is locked by another writer; retrying in %.1f s", wait)
            time.sleep(wait)
            wait = min(2 * wait, 5.0)


@contextmanager
def quiet_store() -> Iterator[None]:
    """MLflow's SQL store logs each database error with its traceback (logger `mlflow.store.db.utils`,
    ERROR) before raising it: a locked store mid-stage printed four of them; and urllib3 logs each retry
    of a request to a tracking server (`Retrying (Retry(total=1, ...)) after connection broken by ...`,
    WARNING). Our callers report the error in one line (with the retries), so those logs are muted for
    the block."""
    loggers = [logging.getLogger(name) for name in ("mlflow.store.db.utils", "urllib3.connectionpool")]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, previous):
            logger.setLevel(level)


def open_store(uri: str, experiment: str) -> tuple[Any, str]:
    """An `MlflowClient` on `uri` and the id of `experiment` (created if new), also made the active
    experiment (where `log_model` puts its LoggedModel). The store (and a new database's schema) is
    created here, under `_store_lock` on its first use in this process: one process at a time."""
    import mlflow
    from mlflow.tracking import MlflowClient

    bound_http(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per stage on the console
    with _store_lock(uri) if uri not in _READY else contextlib.nullcontext():
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        experiment_id = _experiment(client, experiment)
    _READY.add(uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    return client, experiment_id


def _experiment(client, name: str) -> str:
    """The id of experiment `name`, created if new, with the tags of `experiment_tags` it lacks (never
    overriding what the user changed: their kind, their edit of the project's saved view)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags=experiment_tags())
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    for key, value in experiment_tags().items():
        if key not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def experiment_tags() -> dict[str, str]:
    """The project's experiment tags: its kind (`mlflow.experimentKind`) and its saved runs view, the
    verdict and the final network's figures as columns (`netadapt_tracking.ui`)."""
    from netadapt_tracking.ui import results_view_tag

    view_key, view = results_view_tag()
    return {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND, view_key: view}
