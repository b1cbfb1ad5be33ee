"""Where a search's candidate evaluations run: threads of the flow's process, or Dask workers
(`--task-runner dask`) on a running scheduler (`--dask-address tcp://HOST:PORT`) or on a local
cluster started for the search (`local:N`). A local cluster's scheduler, workers and dashboard listen on
127.0.0.1 only (as `netadapt serve`'s Prefect server does): the dashboard serves its pages without any
authentication. `local:N@HOST` binds them to HOST instead (e.g. a machine's LAN address), on purpose.
Importing this module imports neither Prefect nor Dask: the CLI checks `--dask-address` with it
before anything starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from netadapt.errors import NetAdaptError

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

DEFAULT_DASK_ADDRESS = "local:2"
LOOPBACK = "127.0.0.1"  # where a local cluster listens unless `local:N@HOST` says otherwise


@dataclass(frozen=True)
class DaskAddress:
    """A parsed `--dask-address`: a running scheduler's address, or (`scheduler` "") a local cluster of
    `workers` processes whose scheduler, workers and dashboard listen on `host`."""

    scheduler: str = ""
    workers: int = 0
    host: str = LOOPBACK


def parse_dask_address(address: str) -> DaskAddress:
    """`local:N` (a LocalCluster of N single-threaded worker processes on 127.0.0.1), `local:N@HOST` (the
    same listening on HOST), or a scheduler's address (`tcp://HOST:PORT`, or `tls://`); NetAdaptError
    naming `--dask-address` otherwise. Pure: callable before Prefect or Dask is imported."""
    local = re.fullmatch(r"local:(\d+)(?:@([A-Za-z0-9_.-]+))?", address.strip())
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= 256:
            raise NetAdaptError(f"--dask-address {address!r}: local:N needs 1 <= N <= 256 workers")
        return DaskAddress(workers=workers, host=local.group(2) or LOOPBACK)
    remote = re.fullmatch(r"(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d+)", address.strip())
    if remote and 0 < int(remote.group(3)) < 65536:
        return DaskAddress(scheduler=address.strip())
    raise NetAdaptError(f"--dask-address {address!r}: expected tcp://HOST:PORT (a running Dask scheduler) or local:N "
                        f"(a local cluster of N workers on 127.0.0.1; local:N@HOST to listen on HOST), e.g. "
                        f"tcp://10.0.0.5:8786 or local:2")


def candidate_runner(task_runner: str = "threads", dask_address: str = "") -> TaskRunner:
    """The task runner of a search's candidate evaluations: `threads` (a thread pool in the flow's
    process), or `dask` through `prefect_dask.DaskTaskRunner` at `dask_address`: a running scheduler
    (`tcp://HOST:PORT`) or `local:N`, a `distributed.LocalCluster` of N worker processes of one thread
    each, started for the search and closed after it. A Dask runner's workers import `netadapt_tasks`
    and read the super-network and holdout from their paths (`evaluate_candidate`); `candidate_task`
    pins torch to one thread on a worker."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=2)
    if task_runner != "dask":
        raise NetAdaptError(f"task_runner {task_runner!r}: expected threads or dask")
    from prefect_dask import DaskTaskRunner

    where = parse_dask_address(dask_address or DEFAULT_DASK_ADDRESS)
    if where.scheduler:
        return DaskTaskRunner(address=where.scheduler)
    return DaskTaskRunner(cluster_class=local_cluster,
                          cluster_kwargs={"n_workers": where.workers, "env": worker_env(), "host": where.host})


# What a Dask nanny sets in the worker processes it spawns (`distributed.nanny.pre-spawn-environ`), less
# MALLOC_TRIM_THRESHOLD_: setting it turns off glibc's dynamic mmap threshold, so every large torch
# buffer is mmap'ed and unmapped again: candidate evaluation ran 2-3x slower (mostly system time).
WORKER_THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def local_cluster_options(n_workers: int, env: dict[str, str] | None = None, host: str = LOOPBACK) -> dict[str, Any]:
    """The arguments of `local_cluster`'s `distributed.LocalCluster`: `n_workers` processes of one thread,
    with `WORKER_THREADS_ENV` (+ `env`); scheduler, workers and dashboard (on a free port) listening on
    `host` only (a bare `:0` dashboard listened on every interface)."""
    return {"n_workers": n_workers, "threads_per_worker": 1, "processes": True, "host": host,
            "dashboard_address": f"{host}:0", "env": {**WORKER_THREADS_ENV, **(env or {})}}


def local_cluster(n_workers: int, env: dict[str, str] | None = None, host: str = LOOPBACK, **kwargs: Any):
    """A `distributed.LocalCluster` of `local_cluster_options`, with the workers' environment set in the
    workers only: the nanny's pre-spawn environment (which it would also write into this process's) is
    emptied, its malloc setting dropped."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):
        return LocalCluster(**local_cluster_options(n_workers, env, host), **kwargs)


def worker_env() -> dict[str, str]:
    """The environment of a local cluster's workers: this process's Prefect API (a server, or the
    temporary one of an ephemeral run), so that workers report their task runs to it instead of each
    starting a temporary API of its own (~10 s and a process per worker); their Prefect console lines
    (a "Finished in state Completed()" per candidate) stay in the UI, as the flow's own do."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {"PREFECT_API_URL": str(client.api_url).rstrip("/"),
                "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
