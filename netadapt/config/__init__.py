"""Typed configuration: `params.yaml` parsed once, at the edge, into frozen dataclasses.

Every stage reads one section (`data`, `model`, `profile`, `supernet`, `search`, `finetune`,
`evaluate`) plus `seed`; `tracking` configures MLflow. `devices` names more target devices, each with
the `profile` keys it changes and its own budget (`DeviceConfig`): `Config.for_device(name)` is the
config that device's profile, search, finetune and evaluate stages read.
Validation happens here, before any work:
an unknown key, a wrong type or an out-of-range value raises `ConfigError` with a one-line message
naming the full key, e.g. ``search.budget: must be > 0, got -1``.

- `schema`: the sections and each field's bounds (the single place that says what a valid value is);
- `parsing`: the generic typed parser (types, finite floats, bounds, short messages);
- `rules`: rules across fields, the CUDA check and the `devices` section;
- `presets`: `search.preset`'s values for the V1 keys the params leave unset (before the typed parse);
- `loading`: the strict YAML reader, `-S` overrides, `parse_config` and `load_config`.

Checks that need more than the params (the model's widths, a checkpoint's content, the data) run
in the stage before its work: `netadapt.models.checks.check_model_widths`, the others where the
input is read.
"""

from netadapt.config.loading import apply_overrides, load_config, parse_config
from netadapt.config.rules import batch_split_problem
from netadapt.config.schema import (
    MIN_GROUPS, Config, DataConfig, DeviceConfig, EvaluateConfig, FinetuneConfig, ModelConfig,
    ProfileConfig, SearchConfig, SupernetConfig, TrackingConfig, flatten, to_dict,
)

__all__ = [
    "Config", "DataConfig", "ModelConfig", "ProfileConfig", "SupernetConfig", "SearchConfig", "FinetuneConfig",
    "EvaluateConfig", "TrackingConfig", "DeviceConfig", "MIN_GROUPS", "batch_split_problem",
    "load_config", "parse_config", "apply_overrides", "to_dict", "flatten",
]
