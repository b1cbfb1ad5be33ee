"""Stage functions: one per pipeline stage, called by both front ends (the stage CLI that
`dvc.yaml` runs, and the Prefect task). Each reads its inputs from paths, writes its artifacts
atomically, writes its metrics (`write_metrics`: the headline figures to `metrics/<stage>.json`,
all of them to `artifacts/reports/<stage>.json`) and returns all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm import tqdm

from netadapt.arch import Architecture, ModelSpec
from netadapt.config import Config, check_model_widths, to_dict
from netadapt.errors import NetAdaptError, describe
from netadapt.data import load_info, load_split, prepare_data
from netadapt.distributed import current_world, launch
from netadapt.evaluation import evaluate_candidate
from netadapt.checkpoints import load_network, load_supernet, save_network, save_supernet
from netadapt.finetune import export_onnx, initial_network, train_network
from netadapt.layout import HEADLINE_METRICS, STAGE_PARAMS, Paths
from netadapt.io import atomic_dir, atomic_path, code_version, content_digest, read_json, write_json
from netadapt.models import build_supernet
from netadapt.netadapt_v1 import FineTuning, NetAdaptV1
from netadapt.plots import plot_fidelity, plot_tradeoff, plot_trajectory
from netadapt.resources import ResourceModel
from netadapt.resume import Progress
from netadapt.resources.analytic import MacsModel, ParamsModel
from netadapt.resources.command import CommandSettings
from netadapt.resources.lookup_table import LatencyModel, LatencyTable, TableContext
from netadapt.resources.profiling import ProfileSettings, network_latencies, profile_space
from netadapt.schedule import BudgetCheck, OverBudget, Schedule, absolute_budget
from netadapt.search import COLUMNS, MeasuredCheck, Propose, SearchSettings, SearchStopped, mcd_step, search_measured
from netadapt.search import search as search_loop
from netadapt.supernet import history_rows, train_supernet
from netadapt.training import accuracy, resolve_device

log = logging.getLogger("netadapt")

def stage_progress(stage: str, cfg: Config, paths: Paths, inputs: list[Path]) -> Progress:
    """Progress keyed by the code, the params sections the stage reads and its inputs' contents
    (and the device, for a named one: its progress file is its own anyway)."""
    key = [code_version(), cfg.section_digest(*STAGE_PARAMS[stage]), content_digest(inputs)]
    if paths.device:
        key.append(paths.device)
    return Progress(paths.progress(stage), hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16])


def on_ranks(stage: str, cfg: Config, paths: Paths, nproc: int) -> dict | None:
    """The stage's metrics after `nproc` torchrun ranks ran it, when this process is to launch them
    (`nproc` > 1 and not itself a rank); None to run it here."""
    if nproc <= 1 or current_world().size > 1:
        return None
    return launch(stage, to_dict(cfg), paths, nproc)


def write_metrics(stage: str, metrics: dict, paths: Paths) -> None:
    """The stage's full metrics to its report, then its headline metrics to its metrics file."""
    write_json(paths.report(stage), metrics)
    write_json(paths.metrics_file(stage), {k: metrics[k] for k in HEADLINE_METRICS[stage] if k in metrics})


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def prepare(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int | str]:
    """Read the raw dataset, carve holdout (and test if needed), write prepared tensors."""
    start = time.perf_counter()
    info = prepare_data(cfg.data, cfg.seed, paths.prepared)
    metrics = {**info.counts, "classes": len(info.classes), "dataset": info.dataset,
               "seconds": round(time.perf_counter() - start, 3)}
    write_metrics("prepare", metrics, paths)
    return metrics


def model_spec(cfg: Config, prepared: Path) -> ModelSpec:
    """The super-network's spec: the model section plus the prepared data's shape and classes."""
    info = load_info(prepared)
    spec = ModelSpec(cfg.model.name, info.input_shape, len(info.classes), cfg.model.width_mult,
                     cfg.model.granularity)
    check_model_widths(spec)  # before anything is built, loaded or trained: names model.granularity / width_mult
    return spec


