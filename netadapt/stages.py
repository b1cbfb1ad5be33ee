"""Stage functions: one per pipeline stage, called by both front ends (the stage CLI that
`dvc.yaml` runs, and the Prefect task). Each reads its inputs from paths (`layout.Paths`), calls the
library, writes its artifacts atomically, writes its metrics (`write_metrics`: the headline figures
to `metrics/<stage>.json`, all of them to `artifacts/reports/<stage>.json`) and returns all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from netadapt.arch import ModelSpec
from netadapt.checkpoints import load_network, load_supernet, save_network, save_supernet
from netadapt.config import Config, to_dict
from netadapt.data import load_info, load_split, prepare_data
from netadapt.distributed import current_world, launch
from netadapt.evaluation import candidate_settings, score_here, search_identity
from netadapt.finetune import check_deliverables, export_onnx, initial_network, record_deliverables, train_network
from netadapt.history import (SavedSearch, SearchRecorder, history_meta, load_history, read_history_csv,
                              searched_architecture)
from netadapt.io import atomic_dir, atomic_path, content_digest, write_csv, write_json
from netadapt.layout import HEADLINE_METRICS, STAGE_PARAMS, Paths
from netadapt.models import build_supernet
from netadapt.models.checks import check_model_widths
from netadapt.models.source import model_reference
from netadapt.models.source import user_module
from netadapt.netadapt_v1 import netadapt_v1_search
from netadapt.plots import plot_fidelity, plot_tradeoff, plot_trajectory
from netadapt.resources.analytic import MacsModel, ParamsModel
from netadapt.resources.lookup_table import LatencyModel
from netadapt.resources.metric import (latency_intervals, latency_reach, latency_table, measured_budget, profile_settings,
                                      resource_model, timed_beside_base)
from netadapt.resources.profiling import profile_space
from netadapt.resume import Progress
from netadapt.schedule import MET, OverBudget, Schedule, final_budget_check
from netadapt.search import (ProposeIteration, Searcher, SearchSettings, SearchStopped, mcd_candidates, score_archs,
                             search_measured)
from netadapt.stamps import stage_code_version
from netadapt.supernet import history_rows, train_supernet
from netadapt.training import accuracy, resolve_device

log = logging.getLogger("netadapt")


def stage_progress(stage: str, cfg: Config, paths: Paths, inputs: list[Path]) -> Progress:
    """Progress keyed by the code, the params sections the stage reads and its inputs' contents
    (and the device, for a named one: its progress file is its own anyway)."""
    key = [stage_code_version(stage, cfg), cfg.section_digest(*STAGE_PARAMS[stage]), content_digest(inputs)]
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
                     cfg.model.granularity, cfg.model.kwargs, cfg.model.path if user_module(cfg.model.name) else None,
                     tuple(cfg.model.fixed))
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
    model = build_supernet(spec, cfg.model.checkpoint, cfg.model.checkpoint_pickle)
    weights = [Path(cfg.model.checkpoint)] if cfg.model.checkpoint else []  # the user's trained start
    progress = stage_progress("supernet", cfg, paths, [paths.prepared / f"{s}.pt" for s in ("train", "holdout")]
                              + weights)
    history = train_supernet(model, train, holdout, cfg.supernet, cfg.seed, device, progress=progress, world=world)
    if not world.writer:
        return {}
    save_supernet(paths.supernet, model, progress.key)  # (code, model code, params, inputs: in every later key)
    write_csv(paths.plots / "supernet.csv", history_rows(history))
    last = history[-1] if history else None
    metrics = {"epochs": cfg.supernet.epochs, "seconds": round(time.perf_counter() - start, 3),
               "holdout_acc_largest": last.holdout_acc_largest if last else 0.0,
               "holdout_acc_smallest": last.holdout_acc_smallest if last else 0.0,
               "loss": last.loss if last else 0.0, "dimensions": len(model.space().dims)}
    write_metrics("supernet", metrics, paths)
    progress.clear()  # only once everything the stage publishes is written: a failed write retrains nothing
    return metrics


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
    result = profile_space(model, profile_settings(cfg.profile), p.fidelity_samples, cfg.seed, p.interpolate,
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
               "base_latency_measured_ms_ci95_low": float(base.measured_ci95_low_ms),
               "base_latency_measured_ms_ci95_high": float(base.measured_ci95_high_ms),
               "base_latency_estimated_ms": float(base.estimated_ms), **result.metrics(),
               **latency_reach(model, table)}
    write_metrics("profile", metrics, paths)
    return metrics


def search(cfg: Config, paths: Paths = Paths(), propose: ProposeIteration | None = None,
           evaluate_candidates: Callable[[list[str]], list[tuple[float, float]]] | None = None,
           reuse_history: bool = True) -> dict[str, float | int | str]:
    """Shrink the super-network's largest network to the budget; history, architecture, trajectory.

    An orchestrator may pass an MCD search `propose` (per-iteration proposals) and `evaluate_candidates`
    (scores of architecture JSONs, e.g. mapped over workers); both default to in-process calls. With
    `reuse_history` the earlier history on disk is replayed (the orchestrator's cache may do it).
    """
    start = time.perf_counter()
    s = cfg.search
    supernet_model, _ = load_supernet(paths.supernet, model_reference(cfg.model))
    space = supernet_model.space()
    resource = resource_model(cfg, supernet_model, paths.lut)
    smallest = resource.estimate(space.smallest())
    schedule = Schedule.from_settings(resource.estimate(space), smallest, s.budget, s.budget_type,
                                      s.initial_reduction, s.decay, resource.unit)
    identity = search_identity(cfg, paths)
    score_jsons = evaluate_candidates or partial(score_here, candidate_settings(cfg, paths))
    meta = {"identity": identity, "budget": schedule.budget, "base": schedule.base, "metric": s.metric,
            "unit": resource.unit, "algorithm": s.algorithm}
    saved = load_history(paths.search, identity, space, resource) if reuse_history else SavedSearch()
    if s.algorithm == "netadapt":  # V1: its own candidates and fine-tuned scores, and its own progress
        v1 = netadapt_v1_search(cfg, paths, supernet_model, resource, identity, schedule.budget)
        saved, generate, score, propose = v1.resume(schedule.budget), v1.v1.candidates, v1.v1.evaluate, v1.v1.propose
        recorder = SearchRecorder(paths.search, meta, also=v1.store)
    else:
        generate = mcd_candidates(resource, s.candidates, s.layers_per_candidate, s.split)
        score, recorder = partial(score_archs, score_jsons), SearchRecorder(paths.search, meta)
        paths.v1_network.unlink(missing_ok=True)
    searcher = Searcher(space, resource, score, generate, SearchSettings(cfg.seed, s.selection, s.max_halvings),
                        propose, recorder.on_iteration)
    measure, limit = measured_budget(cfg, supernet_model) if s.metric == "latency" and s.measure_rounds else \
        (None, s.budget)
    try:
        result, done = search_measured(searcher, schedule, smallest, measure, limit, s.measure_rounds, saved.history,
                                       saved.budget, saved.checks, recorder.on_check)
    except SearchStopped as stop:
        recorder.save(stop.history)
        raise
    recorder.save(result.history)
    if s.algorithm == "netadapt":
        save_supernet(paths.v1_network, v1.v1.finish(result.chosen), cfg.section_digest("seed", "search"))
        v1.progress.clear()
    with atomic_path(paths.search / "arch.json") as tmp:
        tmp.write_text(result.chosen.to_json() + "\n")
    trajectory = result.history[result.history.kept.astype(bool)]
    trajectory = trajectory.assign(resource_fraction=trajectory.resource_estimated / schedule.base)  # any metric's x
    write_csv(paths.plots / "search.csv", trajectory[["iteration", "resource_estimated", "resource_fraction",
                                                      "holdout_acc"]].to_dict("records"))
    plot_trajectory(result.history, schedule.budget, resource.unit, paths.plots / "search.png",
                    result.schedule.budget)
    log.info("search: %s", result.message)
    metrics = {"algorithm": s.algorithm, "metric": s.metric, "budget": schedule.budget,
               "budget_fraction": schedule.budget / schedule.base, "base_resource": schedule.base,
               "iterations": result.iterations, "candidates_evaluated": result.candidates_evaluated,
               "reused_iterations": result.reused_iterations, "seconds": round(time.perf_counter() - start, 3),
               "holdout_acc": result.holdout_acc, "resource_estimated": result.resource_estimated,
               "budget_searched": result.schedule.budget, "continuations": max(len(done) - 1, 0),
               "checks": recorder.checks}  # as on_check recorded them for history.json
    if done:  # the answer as measured at the end of the search (evaluate measures the final network again)
        metrics.update({"measured": done[-1].measured, "measured_ci95_low": done[-1].interval.low,
                        "measured_ci95_high": done[-1].interval.high, "measured_limit": limit,
                        "measured_over_budget": done[-1].measured / limit})
    elif s.metric != "latency":  # MACs and parameters are exact: the estimate is the measurement
        metrics["measured_over_budget"] = result.resource_estimated / schedule.budget
    write_metrics("search", metrics, paths)
    return metrics


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
    supernet_model, _ = load_supernet(v1_network if v1_network.is_file() else paths.supernet, model_reference(cfg.model))
    arch = searched_architecture(paths.search / "arch.json", supernet_model.space())
    arch_path = paths.search / "arch.json"
    train, holdout = load_split(paths.prepared, "train"), load_split(paths.prepared, "holdout")
    device = resolve_device(f.device, world)
    torch.manual_seed(cfg.seed)
    model = initial_network(supernet_model, arch, f.init, train, cfg.search.bn_recalibration_batches,
                            cfg.search.batch_size)  # BN re-estimated as the search's candidates were
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
        record_deliverables(staging)  # their digests, published with them: what evaluate checks
    write_csv(paths.plots / "finetune.csv", [asdict(e) for e in curve])
    weights = "scratch" if f.init == "scratch" else ("netadapt-v1" if v1_network.is_file() else "supernet")
    metrics = {"epochs": f.epochs, "seconds": round(time.perf_counter() - start, 3), "holdout_acc": holdout_acc,
               "weights_from": weights}
    write_metrics("finetune", metrics, paths)
    progress.clear()  # only once everything the stage publishes is written: a failed write retrains nothing
    return metrics


def evaluate(cfg: Config, paths: Paths = Paths()) -> dict[str, float | int]:
    """Test accuracy, measured vs estimated latency, the base network's latency, MACs, parameters."""
    start = time.perf_counter()
    check_deliverables(paths.final.parent)  # model.pt and model.onnx as finetune wrote them, or refused
    model, arch = load_network(paths.final, model_reference(cfg.model))
    supernet_model, _ = load_supernet(paths.supernet, model_reference(cfg.model))
    test = load_split(paths.prepared, "test")
    classes = arch.model.num_classes
    topk = (1, 5) if classes > 5 else (1,)
    acc = accuracy(model, test, cfg.evaluate.batch_size, torch.device("cpu"), topk=topk)
    base_acc = accuracy(supernet_model, test, cfg.evaluate.batch_size, torch.device("cpu"))[1]  # the trade-off's base
    timed = timed_beside_base(cfg, supernet_model, arch)  # timed again while undecided against the budget
    base_ms, final_ms = timed.base.median, timed.final.median
    latency = LatencyModel(supernet_model, latency_table(cfg.profile, paths.lut))
    estimated_ms, base_estimated_ms = latency.estimate(arch), latency.estimate(supernet_model.space())
    # The machine's speed drifts between profiling and now; the base network, measured beside the
    # final one, tells by how much, so the estimate can also be compared at today's speed.
    drift = base_ms / base_estimated_ms
    metrics = {"test_acc": acc[1], "latency_measured_ms": final_ms, "latency_estimated_ms": estimated_ms,
               "base_latency_measured_ms": base_ms, "base_latency_estimated_ms": base_estimated_ms,
               "base_test_acc": base_acc, "latency_ratio": final_ms / base_ms, "machine_speed_drift": drift,
               "latency_estimate_error": abs(estimated_ms * drift - final_ms) / final_ms,
               "macs": int(MacsModel(supernet_model).estimate(arch)),
               "params": int(ParamsModel(supernet_model).estimate(arch)),
               "base_macs": int(MacsModel(supernet_model).estimate(supernet_model.space())),
               "base_params": int(ParamsModel(supernet_model).estimate(supernet_model.space())),
               "backend": cfg.profile.backend, "seconds": round(time.perf_counter() - start, 3)}
    metrics.update(latency_intervals(timed))  # bootstrap 95% intervals: `*_ci95_low` / `*_ci95_high`
    if 5 in acc:
        metrics["test_acc_top5"] = acc[5]
    s = cfg.search
    check = final_budget_check(s.metric, s.budget, s.budget_type, cfg.evaluate.budget_tolerance, metrics)
    metrics.update({"budget_met": check.met, "budget_verdict": check.verdict, "budget_metric": check.metric,
                    "budget": check.budget, "measured_over_budget": check.ratio})
    (log.info if check.verdict == MET else log.warning)("evaluate: %s", check.describe())
    if (paths.search / "history.csv").is_file():
        plot_tradeoff(read_history_csv(paths.search / "history.csv"), metrics, paths.plots / "tradeoff.png",
                      history_meta(paths.search))
    write_metrics("evaluate", metrics, paths)
    if not check.met and cfg.evaluate.fail_over_budget:
        raise OverBudget(f"evaluate: {check.describe()} (metrics written; evaluate.fail_over_budget is true)")
    return metrics
