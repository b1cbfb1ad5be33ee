"""Search presets (`search.preset`): named values for the keys that set NetAdapt V1's scale.

- `quick` (the default): the schema's own defaults, a V1 run sized for a laptop (10 short-term
  steps of 64 images per proposal, 1 long-term epoch, dR 0.1 of the base decaying by 0.98, V1
  starting from the ordered-dropout super-network).
- `netadapt-reference`: V1 at the scale of the reference re-implementation's MobileNet script
  (denru01/netadapt, `scripts/netadapt_mobilenet-0.5mac.sh` and `train.py`): 500 short-term
  iterations of batch 128 at lr 1e-3, dR 0.025 of the base decaying by 0.96, a long-term fine-tune
  of 150 epochs (`train.py`'s own count; a stated count, not a convergence test), and a start
  network trained plainly (`supernet.sampling: none`) when no checkpoint is given. It applies to
  `search.algorithm: netadapt` only; with `mcd` it is refused (MCD's scale has keys of its own).

A preset fills a key only where the params leave it unset (absent, or `null`); a key set explicitly
wins. It is resolved on the raw mapping before the typed parse, so the `Config` (and every stage
key, stamp and MLflow param made from it) holds the resolved values as ordinary values. DVC reads
params.yaml as written: a stage whose section a preset fills lists `search.preset` among its params
in dvc.yaml (`SELECTORS`; the algorithm only decides whether the preset is refused).
"""

from __future__ import annotations

import typing
from typing import Any, get_args

from netadapt.config.parsing import shown
from netadapt.config.schema import SearchConfig
from netadapt.errors import ConfigError

DEFAULT = "quick"

# Per preset, per section, the values it gives the keys left unset.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "search": {"short_term_steps": 10, "train_batch_size": 64, "lr": 0.01, "long_term_epochs": 1,
                   "initial_reduction": 0.1, "decay": 0.98},
        "supernet": {"sampling": "sandwich"},
    },
    "netadapt-reference": {
        "search": {"short_term_steps": 500, "train_batch_size": 128, "lr": 0.001, "long_term_epochs": 150,
                   "initial_reduction": 0.025, "decay": 0.96},
        "supernet": {"sampling": "none"},  # the start network V1 adapts, trained plainly
    },
}

ONLY_FOR = {"netadapt-reference": "netadapt"}  # preset -> the one search.algorithm it applies to

# The keys that decide which values a preset fills in: a stage reading a filled section lists them.
SELECTORS = ("search.preset",)


def filled_keys() -> dict[str, tuple[str, ...]]:
    """Per section, the keys some preset fills (every preset fills the same keys)."""
    return {section: tuple(values) for section, values in PRESETS[DEFAULT].items()}


def resolve_preset(raw: Any) -> Any:
    """`raw` (a params mapping) with the keys it leaves unset given `search.preset`'s values (a new
    mapping; `raw` is left as it is). Anything malformed outside the preset itself is left for the
    typed parse to name."""
    if not isinstance(raw, dict):
        return raw
    search = raw.get("search") if isinstance(raw.get("search"), dict) else {}  # else the typed parse names it
    name = search.get("preset")
    name = DEFAULT if name is None else name
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"search.preset: unknown preset {shown(name)} (known: {', '.join(PRESETS)})")
    algorithm = search.get("algorithm", SearchConfig.algorithm)
    known = get_args(typing.get_type_hints(SearchConfig)["algorithm"])
    needed = ONLY_FOR.get(name)
    if needed and algorithm != needed and algorithm in known:
        raise ConfigError(f"search.preset: {name} is NetAdapt V1's reference scale and applies to "
                          f"search.algorithm: {needed} only, got {algorithm!r} (use search.preset: {DEFAULT})")
    out = dict(raw)
    for section, values in PRESETS[name].items():
        given = out.get(section)
        if given is not None and not isinstance(given, dict):
            continue  # the typed parse names it
        filled = dict(given or {})
        for key, value in values.items():
            if filled.get(key) is None:
                filled[key] = value
        out[section] = filled
    return out