def supernet(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int]:
    """Train the super-network with ordered dropout; checkpoint, training curve, metrics. With
    `supernet.nproc` > 1, on that many data-parallel processes (`distributed.launch`)."""
    ranks = on_ranks("supernet", cfg, paths, cfg.supernet.nproc)
    if ranks is not None:
        return ranks
    world = current_world()
    start = time.perf_counter()
    spec = model_spec(cfg, paths.prepared)
    train, holdout = load_split(paths.prepared, "train"), load_split(paths.prepared, "holdout")
    device = resolve_device(cfg.supernet.device, world)
    torch.manual_seed(cfg.seed)
    model = build_supernet(spec)
    progress = stage_progress("supernet", cfg, paths, [paths.prepared / f"{s}.pt" for s in ("train", "holdout")])
    history = train_supernet(model, train, holdout, cfg.supernet, cfg.seed, device, progress=progress, world=world)
    if not world.writer:
        return {}
    save_supernet(paths.supernet, model, cfg.section_digest("seed", "model", "supernet"))
    write_csv(paths.plots / "supernet.csv", history_rows(history))
    progress.clear()
    last = history[-1] if history else None
    metrics = {"epochs": cfg.supernet.epochs, "seconds": round(time.perf_counter() - start, 3),
               "holdout_acc_largest": last.holdout_acc_largest if last else 0.0,
               "holdout_acc_smallest": last.holdout_acc_smallest if last else 0.0,
               "loss": last.loss if last else 0.0, "dimensions": len(model.space().dims)}
    write_metrics("supernet", metrics, paths)
    return metrics


def profile_settings(cfg: Config) -> ProfileSettings:
    """How `profile.*` times a module (the `command` backend's device included)."""
    p = cfg.profile
    command = CommandSettings(p.command, p.command_pattern, p.command_timeout) if p.backend == "command" else None
    return ProfileSettings(p.backend, p.threads, p.batch_size, p.warmup, p.repeats, p.network_repeats, command)


def profile(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int | str]:
    """Measure the latency lookup table on the target backend, calibrate it, check its fidelity.

    `lut_mean_abs_error` / `lut_max_abs_error` are over held-out networks (none took part in the
    fit); `lut_in_sample_*` over the calibration networks. A table whose held-out error stays above
    `profile.max_error` for `profile.max_attempts` runs raises `UnstableProfileError` before
    anything is written, so no later stage carries on with it.

    Measured units are appended to the device's resume cache, `<artifacts>/profile_cache/<backend>/`
    (beside the table but outside the DVC output `artifacts/profile`, which DVC deletes before a
    re-run), as they finish: an interrupted run resumes there (`units_measured` / `units_from_cache`
    in the metrics).
    """
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    p = cfg.profile
    model = build_supernet(model_spec(cfg, paths.prepared)).eval()  # latency does not depend on weights
    result = profile_space(model, profile_settings(cfg), p.fidelity_samples, cfg.seed, p.interpolate,
                           p.max_error, p.max_attempts, cache_dir=paths.artifacts / "profile_cache" / p.backend)
    table, check = result.table, result.fidelity
    with atomic_dir(paths.lut.parent) as staging:  # lut.csv and lut.json publish together
        table.save(staging / paths.lut.name)
    write_csv(paths.plots / "fidelity.csv", check.to_dict("records"))
    plot_fidelity(check, paths.plots / "fidelity.png", f"{model.spec.name} on "
                  f"{p.backend + (f' ({paths.device})' if paths.device else '')}: lookup table vs measured")
    base = check[check.network == "base"].iloc[0]  # in the fit: a figure to compare with evaluate's
    metrics = {"backend": p.backend, "entries": len(table),
               "seconds": round(time.perf_counter() - start, 3), "constant_ms": table.constant_ms,
               "unit_offset_ms": table.unit_offset_ms,
               "base_latency_measured_ms": float(base.measured_ms),
               "base_latency_estimated_ms": float(base.estimated_ms), **result.metrics(),
               **latency_reach(model, table)}
    write_metrics("profile", metrics, paths)
    return metrics


