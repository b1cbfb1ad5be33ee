"""Rules beyond one field's type and bounds: how fields of the parsed sections must agree, the
CUDA device a section asks for, and the `devices` section (each device's profile keys over the
profile section's, its own budget).

Each rule is written once and named by the key it is about, so a device's profile keys obey the
very rules of the profile section's (`devices.<name>.profile.<key>`), and its budget those of
`search.budget` (`devices.<name>.budget`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from netadapt.config.parsing import build, check_bounds, coerce, field_bounds, lookalike, short
from netadapt.config.schema import (
    DEVICE_KEYS, DEVICE_NAME, MAX_EXPERIMENT_NAME, MIN_GROUPS, SAMPLING_NOTE, Config, DeviceConfig, ProfileConfig,
    SearchConfig, to_dict,
)
from netadapt.errors import ConfigError
from netadapt.models.registry import BUILTIN_MODELS
from netadapt.resources.command import pattern_problem, template_problem


NAME_MAX, PATH_MAX = 255, 4096  # bytes of a file name and of a whole path (Linux; most file systems)


def path_problem(path: str) -> str:
    """Why no file system takes `path` ("" if one may): a name or the whole path over the limits,
    which the OS would report as ENAMETOOLONG deep in a stage instead of naming the key."""
    encoded = path.encode("utf-8", "surrogatepass")
    if len(encoded) >= PATH_MAX:
        return f"a path of {len(encoded)} bytes is longer than the file system allows ({PATH_MAX - 1})"
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX:
        return f"a name of {longest} bytes in the path is longer than the file system allows ({NAME_MAX})"
    return ""


def batch_split_problem(batch_size: int, group_size: int, nproc: int) -> str:
    """Why a batch cannot be split among `nproc` data-parallel processes ("" if it can): each must
    train an equal share of whole sample groups (`distributed.local_positions`)."""
    if nproc > 1 and batch_size % (group_size * nproc):
        return (f"a batch of {batch_size} does not split into {nproc} processes of whole groups of {group_size}; "
                f"use a batch that is a multiple of {group_size * nproc}")
    return ""


def check_consistency(cfg: Config) -> None:
    """Rules beyond one field's type and bounds, section by section; the CUDA check last."""
    name = cfg.model.name
    if name not in BUILTIN_MODELS and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", name):
        raise ConfigError(f"model.name: must be one of {', '.join(map(repr, BUILTIN_MODELS))} "
                          f"or a 'package.module:ClassName' path, got {name!r}")
    _check_supernet(cfg)
    split_problem = batch_split_problem(cfg.finetune.batch_size, 1, cfg.finetune.nproc)
    if split_problem:
        raise ConfigError(f"finetune.nproc: {split_problem} (finetune.batch_size {cfg.finetune.batch_size})")
    _check_command("profile.", cfg.profile)
    _check_relative_budget("search.budget", cfg.search.budget, cfg.search.budget_type, "set ")
    # (a relative budget of exactly 1 is allowed: the search scores the base network and stops; an
    # absolute budget at or above the base is refused by the search, which knows the base's value)
    if not cfg.model.path.strip():
        raise ConfigError(f"model.path: must name the folder of your model's code (default 'models'), "
                          f"got {cfg.model.path!r}")
    if not isinstance(cfg.model.kwargs, dict) or not all(isinstance(k, str) for k in cfg.model.kwargs):
        raise ConfigError(f"model.kwargs: must be a mapping of argument names to values, got {cfg.model.kwargs!r}")
    for i, pattern in enumerate(cfg.model.fixed):
        if not pattern.strip() or pattern != pattern.strip():
            raise ConfigError(f"model.fixed[{i}]: must be a dimension name or pattern (`*.stage`) without "
                              f"surrounding spaces, got {pattern!r}")
    if not cfg.data.root.strip():
        raise ConfigError(f"data.root: must name the dataset's folder, got {cfg.data.root!r}")
    for key, path in (("data.root", cfg.data.root), ("search.start_checkpoint", cfg.search.start_checkpoint),
                      ("model.checkpoint", cfg.model.checkpoint or "")):
        problem = path_problem(path)
        if problem:
            raise ConfigError(f"{key}: {problem}, got {short(path)}")
    _check_normalization(cfg)
    experiment = cfg.tracking.experiment
    if not experiment.strip():
        raise ConfigError(f"tracking.experiment: must name an MLflow experiment, got {experiment!r}")
    if len(experiment) > MAX_EXPERIMENT_NAME or any(not ch.isprintable() for ch in experiment):
        raise ConfigError(f"tracking.experiment: must be one line of at most {MAX_EXPERIMENT_NAME} printable "
                          f"characters (MLflow's limit), got {short(experiment)}")
    check_cuda(cfg)


