"""Typed configuration: `params.yaml` parsed once, at the edge, into frozen dataclasses.

Every stage reads one section (`data`, `model`, `profile`, `supernet`, `search`, `finetune`,
`evaluate`) plus `seed`; `tracking` configures MLflow. `devices` names more target devices, each with
the `profile` keys it changes and its own budget (`DeviceConfig`): `Config.for_device(name)` is the
config that device's profile, search, finetune and evaluate stages read.
Validation happens here, before any work:
an unknown key, a wrong type or an out-of-range value raises `ConfigError` with a one-line message
naming the full key, e.g. ``search.budget: must be > 0, got -1``.

Constraints live in each field's metadata (`ge`, `gt`, `le`, `lt`), so the schema is the single
place that says what a valid value is. Every float must be finite (no `.nan`, `.inf`), and counts
have sane upper bounds (`MAX_COUNT`): an absurd magnitude is refused here, not hours into a run.
The params file itself is read strictly: UTF-8, a mapping, no key given twice, not empty.
Checks that need more than the params (the model's widths, a checkpoint's content, the data) run
in the stage before its work: `check_model_widths` here, the others where the input is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from netadapt.errors import ConfigError
from netadapt.models.registry import BUILTIN_MODELS
from netadapt.resources.command import DEFAULT_PATTERN, DEFAULT_TEMPLATE, pattern_problem, template_problem


def _num(default: Any, **bounds: float) -> Any:
    """A numeric field with bounds (`ge`, `gt`, `le`, `lt`) checked by the parser."""
    return field(default=default, metadata=bounds)


MAX_COUNT = 10**6  # epochs, repeats, steps, batches, candidates: beyond this a value is a typo
MAX_SEED = 2**32 - 1  # numpy's legacy range; seeds derived from it (seed * 1_000_003 + t) stay in torch's 2**64
MAX_LR = 10.0  # a learning rate above this diverges at once (NaN weights, not an error)
MAX_TIMEOUT = 7 * 24 * 3600.0  # seconds
MAX_PROCESSES = 1024  # data-parallel training processes on one node
MAX_EXPERIMENT_NAME = 500  # MLflow's limit


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class DataConfig:
    name: Literal["fashion-mnist", "fashion-mnist-t10k", "cifar10", "image-folder"] = "fashion-mnist-t10k"
    root: str = "data/fashion-mnist-t10k"  # folder holding the dataset's original files
    holdout_fraction: float = _num(0.1, gt=0.0, lt=1.0)  # carved from train; search scores on it
    test_fraction: float = _num(0.2, gt=0.0, lt=1.0)  # used only by datasets that ship one split
    verify_checksums: bool = True  # check files against <root>/SHA256SUMS when it exists


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mobilenet_v2"  # a built-in (mobilenet_v2 | mobilenet_v1 | plain_cnn) or "module:Class"
    width_mult: float = _num(1.0, gt=0.0, le=4.0)  # scales every maximum width
    granularity: int = _num(8, ge=1)  # searchable widths are multiples of this


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
    # max_attempts runs in all, then refused (held-out mean error on the 2-core VM: 3-12% normally,
    # 47% in the busy run that wrote a wrong table without a word).
    max_error: float = _num(0.25, gt=0.0)
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
    sampling: Literal["sandwich", "random", "none"] = "sandwich"  # sandwich: largest + smallest + random
    group_size: int = _num(16, ge=1, le=MAX_COUNT)  # samples sharing one sub-network draw (and BN statistics);
    # a batch trains batch_size / group_size sub-networks, at least MIN_GROUPS[sampling]
    device: Literal["auto", "cpu", "cuda"] = "auto"
    nproc: int = _num(1, ge=1, le=MAX_PROCESSES)  # data-parallel processes (torchrun, DDP); 1: this one
    amp: bool = False  # mixed precision: float16 autocast + loss scaling on CUDA, bfloat16 autocast on CPU
    largest: Literal["group", "batch"] = "batch"  # the full network trains on group 0, or also on the whole batch
    # in a second pass of its own
    distill: float = _num(0.5, ge=0.0, le=1.0)  # with largest: batch, weight of its soft labels for the others
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


# --------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """Check `value` against annotation `tp`; return it (ints widened to float where asked)."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise ConfigError(f"{key}: must be {_type_name(tp)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, args[0], value)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:  # an integer beyond a float's range (~1.8e308)
                raise ConfigError(f"{key}: must be a finite number, got {_shown(value)}") from None
            if not math.isfinite(value):  # .nan, .inf, -.inf, or 1.0e+400 read as inf
                raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - schema error, not user error
        raise TypeError(f"unsupported annotation {tp} for {key}")
    if not ok:
        raise ConfigError(f"{key}: must be {_type_name(tp)}, got {value!r}")
    return value


