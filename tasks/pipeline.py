"""Prefect tasks over the library: a task per pipeline stage, a task per search iteration, a task
per candidate evaluation, each with a cache key built from what determines its result.

- A stage task's key: its stamp key (`netadapt.stamps.stage_key`: the code version, the params
  sections the stage reads, and the content digests of its input artifacts). A stage task writes
  the stage's stamp when it succeeds, as the stage CLI that `dvc repro` runs does; the flow asks the
  stamp, not Prefect's cache, whether a stage is up to date (`seed_stage_cache`).
  A named device's stage task (`device`) runs that device's config and paths (`Config.for_device`,
  `Paths.for_device`) and is named `<stage>@<device>`; its stamp key includes the device.
- A search iteration's key: the search identity (super-network, table, settings without the
  budget, seed), the iteration, its starting architecture and its first target.
- A candidate's key: its architecture, the super-network and holdout digests, the evaluation
  settings and the code version.

No code from data: every persisted result (the cache) is plain JSON, written with `RESULT_SERIALIZER`
(Prefect's JSON serializer without its object hooks: no `__class__` entries, no imports on load), and
every task returns plain data (a proposal as `proposal_to_data`, a score as a list). Prefect decodes
a record with whatever serializer the record itself names, so the flows read the cache through
`JsonResultStorage`, which refuses any record that is not exactly that (a pickle, garbage, another
serializer or decoder): Prefect then finds no cache entry and runs the task again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch
from prefect import task
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.context import TaskRunContext
from prefect.filesystems import LocalFileSystem
from prefect.runtime import task_run as current_task_run
from prefect.serializers import JSONSerializer

from netadapt import stages, stamps
from netadapt.arch import Architecture
from netadapt.config import load_config, parse_config, to_dict
from netadapt.errors import NetAdaptError
from netadapt.evaluation import evaluate_candidate
from netadapt.io import code_version, content_digest
from netadapt.mcd import Candidate
from netadapt.layout import DEVICE_STAGES, STAGES, Paths
from netadapt.search import Proposal, propose_iteration
from netadapt_tracking import stage_run

log = logging.getLogger("netadapt")


# -- results as plain JSON ---------------------------------------------------------------------------

def encode_error(obj: Any) -> Any:
    """The JSON encoder's fallback: a failed run's exception as its type name and message (as
    Prefect's own encoder writes it); anything else that is not JSON fails loudly."""
    if isinstance(obj, BaseException):
        return {"__exc_type__": f"{type(obj).__module__}.{type(obj).__qualname__}", "message": str(obj)}
    raise TypeError(f"{type(obj).__name__} is not plain JSON data: a persisted result must be")


RESULT_SERIALIZER = JSONSerializer(jsonlib="json", object_encoder="netadapt_tasks.pipeline.encode_error",
                                   object_decoder=None)


def trusted_record(content: bytes) -> bytes:
    """`content` if it is a result record that `RESULT_SERIALIZER` wrote (JSON metadata naming exactly
    that serializer, and a JSON payload); raises ValueError otherwise, before anything decodes it."""
    try:
        record = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a JSON result record") from None
    metadata = record.get("metadata") if isinstance(record, dict) else None
    serializer = metadata.get("serializer") if isinstance(metadata, dict) else None
    if serializer != RESULT_SERIALIZER.model_dump(mode="json"):
        raise ValueError(f"not a plain JSON result record (serializer {serializer!r:.200})")
    if not isinstance(record.get("result"), str):
        raise ValueError("result record without a JSON payload")
    try:
        json.loads(record["result"])
    except ValueError:
        raise ValueError("result record whose payload is not JSON") from None
    return content


class JsonResultStorage(LocalFileSystem):
    """Prefect's local result storage that reads only records `trusted_record` accepts. Anything else
    (a forged or foreign cache entry) reads as missing: a cache miss, and the task runs again."""

    _block_type_name = "NetAdapt JSON Result Storage"

    def _checked(self, path: str, content: bytes) -> bytes:
        try:
            return trusted_record(content)
        except ValueError as exc:
            log.warning("prefect cache: ignoring %s: %s", self._resolve_path(path), exc)
            raise

    async def aread_path(self, path: str) -> bytes:
        return self._checked(path, await super().aread_path(path))

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._checked(path, super().read_path(path, _sync=True))


def guard_result_storage() -> None:
    """Make the current flow run read its results and cache through `JsonResultStorage` (call it at
    the start of a flow: its tasks and subflows inherit the flow run's result store). Prefect only
    accepts server-side saved storage blocks as a task's `result_storage`, hence the swap here."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    store = getattr(context, "result_store", None)
    if store is None or isinstance(store.result_storage, JsonResultStorage):
        return
    if type(store.result_storage) is not LocalFileSystem or store.result_storage_block_id is not None:
        log.warning("prefect cache: result storage %s is not the local default: records are not checked",
                    type(store.result_storage).__name__)
        return
    guarded = JsonResultStorage(basepath=store.result_storage.basepath)
    context.result_store = store.model_copy(update={"result_storage": guarded})


def read_result(state) -> Any:
    """The result of a finished flow run whose state came from the API (another process ran it), as
    plain JSON, never through a deserializer a file could choose. Prefect writes a flow's result bare
    (the serializer recorded in the API's database); a task's is a record (`trusted_record`)."""
    from prefect.results import ResultRecordMetadata
    from prefect.settings import get_current_settings

    metadata = state.data
    if not (isinstance(metadata, ResultRecordMetadata) and metadata.storage_key and metadata.storage_block_id is None):
        return state.result(raise_on_failure=False)  # remote storage: Prefect's own reader
    if metadata.serializer.model_dump(mode="json") != RESULT_SERIALIZER.model_dump(mode="json"):
        raise ValueError(f"flow result {metadata.storage_key}: not written as plain JSON")
    key = Path(metadata.storage_key)
    path = key if key.is_absolute() else Path(get_current_settings().results.local_storage_path) / key
    content = path.read_bytes()
    value = json.loads(content)
    if isinstance(value, dict) and "metadata" in value and "result" in value:
        return json.loads(json.loads(trusted_record(content))["result"])
    return value


def proposal_to_data(proposal: Proposal) -> dict:
    """A proposal as plain JSON data (architectures as their JSON descriptions)."""
    return {"iteration": proposal.iteration, "start": proposal.start.to_dict(), "target": proposal.target,
            "cut": proposal.cut, "halvings": proposal.halvings, "clipped": proposal.clipped,
            "candidates": [{"arch": c.arch.to_dict(), "resource": c.resource} for c in proposal.candidates]}


def proposal_from_data(data: dict) -> Proposal:
    return Proposal(int(data["iteration"]), Architecture.from_dict(data["start"]), float(data["target"]),
                    float(data["cut"]), int(data["halvings"]), bool(data["clipped"]),
                    [Candidate(Architecture.from_dict(c["arch"]), float(c["resource"])) for c in data["candidates"]])


# -- tasks -------------------------------------------------------------------------------------------

def folder_paths(folders: dict[str, str], device: str = "") -> Paths:
    """The stages' paths for the flow's folders; a named device's view (`Paths.for_device`) when given."""
    return Paths.from_folders(folders, device)


def stage_config(params: dict, device: str = ""):
    """The config a stage reads: the params, or a named device's (`Config.for_device`)."""
    cfg = parse_config(params)
    return cfg.for_device(device) if device else cfg


def stage_cache_key(stage: str, key: str) -> str:
    """Prefect's cache key of a stage task: its stamp key."""
    return f"stage-{stage}-{key}"


def _stage_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    stage, key, device = parameters["stage"], parameters.get("key"), parameters.get("device", "")
    if not key:
        key = stamps.stage_key(stage, stage_config(parameters["params"], device),
                               folder_paths(parameters["folders"], device))
    return stage_cache_key(stage, key)


def _stage_name() -> str:
    """A stage task run's name: `<stage>`, or `<stage>@<device>` for a named device."""
    parameters = current_task_run.parameters
    device = parameters.get("device", "")
    return f"{parameters['stage']}@{device}" if device else parameters["stage"]


def _transient(task, task_run, state) -> bool:
    """Retry on what may pass (a worker or file system hiccup), never on bad input or data."""
    try:
        state.result()
    except NetAdaptError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        return True
    return False


@task(cache_key_fn=_stage_key, persist_result=True, result_serializer=RESULT_SERIALIZER, task_run_name=_stage_name)
def stage_task(stage: str, params: dict, folders: dict[str, str], key: str | None = None, device: str = "") -> dict:
    """Run one pipeline stage (the same function as its CLI), record it in MLflow and write its
    stamp. `key` is its stamp key as computed before it ran (computed here when not given); `device`
    a named device of the params (its config and paths), "" for the plain pipeline's stage."""
    cfg, p = stage_config(params, device), folder_paths(folders, device)
    key = key or stamps.stage_key(stage, cfg, p)
    with stage_run(stage, cfg, p) as run:
        metrics = getattr(stages, stage)(cfg, p)
        run.finish(metrics)
    stamps.write_stamp(stage, key, p, metrics, by="prefect")
    return metrics


def seed_stage_cache(stage: str, key: str, metrics: dict) -> None:
    """Make Prefect's cache agree with an up-to-date stamp (call it inside the flow): the stage task
    for `key` then comes back Cached with the metrics the stamp recorded, whoever ran the stage
    (`dvc repro` or an earlier flow) and whatever Prefect's cache held for that key before."""
    from prefect.results import get_result_store

    store = get_result_store().update_for_task(stage_task, _sync=True)
    store.write(obj=metrics, key=stage_cache_key(stage, key))


def _iteration_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    parts = [parameters["identity"], parameters["t"], parameters["start"], repr(parameters["first_target"])]
    return "iteration-" + hashlib.sha256(json.dumps(parts).encode()).hexdigest()


@task(cache_key_fn=_iteration_key, persist_result=True, result_serializer=RESULT_SERIALIZER,
      task_run_name="it{t}-propose")
def iteration_task(t: int, start: str, first_target: float, identity: str, current, current_resource: float,
                   schedule, step, settings) -> dict:
    """One search iteration's proposal (candidates for its target), keyed by what determines it, as
    plain data (`proposal_from_data` rebuilds it)."""
    return proposal_to_data(propose_iteration(t, current, current_resource, schedule, step, settings))


@functools.lru_cache(maxsize=8)
def _file_digest(path: str, mtime: float) -> str:
    return content_digest([Path(path)])


def _candidate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    kwargs = parameters["kwargs"]
    files = [kwargs["supernet_path"], str(Path(kwargs["prepared_path"]) / "holdout.pt")]
    digests = [_file_digest(f, Path(f).stat().st_mtime) for f in files]
    settings = {k: v for k, v in kwargs.items() if not k.endswith("_path")}
    parts = [parameters["arch_json"], digests, settings, code_version()]
    return "candidate-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _candidate_name() -> str:
    """`it<t>-cand<j>`: candidate j of search iteration t; `base` for the unpruned network."""
    parameters = current_task_run.parameters
    t = parameters.get("iteration", -1)
    return "base" if t < 0 else f"it{t}-cand{parameters.get('index', 0)}"


def on_dask_worker() -> bool:
    """Whether this code runs in a Dask worker (never imports Dask: a process that has not imported
    `distributed` is no worker)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:
        return False
    return True


def pin_worker_threads() -> None:
    """One torch thread per Dask worker thread. Torch's intra-op pool is per process and defaults to one
    thread per core: N worker processes on N cores would each run N threads (N*N threads fighting for N
    cores: slower than N workers of one thread, and timings nobody can reason about). The scheduler's
    workers are the parallelism here; each evaluation runs single-threaded. A Dask nanny already sets
    OMP_NUM_THREADS=1 in the workers it spawns (`distributed.nanny.pre-spawn-environ`); this also holds
    for workers started without one (`dask worker --no-nanny`) or with other settings. A worker of k
    threads runs k evaluations at once, still one torch thread each. Outside a worker: no change (the
    thread runner shares the flow's process and its settings)."""
    if on_dask_worker() and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@task(cache_key_fn=_candidate_key, persist_result=True, result_serializer=RESULT_SERIALIZER,
      task_run_name=_candidate_name, retries=2, retry_delay_seconds=2, retry_condition_fn=_transient)
def candidate_task(arch_json: str, kwargs: dict, iteration: int = -1, index: int = 0) -> list[float]:
    """Score one architecture with the super-network's weights on holdout: [accuracy, seconds].
    Retried twice on a worker failure (not on bad input); `iteration` and `index` only name the run
    (not in the cache key). On a Dask worker, torch is pinned to one thread first (`pin_worker_threads`)."""
    pin_worker_threads()
    return [float(x) for x in evaluate_candidate(arch_json, **kwargs)]


DVC_FOLDERS = {"artifacts": "artifacts", "metrics": "metrics", "plots": "plots"}  # as dvc.yaml declares them


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


@task(name="dvc-commit", task_run_name="dvc-commit", retries=2, retry_delay_seconds=5, timeout_seconds=300,
      retry_condition_fn=_transient, result_serializer=RESULT_SERIALIZER)
def dvc_commit_task(params: dict, folders: dict[str, str]) -> dict:
    """Record in `dvc.lock` the stages whose outputs DVC sees as changed (the ones the flow ran), as
    `dvc repro` records a stage it ran: `dvc status` then has nothing to do. Call it only after every
    stage succeeded (each has an up-to-date stamp). Retried when DVC's repository lock is busy."""
    root, reason = dvc_project(params, folders)
    if root is None:
        return {"committed": [], "skipped": reason}
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
    return {"committed": committed, "skipped": ""}
