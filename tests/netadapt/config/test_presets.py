"""`search.preset`: the V1 scale keys a params file leaves unset, filled at the config edge."""

from __future__ import annotations

import typing

import pytest
import yaml

from netadapt.config import Config, load_config, parse_config, to_dict
from netadapt.config.presets import PRESETS, SELECTORS, filled_keys
from netadapt.config.schema import SearchConfig
from netadapt.errors import ConfigError
from netadapt.layout import STAGES
from tests.conftest import REPO

REFERENCE = {"search": {"algorithm": "netadapt", "preset": "netadapt-reference"}}


def scale(cfg: Config) -> dict:
    """The values a preset decides, as the typed config holds them."""
    return {f"{section}.{key}": getattr(getattr(cfg, section), key)
            for section, keys in filled_keys().items() for key in keys}


def test_the_reference_preset_is_exactly_the_reference_scale():
    """denru01/netadapt's MobileNet script: `-st 500` steps of batch 128, `-lr 0.001`, `-irr 0.025`,
    `-rd 0.96`; train.py's 150 long-term epochs; and a plainly trained start network."""
    assert scale(parse_config(REFERENCE)) == {
        "search.short_term_steps": 500, "search.train_batch_size": 128, "search.lr": 0.001,
        "search.long_term_epochs": 150, "search.initial_reduction": 0.025, "search.decay": 0.96,
        "supernet.sampling": "none"}


def test_quick_is_the_default_and_the_schemas_own_defaults():
    """`quick` changes nothing for params that do not name a preset: its values are the defaults."""
    assert parse_config({}).search.preset == "quick"
    assert scale(Config()) == {f"{s}.{k}": v for s, values in PRESETS["quick"].items() for k, v in values.items()}
    assert parse_config({"search": {"preset": "quick"}}) == parse_config({}) == Config()
    assert typing.get_args(typing.get_type_hints(SearchConfig)["preset"]) == tuple(PRESETS)
    assert all({s: tuple(v) for s, v in values.items()} == filled_keys() for values in PRESETS.values()), \
        "every preset fills the same keys"


def test_an_explicit_key_beats_the_preset_and_null_leaves_it_to_the_preset():
    cfg = parse_config({"search": {**REFERENCE["search"], "short_term_steps": 20, "decay": None},
                        "supernet": {"sampling": "sandwich"}})
    assert cfg.search.short_term_steps == 20 and cfg.supernet.sampling == "sandwich"  # set: kept
    assert cfg.search.decay == 0.96 and cfg.search.train_batch_size == 128  # null or absent: the preset's


def test_an_unknown_preset_is_one_line_naming_the_key_and_the_known_names():
    for name in ("fast", 3, ["quick"]):
        with pytest.raises(ConfigError, match=r"^search\.preset: unknown preset .+ \(known: quick, "
                                              r"netadapt-reference\)$"):
            parse_config({"search": {"preset": name}})
    with pytest.raises(ConfigError, match=r"^search\.preset: unknown preset 'Quick'"):
        load_config(REPO / "params.yaml", ["search.preset=Quick"])


def test_the_reference_preset_is_refused_for_mcd():
    with pytest.raises(ConfigError, match=r"^search\.preset: netadapt-reference .*search\.algorithm: netadapt "
                                          r"only, got 'mcd'"):
        parse_config({"search": {"preset": "netadapt-reference"}})


def test_the_repository_params_leave_the_scale_to_the_preset():
    """params.yaml writes the preset's keys as null: `-S search.preset=...` alone switches the scale."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert all(raw[s][k] is None for s, keys in filled_keys().items() for k in keys)
    cfg = load_config(REPO / "params.yaml", ["search.algorithm=netadapt", "search.preset=netadapt-reference"])
    assert scale(cfg) == scale(parse_config(REFERENCE))


def test_resolved_values_are_ordinary_config_values():
    """The typed config holds the resolved values: re-parsing its dict (what the flow hands its
    tasks) gives it back, and a preset changes the digests that key the stages reading them."""
    cfg = parse_config(REFERENCE)
    assert parse_config(to_dict(cfg)) == cfg
    plain = parse_config({"search": {"algorithm": "netadapt"}, "supernet": {"sampling": "none"}})
    assert cfg.section_digest("supernet") == plain.section_digest("supernet")
    assert cfg.section_digest("supernet") != parse_config({"search": {"algorithm": "netadapt"}}).section_digest(
        "supernet")


def test_dvc_stages_reading_a_filled_key_list_the_preset():
    """DVC reads params.yaml as written: a stage listing a key a preset fills (or its whole section)
    lists `search.preset` too, or a preset change would leave it stale (the supernet stage's plain
    start network for V1)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    filled = {f"{s}.{k}" for s, keys in filled_keys().items() for k in keys} | set(filled_keys())
    stages = [spec[s] for s in STAGES] + [spec[s]["do"] for s in spec if s.startswith("device-")]
    for stage in stages:
        params = {next(iter(p)) if isinstance(p, dict) else p for p in stage.get("params", [])}
        if params & filled:
            assert set(SELECTORS) <= params or "search" in params, stage["cmd"]