def _shown(value: Any) -> str:
    """A value in a message: short, on one line (an integer of 400 digits is not quoted whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:4]}e{len(digits) - 1}"
    return repr(value)


def _bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 10**15 else f"{bound:g}"


def _check_bounds(key: str, value: Any, raw: Any, meta: typing.Mapping[str, float]) -> None:
    tests = {"ge": (lambda v, b: v >= b, ">="), "gt": (lambda v, b: v > b, ">"),
             "le": (lambda v, b: v <= b, "<="), "lt": (lambda v, b: v < b, "<")}
    for name, bound in meta.items():
        test, symbol = tests[name]
        if not test(value, bound):
            raise ConfigError(f"{key}: must be {symbol} {_bound(bound)}, got {_shown(raw)}")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'params'}: must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue
        key, tp = prefix + f.name, hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, raw[f.name], key + ".")
        elif get_origin(tp) is dict:  # `devices`: checked by `_devices` once the sections it overrides are built
            kwargs[f.name] = raw[f.name]
        else:
            value = _coerce(key, tp, raw[f.name])
            if value is not None:
                _check_bounds(key, value, raw[f.name], f.metadata)
            kwargs[f.name] = value
    return cls(**kwargs)


def batch_split_problem(batch_size: int, group_size: int, nproc: int) -> str:
    """Why a batch cannot be split among `nproc` data-parallel processes ("" if it can): each must
    train an equal share of whole sample groups (`distributed.local_positions`)."""
    if nproc > 1 and batch_size % (group_size * nproc):
        return (f"a batch of {batch_size} does not split into {nproc} processes of whole groups of {group_size}; "
                f"use a batch that is a multiple of {group_size * nproc}")
    return ""


def _check_consistency(cfg: Config) -> None:
    """Rules beyond one field's type and bounds."""
    name = cfg.model.name
    if name not in BUILTIN_MODELS and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", name):
        raise ConfigError(f"model.name: must be one of {', '.join(map(repr, BUILTIN_MODELS))} "
                          f"or a 'package.module:ClassName' path, got {name!r}")
    sn = cfg.supernet
    if sn.batch_size % sn.group_size:
        raise ConfigError(f"supernet.group_size: must divide supernet.batch_size "
                          f"({sn.batch_size}), got {sn.group_size}")
    if sn.sampling != "none" and sn.batch_size // sn.group_size < MIN_GROUPS[sn.sampling]:
        raise ConfigError(f"supernet.group_size: {sn.group_size} leaves {sn.batch_size // sn.group_size} "
                          f"group(s) in a supernet.batch_size of {sn.batch_size}, and {SAMPLING_NOTE[sn.sampling]}: "
                          f"use a group_size of at most {sn.batch_size // MIN_GROUPS[sn.sampling]}, "
                          f"or supernet.sampling: none for plain training")
    if sn.subnet_weight != 1.0 and sn.largest != "batch":
        raise ConfigError(f"supernet.subnet_weight: weighs the sampled sub-networks' pass against the full "
                          f"network's own pass over the batch: set supernet.largest: batch, or subnet_weight: 1 "
                          f"(got {sn.subnet_weight})")
    if sn.distill > 0 and sn.largest != "batch":
        raise ConfigError(f"supernet.distill: the teacher is the full network's pass over the whole batch: "
                          f"set supernet.largest: batch, or distill: 0 (got {sn.distill})")
    split_problem = batch_split_problem(sn.batch_size, sn.group_size if sn.sampling != "none" else 1, sn.nproc)
    if split_problem:
        raise ConfigError(f"supernet.nproc: {split_problem} (supernet.batch_size {sn.batch_size})")
    split_problem = batch_split_problem(cfg.finetune.batch_size, 1, cfg.finetune.nproc)
    if split_problem:
        raise ConfigError(f"finetune.nproc: {split_problem} (finetune.batch_size {cfg.finetune.batch_size})")
    for key, value, problem in (("profile.command", cfg.profile.command, template_problem(cfg.profile.command)),
                                ("profile.command_pattern", cfg.profile.command_pattern,
                                 pattern_problem(cfg.profile.command_pattern))):
        if problem:  # checked whatever the backend: a broken template fails now, not hours later
            raise ConfigError(f"{key}: {problem}, got {value!r}")
    if cfg.search.budget_type == "relative" and cfg.search.budget > 1.0:
        raise ConfigError(f"search.budget: a relative budget is a fraction of the base network, "
                          f"must be <= 1, got {cfg.search.budget!r} (set search.budget_type: absolute "
                          f"for a value in the metric's unit)")
    # (a relative budget of exactly 1 is allowed: the search scores the base network and stops; an
    # absolute budget at or above the base is refused by the search, which knows the base's value)
    if not cfg.data.root.strip():
        raise ConfigError(f"data.root: must name the dataset's folder, got {cfg.data.root!r}")
    experiment = cfg.tracking.experiment
    if not experiment.strip():
        raise ConfigError(f"tracking.experiment: must name an MLflow experiment, got {experiment!r}")
    if len(experiment) > MAX_EXPERIMENT_NAME or any(not ch.isprintable() for ch in experiment):
        raise ConfigError(f"tracking.experiment: must be one line of at most {MAX_EXPERIMENT_NAME} printable "
                          f"characters (MLflow's limit), got {_short(experiment)}")
    _check_cuda(cfg)