def _check_supernet(cfg: Config) -> None:
    """Sample groups, the full network's pass and the data-parallel split of `supernet`."""
    sn = cfg.supernet
    if sn.batch_size % sn.group_size:
        raise ConfigError(f"supernet.group_size: must divide supernet.batch_size "
                          f"({sn.batch_size}), got {sn.group_size}")
    if sn.sampling != "none" and sn.batch_size // sn.group_size < MIN_GROUPS[sn.sampling]:
        raise ConfigError(f"supernet.group_size: {sn.group_size} leaves {sn.batch_size // sn.group_size} "
                          f"group(s) in a supernet.batch_size of {sn.batch_size}, and {SAMPLING_NOTE[sn.sampling]}: "
                          f"use a group_size of at most {sn.batch_size // MIN_GROUPS[sn.sampling]}, "
                          f"or supernet.sampling: none for plain training")
    if sn.largest_every > 1 and sn.largest != "batch":
        raise ConfigError(f"supernet.largest_every: spaces out the full network's own pass over the batch: set "
                          f"supernet.largest: batch, or largest_every: 1 (got {sn.largest_every})")
    if sn.teacher == "ema" and sn.distill == 0:
        raise ConfigError("supernet.teacher: ema teaches through in-place distillation: set supernet.distill > 0, "
                          "or teacher: full")
    if sn.subnet_weight != 1.0 and sn.largest != "batch":
        raise ConfigError(f"supernet.subnet_weight: weighs the sampled sub-networks' pass against the full "
                          f"network's own pass over the batch: set supernet.largest: batch, or subnet_weight: 1 "
                          f"(got {sn.subnet_weight})")
    if sn.distill > 0 and sn.largest != "batch" and sn.teacher == "full":
        raise ConfigError(f"supernet.distill: the teacher is the full network's pass over the whole batch: "
                          f"set supernet.largest: batch, or teacher: ema, or distill: 0 (got {sn.distill})")
    split_problem = batch_split_problem(sn.batch_size, sn.group_size if sn.sampling != "none" else 1, sn.nproc)
    if split_problem:
        raise ConfigError(f"supernet.nproc: {split_problem} (supernet.batch_size {sn.batch_size})")


def _check_normalization(cfg: Config) -> None:
    """`data.mean` / `data.std`: one value per channel (or one for all), std > 0."""
    data = cfg.data
    for key, values in (("mean", data.mean), ("std", data.std)):
        if values is None:
            continue
        if len(values) not in (1, data.channels or len(values)) or not values:
            counts = " or ".join(str(n) for n in sorted({1, data.channels or 1}))
            want = f"{counts} (data.channels: {data.channels})" if data.channels else "one per channel"
            raise ConfigError(f"data.{key}: {len(values)} values, expected {want}, got {values!r}")
        if key == "std" and min(values) <= 0:
            raise ConfigError(f"data.std: every value must be > 0 (it divides), got {values!r}")
    if data.mean is not None and data.std is not None and len(data.mean) != len(data.std) \
            and 1 not in (len(data.mean), len(data.std)):
        raise ConfigError(f"data.std: {len(data.std)} values where data.mean has {len(data.mean)}")


def _check_command(prefix: str, profile: ProfileConfig) -> None:
    """The `command` backend's template and pattern, checked whatever the backend: a broken
    template fails now, not hours later. `prefix` names the profile (`profile.`, a device's)."""
    for name, value, problem in (("command", profile.command, template_problem(profile.command)),
                                 ("command_pattern", profile.command_pattern,
                                  pattern_problem(profile.command_pattern))):
        if problem:
            raise ConfigError(f"{prefix}{name}: {problem}, got {value!r}")


def _check_relative_budget(key: str, budget: float, budget_type: str, verb: str) -> None:
    """A relative budget is a fraction of the base network: above 1 it is refused. `verb` starts
    the advice (`set ` for `search.budget`, nothing for a device's: the messages as they were)."""
    if budget_type == "relative" and budget > 1.0:
        raise ConfigError(f"{key}: a relative budget is a fraction of the base network, must be <= 1, "
                          f"got {budget!r} ({verb}search.budget_type: absolute for a value in the metric's unit)")


def check_cuda(cfg: Config, profile_key: str = "profile.backend") -> None:
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


def check_devices(raw: Any, cfg: Config) -> dict[str, DeviceConfig]:
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
                raise ConfigError(f"{key}.{sub}: unknown key{lookalike(sub)} (known: {', '.join(DEVICE_KEYS)})")
        if "budget" not in entry:
            raise ConfigError(f"{key}.budget: required (this device's search.budget, in search.budget_type's "
                              f"terms)")
        if "profile" not in entry:
            raise ConfigError(f"{key}.profile: required: the profile keys this device changes, e.g. "
                              f"{{backend: command, command: ...}} (`{{}}` for none)")
        budget = coerce(f"{key}.budget", float, entry["budget"])
        check_bounds(f"{key}.budget", budget, entry["budget"], field_bounds(SearchConfig, "budget"))
        _check_relative_budget(f"{key}.budget", budget, cfg.search.budget_type, "")
        overrides = entry["profile"]
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{key}.profile: must be a mapping of profile keys, got {overrides!r}"[:300])
        merged = build(ProfileConfig, {**to_dict(cfg.profile), **overrides}, f"{key}.profile.")
        _check_command(f"{key}.profile.", merged)
        if merged.backend == "torch-cuda" and cfg.profile.backend != "torch-cuda":
            check_cuda(dataclasses.replace(cfg, profile=merged), f"{key}.profile.backend")
        devices[name] = DeviceConfig(budget, {k: getattr(merged, k) for k in overrides})
    return devices