def latency_reach(supernet: torch.nn.Module, table: LatencyTable) -> dict[str, float]:
    """How far the search can go, as fractions of the base network's estimated latency: every
    dimension at its smallest non-zero width (width alone, no block removed), and every dimension at
    its minimum (blocks removed too). A budget below the first needs depth; below the second, a
    smaller model or input."""
    space, latency = supernet.space(), LatencyModel(supernet, table)
    base = latency.estimate(space)
    return {"width_only_min_ratio": latency.estimate(space.narrowest()) / base,
            "min_ratio": latency.estimate(space.smallest()) / base}


def resource_model(cfg: Config, supernet: torch.nn.Module, paths: Paths) -> ResourceModel:
    """The search metric as a `ResourceModel`; a latency table is checked against the profile settings."""
    if cfg.search.metric == "macs":
        return MacsModel(supernet)
    if cfg.search.metric == "params":
        return ParamsModel(supernet)
    return LatencyModel(supernet, latency_table(cfg, paths))


def latency_table(cfg: Config, paths: Paths) -> LatencyTable:
    """The profiled table, refused if it was measured for another setting than `profile.*` asks."""
    table = LatencyTable.load(paths.lut, cfg.profile.interpolate)
    command = cfg.profile.command if cfg.profile.backend == "command" else None
    table.check(TableContext.current(cfg.profile.backend, cfg.profile.threads, cfg.profile.batch_size, command),
                cfg.profile.allow_mismatch)
    return table


def search_identity(cfg: Config, paths: Paths) -> str:
    """What a search history depends on besides the budget: super-network, holdout, table, settings,
    seed, and what computes the scores: the library's code, torch's version and the device."""
    inputs = [paths.supernet, paths.prepared / "holdout.pt"] + ([paths.lut] if cfg.search.metric == "latency" else [])
    settings = {k: v for k, v in to_dict(cfg.search).items() if k not in ("budget", "budget_type")}
    scorer = [code_version(), torch.__version__, str(resolve_device(cfg.supernet.device))]
    payload = [content_digest(inputs), settings, cfg.seed, scorer]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _rows_digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def _plain_rows(history: pd.DataFrame) -> list[dict]:
    """History rows as plain Python values (JSON- and weights_only-safe, floats exact)."""
    return [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()} for row in history.to_dict("records")]


def save_history(paths: Paths, history: pd.DataFrame, meta: dict, complete: bool = True) -> None:
    """`history.json` (settings, every row, their digest) in one atomic write: what a later search
    replays. `history.csv` is a copy for people, plots and MLflow, derived from it, never read back."""
    rows = _plain_rows(history)
    write_json(paths.search / "history.json", {**meta, "complete": complete, "rows": rows,
                                               "rows_digest": _rows_digest(rows)})
    write_csv(paths.search / "history.csv", rows)


