"""The pipeline's shape, in one place: its stages, what each reads and writes, the params sections it
depends on, the figures it reports, and where its files live (`Paths`).

Torch-free and import-light on purpose: the CLI, the Prefect flow, the MLflow tracking and the stamps
all read the pipeline's layout from here, and `dvc.yaml` declares the same (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: layout imports nothing of the library at run time
    from netadapt.config import Config

STAGES = ("prepare", "profile", "supernet", "search", "finetune", "evaluate")
DEVICE_STAGES = ("profile", "search", "finetune", "evaluate")  # what runs per named device (`Paths.for_device`)

# What each stage reads from which (dvc.yaml's deps; evaluate also plots the search history): the
# flow graph's edges. Stages still run one after the other: profiling must not share the CPU.
UPSTREAM = {"prepare": (), "profile": ("prepare",), "supernet": ("prepare",),
            "search": ("prepare", "profile", "supernet"), "finetune": ("prepare", "supernet", "search"),
            "evaluate": ("prepare", "profile", "supernet", "search", "finetune")}

STAGE_PARAMS = {  # the params sections each stage reads (as in dvc.yaml; cache keys, MLflow params)
    "prepare": ("seed", "data"),
    "profile": ("seed", "model", "profile"),
    "supernet": ("seed", "model", "supernet"),
    "search": ("seed", "search", "profile", "supernet"),
    "finetune": ("seed", "finetune"),
    "evaluate": ("evaluate", "profile", "search"),
}

# The stages that build the model (they read its section or the super-network): their keys cover the
# user's model code too (`stamps.stage_code_version`), and dvc.yaml lists `${model.path}` as their dep.
MODEL_STAGES = tuple(s for s in STAGES if "model" in STAGE_PARAMS[s] or "supernet" in (s, *UPSTREAM[s]))

# The figures a reviewer compares across runs (`dvc metrics show`, `dvc exp show`): what each stage
# keeps in `metrics/<stage>.json`. Everything else a stage measures goes to its report only.
HEADLINE_METRICS = {
    "prepare": ("train", "holdout", "test", "classes"),
    "profile": ("backend", "entries", "seconds", "base_latency_measured_ms", "base_latency_measured_ms_ci95_low",
                "base_latency_measured_ms_ci95_high", "base_latency_estimated_ms",
                "lut_mean_abs_error", "lut_max_abs_error", "width_only_min_ratio", "min_ratio"),
    "supernet": ("epochs", "seconds", "holdout_acc_largest", "holdout_acc_smallest"),
    "search": ("algorithm", "budget", "iterations", "candidates_evaluated", "reused_iterations", "seconds",
               "holdout_acc", "resource_estimated", "continuations", "measured_over_budget"),
    "finetune": ("epochs", "seconds", "holdout_acc"),
    "evaluate": ("test_acc", "latency_measured_ms", "latency_estimated_ms", "base_latency_measured_ms",
                 "latency_ratio", "macs", "params", "budget_met", "measured_over_budget", "budget_verdict",
                 "latency_measured_ms_ci95_low", "latency_measured_ms_ci95_high", "latency_ratio_ci95_low",
                 "latency_ratio_ci95_high"),
}

# The few figures of each stage a console line shows (the flow's summary, `netadapt run`).
SUMMARY_METRICS = {
    "prepare": ("train", "holdout", "test", "classes"),
    "profile": ("entries", "base_latency_measured_ms", "lut_mean_abs_error", "seconds"),
    "supernet": ("epochs", "holdout_acc_largest", "holdout_acc_smallest", "seconds"),
    "search": ("iterations", "reused_iterations", "candidates_evaluated", "budget_fraction", "resource_estimated",
               "holdout_acc", "seconds"),
    "finetune": ("epochs", "holdout_acc", "seconds"),
    "evaluate": ("test_acc", "latency_measured_ms", "latency_estimated_ms", "latency_ratio", "macs", "params"),
}

# The final network's figures that the pipeline's parent run (MLflow) carries: evaluate's verdict.
RESULT_METRICS = ("test_acc", "test_acc_top5", "latency_measured_ms", "latency_ratio", "budget_met", "macs", "params")

DEVICES = "devices"  # the folder of the named devices' own outputs, in artifacts/, metrics/ and plots/
DEVICE_SCRIPTS = Path("devices")  # the example device scripts of `profile.backend: command` (code outside netadapt/)
PLOT_FILES = {"profile": ("fidelity.csv", "fidelity.png"), "supernet": ("supernet.csv",),
              "search": ("search.csv", "search.png"), "finetune": ("finetune.csv",), "evaluate": ("tradeoff.png",)}


@dataclass(frozen=True)
class Paths:
    """Where stages read and write, relative to the project root (as in dvc.yaml).

    `for_device(name)` is a named device's view (`Config.devices`): the shared inputs (prepared data,
    super-network) stay where they are, the device's own outputs (table, search, model, reports,
    progress, stamps) go to `<artifacts>/devices/<name>/`, its metrics and plot files to
    `<metrics>/devices/<name>/` and `<plots>/devices/<name>/` (its `metrics` and `plots` fields)."""

    artifacts: Path = Path("artifacts")
    metrics: Path = Path("metrics")
    plots: Path = Path("plots")
    device: str = ""  # "" : the profile section's device (the plain pipeline)

    @classmethod
    def from_folders(cls, folders: dict[str, str], device: str = "") -> "Paths":
        """The paths of `{"artifacts": ..., "metrics": ..., "plots": ...}` (what crosses a process or
        task boundary), seen from `device`."""
        return cls(**{k: Path(v) for k, v in folders.items()}).for_device(device)

    def folders(self) -> dict[str, str]:
        """The inverse of `from_folders` for the plain pipeline's paths: the one spelling of the folders
        that cross a process or task boundary (the flow's parameters and tasks)."""
        if self.device:
            raise ValueError(f"the folders of device {self.device!r} are its plain pipeline's")
        return {"artifacts": str(self.artifacts), "metrics": str(self.metrics), "plots": str(self.plots)}

    def for_device(self, name: str) -> "Paths":
        """The view of device `name` (`""`: the plain pipeline's paths, unchanged)."""
        if self.device:
            raise ValueError(f"already the paths of device {self.device!r}")
        if not name:
            return self
        return Paths(self.artifacts, self.metrics / DEVICES / name, self.plots / DEVICES / name, name)

    @property
    def own(self) -> Path:
        """Where this device's artifacts go: `<artifacts>/devices/<name>`, or `<artifacts>` itself."""
        return self.artifacts / DEVICES / self.device if self.device else self.artifacts

    @property
    def prepared(self) -> Path:
        return self.artifacts / "prepared"

    @property
    def lut(self) -> Path:
        return self.own / "profile" / "lut.csv"

    @property
    def supernet(self) -> Path:
        return self.artifacts / "supernet" / "supernet.pt"

    @property
    def search(self) -> Path:
        return self.own / "search"

    @property
    def v1_network(self) -> Path:
        """NetAdapt V1's pruned, fine-tuned weights; finetune starts there when it exists."""
        return self.search / "network.pt"

    @property
    def final(self) -> Path:
        return self.own / "finetune" / "model.pt"

    def metrics_file(self, stage: str) -> Path:
        """The stage's headline metrics (`HEADLINE_METRICS`), declared as DVC metrics."""
        return self.metrics / f"{stage}.json"

    def report(self, stage: str) -> Path:
        """Every metric of the stage's run (a superset of its metrics file)."""
        return self.own / "reports" / f"{stage}.json"

    def progress(self, stage: str) -> Path:
        """A stage's resumable progress: outside its DVC output, which DVC deletes before a re-run."""
        return self.own / "progress" / f"{stage}.pt"


def stage_inputs(stage: str, cfg: "Config", p: Paths) -> list[Path]:
    """The artifacts a stage reads: `dvc.yaml`'s deps other than code, plus what DVC does not declare
    (finetune starts from NetAdapt V1's network when it exists)."""
    return {
        "prepare": [Path(cfg.data.root)],
        "profile": [p.prepared / "meta.json", DEVICE_SCRIPTS],
        "supernet": [p.prepared, *([Path(cfg.model.checkpoint)] if cfg.model.checkpoint else [])],
        "search": [p.prepared / "holdout.pt", p.prepared / "train.pt", p.supernet.parent, p.lut.parent,  # V1 starts from model.checkpoint
                   *([Path(cfg.model.checkpoint)] if cfg.model.checkpoint else [])],
        "finetune": [p.prepared / "train.pt", p.prepared / "holdout.pt", p.supernet.parent, p.search / "arch.json",
                     p.v1_network],
        "evaluate": [p.prepared / "test.pt", p.final.parent, p.supernet.parent, p.lut.parent,
                     p.search / "history.csv", p.search / "history.json", DEVICE_SCRIPTS],
    }[stage]


def stage_outputs(stage: str, p: Paths) -> list[Path]:
    """Everything a stage writes that `dvc.yaml` declares for it: outs (its report included), metrics
    and plots."""
    outs = {"prepare": [p.prepared], "profile": [p.lut.parent], "supernet": [p.supernet.parent],
            "search": [p.search], "finetune": [p.final.parent], "evaluate": []}[stage]
    return outs + [p.report(stage), p.metrics_file(stage)] + [p.plots / name for name in PLOT_FILES.get(stage, ())]