def _short(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _check_cuda(cfg: Config, profile_key: str = "profile.backend") -> None:
    """A CUDA device asked for on a machine without one is refused when the params are read, naming
    the key: not after earlier stages ran, nor deep in training as a bare `device:` error."""
    asked = [(key, value) for key, value in (("supernet.device", cfg.supernet.device),
                                             ("finetune.device", cfg.finetune.device),
                                             (profile_key, cfg.profile.backend))
             if value in ("cuda", "torch-cuda")]
    if not asked:
        return
    import torch  # only when CUDA is asked for: validation stays light otherwise

    if not torch.cuda.is_available():
        key, value = asked[0]
        instead = "torch-cpu" if key == profile_key else "cpu or auto"
        raise ConfigError(f"{key}: {value} was asked for but no CUDA device is available "
                          f"(torch {torch.__version__}); use {instead}")


def check_model_widths(spec: Any) -> None:
    """Model-level check of `model.granularity` and `model.width_mult` (a `ModelSpec`), before a
    super-network is built, trained or profiled.

    Every searchable width the model asks for (the model built at granularity 1 on the meta device:
    no memory, milliseconds) must hold at least one granularity step. Below it, the width is rounded
    *up* to the granularity: a tiny `width_mult` would not shrink the network (widths never reach 0,
    they all become the granularity), and a granularity above the smallest width builds a far wider
    network than asked (for mobilenet_v2 and 4096: about a billion parameters).
    """
    import torch

    from netadapt.models import build_supernet

    def smallest(width_mult: float):
        try:
            with torch.device("meta"):
                model = build_supernet(dataclasses.replace(spec, width_mult=width_mult, granularity=1))
            dims = model.space().dims
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 - a user model that cannot be built on the meta device: not checked here
            return None
        return min(dims, key=lambda d: d.max_width) if dims else None

    g, m = spec.granularity, spec.width_mult
    dim = smallest(m)
    if dim is None or dim.max_width >= g:
        return
    nominal = smallest(1.0) if m < 1.0 else None
    if nominal is not None and nominal.max_width >= g:
        raise ConfigError(f"model.width_mult: {m:g} narrows {spec.name}'s smallest searchable width ({dim.name}) "
                          f"to {dim.max_width} channel(s), below model.granularity {g}: widths would be rounded up "
                          f"to {g}, not shrunk; use a width_mult of at least {g / nominal.max_width:.3g} or a "
                          f"smaller granularity")
    raise ConfigError(f"model.granularity: {g} is larger than {spec.name}'s smallest searchable width "
                      f"({dim.name}: {dim.max_width} channels at model.width_mult {m:g}): widths would be rounded "
                      f"up to {g}, building a wider network than asked; use a granularity of at most {dim.max_width}")


def _devices(raw: Any, cfg: Config) -> dict[str, DeviceConfig]:
    """`devices`, checked: names, keys, each device's profile keys (built over the profile section,
    so every rule of a profile key holds, named `devices.<name>.profile.<key>`) and budget."""
    if not isinstance(raw, dict):
        raise ConfigError(f"devices: must be a mapping of device names to their settings (`devices: {{}}` for "
                          f"none), got {raw!r}"[:300])
    devices = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
            raise ConfigError(f"devices.{name}: a device name must be 1-40 lowercase letters, digits, '-' or '_' "
                              f"starting with a letter or digit (it names folders, DVC stages and a registered "
                              f"model), got {name!r}")
        key = f"devices.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: must be a mapping with `budget` and `profile`, got {entry!r}"[:300])
        for sub in entry:
            if sub not in DEVICE_KEYS:
                raise ConfigError(f"{key}.{sub}: unknown key (known: {', '.join(DEVICE_KEYS)})")
        if "budget" not in entry:
            raise ConfigError(f"{key}.budget: required (this device's search.budget, in search.budget_type's "
                              f"terms)")
        if "profile" not in entry:
            raise ConfigError(f"{key}.profile: required: the profile keys this device changes, e.g. "
                              f"{{backend: command, command: ...}} (`{{}}` for none)")
        budget = _coerce(f"{key}.budget", float, entry["budget"])
        _check_bounds(f"{key}.budget", budget, entry["budget"], {"gt": 0.0})
        if cfg.search.budget_type == "relative" and budget > 1.0:
            raise ConfigError(f"{key}.budget: a relative budget is a fraction of the base network, must be <= 1, "
                              f"got {budget!r} (search.budget_type: absolute for a value in the metric's unit)")
        overrides = entry["profile"]
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{key}.profile: must be a mapping of profile keys, got {overrides!r}"[:300])
        merged = _build(ProfileConfig, {**to_dict(cfg.profile), **overrides}, f"{key}.profile.")
        for field_name, value, problem in (("command", merged.command, template_problem(merged.command)),
                                           ("command_pattern", merged.command_pattern,
                                            pattern_problem(merged.command_pattern))):
            if problem:
                raise ConfigError(f"{key}.profile.{field_name}: {problem}, got {value!r}")
        if merged.backend == "torch-cuda" and cfg.profile.backend != "torch-cuda":
            _check_cuda(dataclasses.replace(cfg, profile=merged), f"{key}.profile.backend")
        devices[name] = DeviceConfig(budget, {k: getattr(merged, k) for k in overrides})
    return devices