def _previous_history(paths: Paths, identity: str, space: Architecture,
                      resource: ResourceModel) -> tuple[pd.DataFrame | None, float | None, list[MeasuredCheck]]:
    """The earlier history to replay, if it was computed for the same identity, with its budget and
    the measured checks it made; checked before use: its digest, its columns, and every row's
    resource recomputed from the resource model."""
    path = paths.search / "history.json"
    if not path.is_file():
        return None, None, []
    try:
        saved = read_json(path)
        rows, budget = saved["rows"], float(saved["budget"])
        checks = MeasuredCheck.from_records(saved.get("checks", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise NetAdaptError(f"{path}: not a search history ({exc}); delete it to search afresh") from None
    if saved.get("identity") != identity:
        log.info("search: the earlier history is for another super-network, table, settings or code: not reused")
        return None, None, []
    if saved.get("rows_digest") != _rows_digest(rows):
        raise NetAdaptError(f"{path}: its rows do not match their digest (edited or corrupt); delete it to "
                            f"search afresh")
    history = pd.DataFrame(rows, columns=COLUMNS)
    for i, row in enumerate(rows):
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise NetAdaptError(f"{path}: row {i} lacks {missing}; delete it to search afresh")
        try:
            estimate = resource.estimate(space.with_widths(json.loads(row["arch"])))
        except (ValueError, TypeError, NetAdaptError) as exc:
            raise NetAdaptError(f"{path}: row {i}: not an architecture of this space ({exc}); delete it to "
                                f"search afresh") from None
        if not math.isclose(estimate, float(row["resource_estimated"]), rel_tol=1e-9, abs_tol=1e-12):
            raise NetAdaptError(f"{path}: row {i} (iteration {row['iteration']}) records resource "
                                f"{row['resource_estimated']!r} where the model gives {estimate!r}; delete it "
                                f"to search afresh")
    if not saved.get("complete", True):
        log.info("search: continuing an interrupted search (%d iterations recorded)", history.iteration.max() + 1)
    return history, budget, checks


def candidate_settings(cfg: Config, paths: Paths) -> dict:
    """Keyword arguments of `evaluation.evaluate_candidate` for this config (paths, BN, batches, device)."""
    s = cfg.search
    return dict(supernet_path=str(paths.supernet), prepared_path=str(paths.prepared),
                bn_recalibration_batches=s.bn_recalibration_batches, batch_size=s.batch_size,
                eval_batches=s.eval_batches, device=str(resolve_device(cfg.supernet.device)))


def search(cfg: Config, paths: Paths = Paths(), propose: Propose | None = None,
           evaluate_candidates: Callable[[list[str]], list[tuple[float, float]]] | None = None,
           reuse_history: bool = True) -> dict[str, float | int | str]:
    """Shrink the super-network's largest network to the budget; history, architecture, trajectory.

    An orchestrator may pass `propose` (per-iteration proposals) and `evaluate_candidates` (scores
    of architecture JSONs, e.g. mapped over workers); both default to in-process calls. With
    `reuse_history` the earlier history on disk is replayed (the orchestrator's cache may do it).
    """
    start = time.perf_counter()
    s = cfg.search
    supernet_model, _ = load_supernet(paths.supernet)
    space = supernet_model.space()
    resource = resource_model(cfg, supernet_model, paths)
    smallest = resource.estimate(space.smallest())
    schedule = Schedule.from_settings(resource.estimate(space), smallest, s.budget, s.budget_type,
                                      s.initial_reduction, s.decay, resource.unit)
    identity = search_identity(cfg, paths)
    previous, previous_budget, checks = (_previous_history(paths, identity, space, resource) if reuse_history
                                         else (None, None, []))
    kwargs = candidate_settings(cfg, paths)
    score = evaluate_candidates or (lambda jsons: [evaluate_candidate(j, **kwargs) for j in tqdm(
        jsons, desc="search candidates", unit="cand", leave=False, disable=None)])

    def evaluate(archs: list) -> list[tuple[float, float]]:
        return score([a.to_json() for a in archs])

    v1_network = paths.v1_network
    if s.algorithm == "netadapt":
        start_path = Path(s.start_checkpoint) if s.start_checkpoint else paths.supernet
        if s.start_checkpoint and not start_path.is_file():
            raise NetAdaptError(f"search.start_checkpoint: {start_path} not found")
        try:
            start_network, _ = load_supernet(start_path)
        except Exception as exc:  # noqa: BLE001 - a text file, a truncated archive, another object: one line
            if not s.start_checkpoint:
                raise
            raise NetAdaptError(f"search.start_checkpoint: {start_path} is not a super-network checkpoint "
                                f"({describe(exc, 120, first_sentence=True)})") from None
        if not start_network.space().same_space(space):
            raise NetAdaptError(f"search.start_checkpoint: {start_path} is not a network of this search space")
        v1 = NetAdaptV1(start_network, resource, load_split(paths.prepared, "train"),
                        load_split(paths.prepared, "holdout"),
                        FineTuning(s.short_term_steps, s.long_term_epochs, s.lr, s.train_batch_size, s.batch_size,
                                   s.eval_batches, cfg.seed, resolve_device(cfg.supernet.device)))
        # V1 carries weights between iterations: only its own interrupted run can be replayed, with
        # the network its last finished iteration kept
        v1_progress = Progress(paths.progress("search"), hashlib.sha256(json.dumps(
            [identity, content_digest([start_path]), schedule.budget]).encode()).hexdigest()[:16])
        previous, previous_budget = None, None
        saved = v1_progress.load()
        try:
            checks = MeasuredCheck.from_records(saved.get("checks", [])) if saved is not None else []
        except ValueError as exc:  # as `Progress.load` treats a torn file: never trusted
            log.warning("%s: unreadable progress (%s): starting afresh", v1_progress.path, exc)
            saved, checks = None, []
        if saved is not None:
            previous, previous_budget = pd.DataFrame(saved["rows"], columns=COLUMNS), schedule.budget
            v1.restore(saved["network"])
            log.info("search: continuing an interrupted NetAdapt V1 search after iteration %d", v1.iteration)
        step, evaluate = v1.step, v1.evaluate
    else:
        step = mcd_step(resource, s.candidates, s.layers_per_candidate, s.split)
        v1_network.unlink(missing_ok=True)
    settings = SearchSettings(cfg.seed, s.selection, s.max_halvings)
    meta = {"identity": identity, "budget": schedule.budget, "base": schedule.base, "metric": s.metric,
            "unit": resource.unit, "algorithm": s.algorithm, "checks": []}

    def persist(history: pd.DataFrame) -> None:
        """After every evaluated iteration: the history and, for V1, the network it kept."""
        save_history(paths, history, meta, complete=False)
        if s.algorithm == "netadapt":
            kept = history[history.kept.astype(bool)].iloc[-1]
            v1_progress.store({"rows": _plain_rows(history), "checks": meta["checks"],
                               "network": v1.kept_state(space.with_widths(json.loads(kept.arch)))})

    def run(schedule: Schedule, previous: pd.DataFrame | None, previous_budget: float | None):
        return search_loop(space, resource, evaluate, step, schedule, settings, previous, previous_budget,
                           propose, on_iteration=persist)

    def on_check(done: list[MeasuredCheck]) -> None:
        meta["checks"] = [asdict(c) for c in done]

    measure, limit = measured_budget(cfg, supernet_model) if s.metric == "latency" and s.measure_rounds else \
        (None, s.budget)
    try:
        result, done = search_measured(run, schedule, smallest, measure, limit,
                                       s.measure_rounds, previous, previous_budget, checks, on_check)
    except SearchStopped as stop:
        save_history(paths, stop.history, meta)
        raise
    save_history(paths, result.history, meta)
    if s.algorithm == "netadapt":
        save_supernet(v1_network, v1.finish(result.chosen), cfg.section_digest("seed", "search"))
        v1_progress.clear()
    with atomic_path(paths.search / "arch.json") as tmp:
        tmp.write_text(result.chosen.to_json() + "\n")
    trajectory = result.history[result.history.kept.astype(bool)]
    write_csv(paths.plots / "search.csv", trajectory[["iteration", "resource_estimated", "holdout_acc"]]
              .to_dict("records"))
    plot_trajectory(result.history, schedule.budget, resource.unit, paths.plots / "search.png",
                    result.schedule.budget)
    log.info("search: %s", result.message)
    metrics = {"algorithm": s.algorithm, "metric": s.metric, "budget": schedule.budget,
               "budget_fraction": schedule.budget / schedule.base, "base_resource": schedule.base,
               "iterations": result.iterations, "candidates_evaluated": result.candidates_evaluated,
               "reused_iterations": result.reused_iterations, "seconds": round(time.perf_counter() - start, 3),
               "holdout_acc": result.holdout_acc, "resource_estimated": result.resource_estimated,
               "budget_searched": result.schedule.budget, "continuations": max(len(done) - 1, 0),
               "checks": meta["checks"]}  # as on_check recorded them for history.json
    if done:  # the answer as measured at the end of the search (evaluate measures the final network again)
        metrics.update({"measured": done[-1].measured, "measured_limit": limit,
                        "measured_over_budget": done[-1].measured / limit})
    elif s.metric != "latency":  # MACs and parameters are exact: the estimate is the measurement
        metrics["measured_over_budget"] = result.resource_estimated / schedule.budget
    write_metrics("search", metrics, paths)
    return metrics


def measured_budget(cfg: Config, supernet: torch.nn.Module) -> tuple[Callable[[Architecture], float], float]:
    """How the search checks its answer on the device, and the limit: the answer's latency as a
    fraction of the base network measured beside it (a relative budget: drift cancels out), or in ms
    (an absolute one), timed as `profile.*` times whole networks."""
    s, settings, space = cfg.search, profile_settings(cfg), supernet.space()

    def measure(arch: Architecture) -> float:
        base_ms, ms = network_latencies(supernet, [space, arch], settings, cfg.seed)
        return ms / base_ms if s.budget_type == "relative" else ms
    return measure, s.budget


def searched_architecture(path: Path, space: Architecture) -> Architecture:
    """The search's answer, checked: a readable architecture of the super-network's own space."""
    if not path.is_file():
        raise NetAdaptError(f"{path}: not found; run `netadapt search` first")
    try:
        arch = Architecture.from_dict(read_json(path))
    except NetAdaptError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise NetAdaptError(f"{path}: not an architecture ({detail}); run `netadapt search` again") from None
    if not arch.same_space(space):
        raise NetAdaptError(f"{path}: an architecture of another space than the super-network's (model or "
                            f"maximum widths differ); run `netadapt search` again")
    return arch


def history_frame(path: Path) -> pd.DataFrame:
    """`history.csv` for the trade-off plot, checked: its columns, and numbers where numbers belong."""
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise NetAdaptError(f"{path}: not a search history ({describe(exc, 120)}); run `netadapt search` "
                            f"again") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    numbers = ("iteration", "resource_estimated", "holdout_acc")
    bad = [c for c in numbers if c in frame.columns and pd.to_numeric(frame[c], errors="coerce").isna().any()]
    if missing or bad or frame.empty:
        raise NetAdaptError(f"{path}: not a search history (missing columns {missing}, non-numbers in {bad}, "
                            f"{len(frame)} rows); run `netadapt search` again")
    return frame


def finetune(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int]:
    """Train the discovered network further (from super-network weights, or from scratch). With
    `finetune.nproc` > 1, on that many data-parallel processes (`distributed.launch`)."""
    ranks = on_ranks("finetune", cfg, paths, cfg.finetune.nproc)
    if ranks is not None:
        return ranks
    world = current_world()
    start = time.perf_counter()
    f = cfg.finetune
    v1_network = paths.v1_network
    supernet_model, _ = load_supernet(v1_network if v1_network.is_file() else paths.supernet)
    arch = searched_architecture(paths.search / "arch.json", supernet_model.space())
    arch_path = paths.search / "arch.json"
    train, holdout = load_split(paths.prepared, "train"), load_split(paths.prepared, "holdout")
    device = resolve_device(f.device, world)
    torch.manual_seed(cfg.seed)
    model = initial_network(supernet_model, arch, f.init)
    inputs = [paths.prepared / "train.pt", paths.prepared / "holdout.pt", arch_path,
              v1_network if v1_network.is_file() else paths.supernet]
    progress = stage_progress("finetune", cfg, paths, inputs)
    curve = train_network(model, train, holdout, f, cfg.seed, device, progress, world)
    if not world.writer:
        return {}
    holdout_acc = curve[-1].holdout_acc if curve else accuracy(model, holdout, f.batch_size, device)[1]  # 0 epochs
    model.cpu().eval()
    with atomic_dir(paths.final.parent) as staging:  # model.pt and model.onnx publish together
        save_network(staging / paths.final.name, model, arch, cfg.section_digest("seed", "finetune"))
        export_onnx(model, arch.model.input_shape, staging / paths.final.with_suffix(".onnx").name)
    write_csv(paths.plots / "finetune.csv", [asdict(e) for e in curve])
    progress.clear()
    weights = "scratch" if f.init == "scratch" else ("netadapt-v1" if v1_network.is_file() else "supernet")
    metrics = {"epochs": f.epochs, "seconds": round(time.perf_counter() - start, 3), "holdout_acc": holdout_acc,
               "weights_from": weights}
    write_metrics("finetune", metrics, paths)
    return metrics


def evaluate(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int]:
    """Test accuracy, measured vs estimated latency, the base network's latency, MACs, parameters."""
    start = time.perf_counter()
    model, arch = load_network(paths.final)
    supernet_model, _ = load_supernet(paths.supernet)
    test = load_split(paths.prepared, "test")
    classes = arch.model.num_classes
    topk = (1, 5) if classes > 5 else (1,)
    acc = accuracy(model, test, cfg.evaluate.batch_size, torch.device("cpu"), topk=topk)
    settings = replace(profile_settings(cfg), warmup=cfg.evaluate.latency_warmup,
                       network_repeats=cfg.evaluate.latency_repeats)
    base_ms, final_ms = network_latencies(supernet_model, [supernet_model.space(), arch], settings, cfg.seed)
    latency = LatencyModel(supernet_model, latency_table(cfg, paths))
    estimated_ms, base_estimated_ms = latency.estimate(arch), latency.estimate(supernet_model.space())
    # The machine's speed drifts between profiling and now; the base network, measured beside the
    # final one, tells by how much, so the estimate can also be compared at today's speed.
    drift = base_ms / base_estimated_ms
    metrics = {"test_acc": acc[1], "latency_measured_ms": final_ms, "latency_estimated_ms": estimated_ms,
               "base_latency_measured_ms": base_ms, "base_latency_estimated_ms": base_estimated_ms,
               "latency_ratio": final_ms / base_ms, "machine_speed_drift": drift,
               "latency_estimate_error": abs(estimated_ms * drift - final_ms) / final_ms,
               "macs": int(MacsModel(supernet_model).estimate(arch)),
               "params": int(ParamsModel(supernet_model).estimate(arch)),
               "base_macs": int(MacsModel(supernet_model).estimate(supernet_model.space())),
               "base_params": int(ParamsModel(supernet_model).estimate(supernet_model.space())),
               "backend": cfg.profile.backend, "seconds": round(time.perf_counter() - start, 3)}
    if 5 in acc:
        metrics["test_acc_top5"] = acc[5]
    check = budget_check(cfg, metrics)
    metrics.update({"budget_met": check.met, "budget_metric": check.metric, "budget": check.budget,
                    "measured_over_budget": check.ratio})
    (log.info if check.met else log.warning)("evaluate: %s", check.describe())
    history_path = paths.search / "history.csv"
    if history_path.is_file():
        meta_path = paths.search / "history.json"
        search_meta = {k: v for k, v in read_json(meta_path).items() if k != "rows"} if meta_path.is_file() else None
        plot_tradeoff(history_frame(history_path), metrics, paths.plots / "tradeoff.png", search_meta)
    write_metrics("evaluate", metrics, paths)
    if not check.met and cfg.evaluate.fail_over_budget:
        raise OverBudget(f"evaluate: {check.describe()} (metrics written; evaluate.fail_over_budget is true)")
    return metrics


def budget_check(cfg: Config, metrics: dict) -> BudgetCheck:
    """The final network against `search.budget`, in the search metric, measured where it can be."""
    s, tolerance = cfg.search, cfg.evaluate.budget_tolerance
    if s.metric == "latency":
        return BudgetCheck("latency", "ms", metrics["latency_measured_ms"],
                           absolute_budget(s.budget, s.budget_type, metrics["base_latency_measured_ms"]), tolerance)
    base = metrics["base_macs"] if s.metric == "macs" else metrics["base_params"]
    return BudgetCheck(s.metric, s.metric, metrics[s.metric], absolute_budget(s.budget, s.budget_type, base), 0.0)
