"""The params' schema: one frozen dataclass per section, each field's bounds in its metadata.

Constraints live in each field's metadata (`ge`, `gt`, `le`, `lt`, read by `parsing.check_bounds`),
so the schema is the single place that says what a valid value is. Counts have sane upper bounds
(`MAX_COUNT`): an absurd magnitude is refused when the params are read, not hours into a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from netadapt.errors import ConfigError
from netadapt.resources.command import DEFAULT_PATTERN, DEFAULT_TEMPLATE


def _num(default: Any, **bounds: float) -> Any:
    """A numeric field with bounds (`ge`, `gt`, `le`, `lt`) checked by the parser."""
    return field(default=default, metadata=bounds)


MAX_COUNT = 10**6  # epochs, repeats, steps, batches, candidates: beyond this a value is a typo
MAX_SEED = 2**32 - 1  # numpy's legacy range; seeds derived from it (seed * 1_000_003 + t) stay in torch's 2**64
MAX_LR = 10.0  # a learning rate above this diverges at once (NaN weights, not an error)
MAX_TIMEOUT = 7 * 24 * 3600.0  # seconds
MAX_PROCESSES = 1024  # data-parallel training processes on one node
MAX_EXPERIMENT_NAME = 500  # MLflow's limit



@dataclass(frozen=True)
class DataConfig:
    name: Literal["fashion-mnist", "fashion-mnist-t10k", "cifar10", "image-folder"] = "fashion-mnist-t10k"
    root: str = "data/fashion-mnist-t10k"  # folder holding the dataset's original files
    holdout_fraction: float = _num(0.1, gt=0.0, lt=1.0)  # carved from train; search scores on it
    test_fraction: float = _num(0.2, gt=0.0, lt=1.0)  # used only by datasets that ship one split
    verify_checksums: bool = True  # check files against <root>/SHA256SUMS when it exists
    # Images of any size: shorter side resized to image_size and centre-cropped (holdout, test); train
    # stored at round(image_size * 8/7) for random-resized crops at batch time. None: one common size.
    image_size: int | None = _num(None, ge=4, le=4096)
    channels: Literal[1, 3] | None = None  # None: the first train image's (grayscale 1, else 3)
    mean: list[float] | None = None  # per channel (or one for all), of pixel/255; None: 0.5
    std: list[float] | None = None  # per channel (or one for all); None: 0.5 (with mean: [-1, 1])


@dataclass(frozen=True)
class ModelConfig:
    # a built-in (mobilenet_v2 | mobilenet_v1 | mobilenet_v3 | plain_cnn), any nn.Module class or factory
    # ("package.module:Attr"), "torchvision:<name>" or "timm:<name>" (traced: docs/models.md)
    name: str = "mobilenet_v2"
    width_mult: float = _num(1.0, gt=0.0, le=4.0)  # scales every maximum width (built-in models)
    granularity: int = _num(8, ge=1)  # searchable widths are multiples of this
    kwargs: dict[str, Any] = field(default_factory=dict)  # a user's model: its construction arguments
    checkpoint: str | None = None  # trained weights (a state dict) that start the super-network
    checkpoint_pickle: bool = False  # model.checkpoint is a whole pickled module (unpickling runs its code)
    # the folder of a "module:Class" model's code, relative to the project root: first on sys.path while
    # the model is found and built, a dvc.yaml dep of every stage that builds the model (so it must exist
    # there: the repository ships models/); checked when a model is looked up in it (`models.source`)
    path: str = "models"
    # dimensions the search never shrinks, held at their built size: shell-style patterns of dimension names
    # (`*.stage`, `*.kernel`, `head.conv.out`); one that matches none is refused, listing the model's dimensions
    fixed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProfileConfig:
    # as params.yaml: onnxruntime's small per-op cost lets width move latency (eager torch at batch 1: overhead)
    backend: Literal["torch-cpu", "onnxruntime-cpu", "torch-cuda", "command"] = "onnxruntime-cpu"
    threads: int = _num(1, ge=1, le=4096)
    batch_size: int = _num(1, ge=1, le=MAX_COUNT)
    warmup: int = _num(5, ge=0, le=MAX_COUNT)
    repeats: int = _num(20, ge=1, le=MAX_COUNT)
    network_repeats: int = _num(50, ge=1, le=MAX_COUNT)  # timed runs of whole networks (calibration, fidelity)
    interpolate: bool = False  # estimate configurations missing from the table
    allow_mismatch: bool = False  # use a table measured for another backend/threads/batch/versions
    fidelity_samples: int = _num(8, ge=1, le=MAX_COUNT)  # held-out random networks measured to check the table
    # A table whose mean relative error on the held-out networks exceeds max_error is measured again,
    # max_attempts runs in all, then refused (held-out mean error on the 2-core VM: 3-12% quiet, 14-17%
    # beside other jobs, issue 26, 47% in the busy run that wrote a wrong table without a word;
    # docs/devices.md#profiling)
    max_error: float = _num(0.12, gt=0.0)
    max_attempts: int = _num(3, ge=1, le=1000)
    # backend `command`: a shell command timing one ONNX graph (placeholders {model} {repeats} {warmup}
    # {threads} {batch_size} {python}), the regex reading its median in ms (group `ms` or the first),
    # and the seconds one invocation may take (see netadapt/resources/command.py).
    command: str = DEFAULT_TEMPLATE
    command_pattern: str = DEFAULT_PATTERN
    command_timeout: float = _num(600.0, gt=0.0, le=MAX_TIMEOUT)


# Sample groups a super-network batch needs so that ordered dropout trains more than its fixed
# members: group 0 is always the largest network and, under `sandwich`, group 1 the smallest.
MIN_GROUPS = {"sandwich": 3, "random": 2}
SAMPLING_NOTE = {"sandwich": "sandwich sampling needs 3 (largest, smallest, at least one random sub-network)",
                 "random": "random sampling needs 2 (the largest, at least one random sub-network)"}


@dataclass(frozen=True)
class SupernetConfig:
    epochs: int = _num(3, ge=0, le=MAX_COUNT)
    batch_size: int = _num(128, ge=1, le=MAX_COUNT)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = _num(0.05, gt=0.0, le=MAX_LR)
    momentum: float = _num(0.9, ge=0.0, lt=1.0)
    weight_decay: float = _num(4e-5, ge=0.0, le=1.0)
    label_smoothing: float = _num(0.0, ge=0.0, lt=1.0)
    # sandwich: largest + smallest + random; none: plain training (search.preset netadapt-reference's)
    sampling: Literal["sandwich", "random", "none"] = "sandwich"
    group_size: int = _num(16, ge=1, le=MAX_COUNT)  # samples sharing one sub-network draw (and BN statistics);
    # a batch trains batch_size / group_size sub-networks, at least MIN_GROUPS[sampling]
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nproc: int = _num(1, ge=1, le=MAX_PROCESSES)  # data-parallel processes (torchrun, DDP); 1: this one
    amp: bool = False  # mixed precision: float16 autocast + loss scaling on CUDA, bfloat16 autocast on CPU
    largest: Literal["group", "batch"] = "batch"  # the full network trains on group 0, or also on the whole batch
    # in a second pass of its own
    largest_every: int = _num(1, ge=1, le=MAX_COUNT)  # with largest: batch, that pass on batches 0, k, 2k.. of an epoch
    # share of every batch's sample groups (the first) that are the full network: floor(share x groups), at least
    # group 0, at most what leaves the sampled sub-networks MIN_GROUPS[sampling] - 1 groups
    largest_share: float = _num(0.0, ge=0.0, lt=1.0)
    largest_weight: float = _num(0.0, ge=0.0, le=100.0)  # their mean loss added again x this (0: the batch mean only)
    distill: float = _num(0.5, ge=0.0, le=1.0)  # weight of the teacher's soft labels for the sampled sub-networks
    teacher: Literal["full", "ema"] = "full"  # full: the full network's own pass (largest: batch); ema: an
    # exponential moving average of the weights run as the full network without gradients (a forward)
    ema_decay: float = _num(0.99, gt=0.0, lt=1.0)  # teacher: ema, the average's decay per step
    subnet_weight: float = _num(1.0, gt=0.0, le=1.0)  # with largest: batch, the sampled pass's loss weight
    augment: bool = False  # random horizontal flip + crop (reflect padding 4) of every training image


@dataclass(frozen=True)
class SearchConfig:
    algorithm: Literal["mcd", "netadapt"] = "mcd"  # mcd: NetAdaptV2; netadapt: the ECCV'18 V1
    metric: Literal["latency", "macs", "params"] = "latency"
    budget: float = _num(0.5, gt=0.0)
    budget_type: Literal["relative", "absolute"] = "relative"  # fraction of base, or ms/MACs/params
    initial_reduction: float = _num(0.1, gt=0.0, lt=1.0)  # dR_0 as a fraction of the base resource
    decay: float = _num(0.98, gt=0.0, le=1.0)  # dR_t = initial_reduction * base * decay**t
    candidates: int = _num(8, ge=1, le=MAX_COUNT)  # J, candidates per MCD iteration
    layers_per_candidate: int = _num(2, ge=1, le=MAX_COUNT)  # L, dimensions one MCD candidate shrinks
    split: Literal["capacity", "absolute"] = "capacity"  # MCD: split dR by what each dimension can give
    selection: Literal["accuracy", "accuracy_per_resource"] = "accuracy"
    bn_recalibration_batches: int = _num(4, ge=0, le=MAX_COUNT)
    eval_batches: int = _num(0, ge=0, le=MAX_COUNT)  # holdout batches to score on; 0 = all of holdout
    batch_size: int = _num(256, ge=1, le=MAX_COUNT)
    max_halvings: int = _num(4, ge=0, le=64)  # when no candidate can cut dR
    # latency: time the answer on the device; while it measures over the budget, go on to a table
    # budget tightened by what the timings say, at most this many times (0: trust the lookup table)
    measure_rounds: int = _num(2, ge=0, le=MAX_COUNT)
    # a latency whose 95% interval straddles the budget (undecided within noise) is timed again, pooled,
    # at most this many more times (the search's measured checks and evaluate's); still undecided: counts as met
    undecided_retimings: int = _num(2, ge=0, le=100)
    # V1's scale: `preset` fills these, initial_reduction, decay and supernet.sampling where the params
    # leave them unset (absent or null); the defaults here are `quick`'s (config.presets)
    preset: Literal["quick", "netadapt-reference"] = "quick"
    short_term_steps: int = _num(10, ge=0, le=MAX_COUNT)  # V1: fine-tune steps per proposal
    long_term_epochs: int = _num(1, ge=0, le=MAX_COUNT)  # V1: fine-tune epochs at the end
    lr: float = _num(0.01, gt=0.0, le=MAX_LR)  # V1 fine-tuning learning rate
    train_batch_size: int = _num(64, ge=1, le=MAX_COUNT)  # V1 fine-tuning batch size
    start_checkpoint: str = ""  # V1: a plainly trained super-network checkpoint ("" = the supernet stage's)


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = _num(2, ge=0, le=MAX_COUNT)
    init: Literal["supernet", "scratch"] = "supernet"
    batch_size: int = _num(128, ge=1, le=MAX_COUNT)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = _num(0.02, gt=0.0, le=MAX_LR)
    momentum: float = _num(0.9, ge=0.0, lt=1.0)
    weight_decay: float = _num(4e-5, ge=0.0, le=1.0)
    label_smoothing: float = _num(0.0, ge=0.0, lt=1.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nproc: int = _num(1, ge=1, le=MAX_PROCESSES)  # data-parallel processes (torchrun, DDP); 1: this one
    amp: bool = False  # mixed precision, as supernet.amp
    augment: bool = False  # random flip + crop, as supernet.augment


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = _num(256, ge=1, le=MAX_COUNT)
    latency_repeats: int = _num(30, ge=1, le=MAX_COUNT)
    latency_warmup: int = _num(10, ge=0, le=MAX_COUNT)
    budget_tolerance: float = _num(0.05, ge=0.0, le=1.0)  # measured may exceed the budget by this fraction
    fail_over_budget: bool = False  # exit non-zero (3) when the final network is over budget


@dataclass(frozen=True)
class TrackingConfig:
    experiment: str = "netadapt"
    register_model: bool = True


# A device's name is a path component (`artifacts/devices/<name>/`), part of a DVC stage name
# (`device-search@<name>`), of a dotted params key (`devices.<name>.budget`) and of a registered model.
DEVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
DEVICE_KEYS = ("budget", "profile")


@dataclass(frozen=True)
class DeviceConfig:
    """A named target device (`devices.<name>`): one latency table, one search, one model of its own,
    from the one super-network. Both keys are required, so that `dvc.yaml`'s per-device stages can
    list them as params: `profile` holds the `profile` keys this device changes (`{}`: none; the
    others come from the profile section), `budget` is its `search.budget` (same `budget_type`)."""

    budget: float
    profile: dict[str, Any]


@dataclass(frozen=True)
class Config:
    seed: int = _num(0, ge=0, le=MAX_SEED)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    devices: dict[str, DeviceConfig] = field(default_factory=dict)  # name -> device; {}: the profile section's only

    def for_device(self, name: str) -> "Config":
        """The config of device `name`'s stages: its profile keys over the profile section, its
        budget as `search.budget`; every other section as it is."""
        device = self.devices.get(name)
        if device is None:
            known = ", ".join(sorted(self.devices)) or "none: devices is empty"
            raise ConfigError(f"devices.{name}: no such device in the params (known: {known})")
        return dataclasses.replace(self, profile=dataclasses.replace(self.profile, **device.profile),
                                   search=dataclasses.replace(self.search, budget=device.budget))

    def section_digest(self, *sections: str) -> str:
        """Content digest of the named sections (cache keys, checkpoint provenance)."""
        payload = {name: to_dict(getattr(self, name)) if dataclasses.is_dataclass(getattr(self, name))
                   else getattr(self, name) for name in sections}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a config (for JSON, digests and MLflow params)."""
    return dataclasses.asdict(obj)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """`{"search.budget": 0.5, ...}`: the dotted keys that `-S` and MLflow use."""
    out: dict[str, Any] = {}
    for key, value in (to_dict(obj) if dataclasses.is_dataclass(obj) else obj).items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out