def parse_config(raw: dict[str, Any]) -> Config:
    """Validate a nested mapping (as loaded from params.yaml) into a `Config`."""
    cfg = _build(Config, raw if raw is not None else {}, "")
    _check_consistency(cfg)
    if cfg.devices or not isinstance(cfg.devices, dict):
        cfg = dataclasses.replace(cfg, devices=_devices(cfg.devices, cfg))
    return cfg


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of a YAML document gives one key twice."""


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (plain PyYAML silently keeps
    the last one, so the first value a reader sees is not the one used), naming the full dotted key
    and both lines."""

    root = ""  # the dotted key the document sits under (an `-S key=value` value)

    def construct_document(self, node: yaml.Node) -> Any:
        self._prefixes: dict[int, str] = {}
        self._label(node, f"{self.root}." if self.root else "")
        return super().construct_document(node)

    def _label(self, node: yaml.Node, prefix: str) -> None:
        if id(node) in self._prefixes:  # an alias of a node already seen
            return
        self._prefixes[id(node)] = prefix
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                self._label(value_node, f"{prefix}{name}.")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._label(item, f"{prefix}{i}.")

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):  # the keys written here (before `<<` merges them in)
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: SafeLoader's own error follows
                    break
                line = key_node.start_mark.line + 1
                if first is not None:
                    name = self._prefixes.get(id(node), "") + str(key)
                    raise DuplicateKeyError(f"line {line}: {name} is given twice (first on line {first}); "
                                            f"YAML would silently keep the last value")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_load(text: str, root: str = "") -> Any:
    loader = StrictLoader(text)
    loader.root = root
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `-S key=value` overrides (values parsed as YAML, as `dvc exp run -S` does)."""
    raw = json.loads(json.dumps(raw or {}))  # deep copy of plain data
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"-S {item}: expected key=value, e.g. -S search.budget=0.4")
        try:
            value = _yaml_load(text, key) if text.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{key}: cannot parse override value {text!r}: {problem}") from None
        node, parts = raw, key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: is not a section, cannot set {key}")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Read, override and validate a params file; every failure is a `ConfigError`."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a params file")
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {data[exc.start]:#04x} on line {line}); "
                          f"save it as UTF-8") from None
    try:
        raw = _yaml_load(text)
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if raw is None:  # no document: empty, or only comments (an absent *section* means its defaults)
        raise ConfigError(f"{path}: empty (no sections); an empty params file is most likely a mistake: "
                          f"write `{{}}` to run on every default")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must hold a mapping of sections, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides or []))


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
