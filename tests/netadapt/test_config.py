from pathlib import Path

import pytest

from netadapt.config import Config, apply_overrides, flatten, load_config, parse_config
from netadapt.errors import ConfigError
from tests.conftest import REPO


def billion_laughs(levels: int = 9) -> str:
    """The alias bomb of issue 27: 9 levels of 9 aliases each, ~9**9 values expanded, a few hundred bytes."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


BOMB_OVERRIDE = "search.x={a: &a [1,1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], " \
                "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], " \
                "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}"


def test_repo_params_parse_into_typed_sections():
    cfg = load_config(REPO / "params.yaml")
    assert isinstance(cfg, Config)
    assert cfg.data.name == "fashion-mnist-t10k"
    assert isinstance(cfg.search.budget, float) and 0 < cfg.search.budget <= 1


def test_repo_params_set_every_key_explicitly():
    """params.yaml documents every key: the defaults in code and the file cannot drift apart."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(flatten(raw)) == set(flatten(Config()))
    assert flatten(parse_config(raw)) == flatten(Config())


def test_overrides_parse_values_as_yaml_and_set_nested_keys():
    raw = apply_overrides({"search": {"budget": 0.5}}, ["search.budget=0.25", "model.name=plain_cnn"])
    assert raw == {"search": {"budget": 0.25}, "model": {"name": "plain_cnn"}}
    assert parse_config(raw).search.budget == 0.25


def test_ints_are_accepted_for_floats_but_not_bools_for_ints():
    assert parse_config({"search": {"budget": 1}}).search.budget == 1.0
    with pytest.raises(ConfigError, match=r"^seed: must be an integer, got True$"):
        parse_config({"seed": True})


def test_section_digest_changes_only_with_its_sections():
    a = parse_config({})
    b = parse_config({"search": {"budget": 0.3}})
    assert a.section_digest("supernet", "model") == b.section_digest("supernet", "model")
    assert a.section_digest("search") != b.section_digest("search")


def test_missing_params_file_names_it(tmp_path: Path):
    with pytest.raises(ConfigError, match="nope.yaml: params file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("sampling, batch, group, groups", [("sandwich", 128, 128, 1), ("sandwich", 32, 16, 2),
                                                            ("random", 64, 64, 1)])
def test_too_few_sample_groups_for_ordered_dropout_are_refused(sampling, batch, group, groups):
    """One group trains only the full network; two under sandwich only the largest and smallest."""
    raw = {"supernet": {"sampling": sampling, "batch_size": batch, "group_size": group}}
    with pytest.raises(ConfigError, match=rf"^supernet.group_size: {group} leaves {groups} group\(s\)"):
        parse_config(raw)


def test_enough_sample_groups_or_plain_training_are_accepted():
    parse_config({"supernet": {"sampling": "sandwich", "batch_size": 48, "group_size": 16}})
    parse_config({"supernet": {"sampling": "random", "batch_size": 32, "group_size": 16}})
    parse_config({"supernet": {"sampling": "none", "batch_size": 32, "group_size": 32}})


@pytest.mark.parametrize("raw, message", [
    ({"search": {"budget": 1.5}},
     "search.budget: a relative budget is a fraction of the base network, must be <= 1, got 1.5 "
     "(set search.budget_type: absolute for a value in the metric's unit)"),
    ({"devices": {"phone": {"budget": 1.5, "profile": {}}}},
     "devices.phone.budget: a relative budget is a fraction of the base network, must be <= 1, got 1.5 "
     "(search.budget_type: absolute for a value in the metric's unit)"),
    ({"devices": {"phone": {"budget": -1, "profile": {}}}}, "devices.phone.budget: must be > 0, got -1"),
    ({"profile": {"command": "adb shell bench"}},
     "profile.command: must contain {model}, the path of the ONNX graph to time, got 'adb shell bench'"),
    ({"devices": {"phone": {"budget": 0.3, "profile": {"command": "adb shell bench"}}}},
     "devices.phone.profile.command: must contain {model}, the path of the ONNX graph to time, got 'adb shell bench'"),
])
def test_a_device_obeys_the_rules_of_the_sections_it_overrides(raw, message):
    """One rule each for the budget and the command backend, named by the key it is about."""
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert str(caught.value) == message


def test_the_first_problem_in_schema_order_is_the_one_reported():
    """Type and bounds of every section first, then the rules across fields (the devices last)."""
    raw = {"supernet": {"batch_size": 30, "group_size": 16, "lr": -1}, "search": {"budget": 2.0},
           "devices": {"phone": {"budget": 0}}}
    with pytest.raises(ConfigError, match=r"^supernet.lr: must be > 0, got -1$"):
        parse_config(raw)
    raw["supernet"].pop("lr")
    with pytest.raises(ConfigError, match=r"^supernet.group_size: must divide supernet.batch_size \(30\), got 16$"):
        parse_config(raw)
    raw.pop("supernet")
    with pytest.raises(ConfigError, match=r"^search.budget: a relative budget"):
        parse_config(raw)
    raw.pop("search")
    with pytest.raises(ConfigError, match=r"^devices.phone.profile: required"):
        parse_config(raw)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path):
    """Issue 27: an 8.5 KB params file of nested aliases ran 207 s to a MemoryError (3.4 GB), a 329-character
    `-S` gave an 80 MB error line. Refused, naming the file (the key), having allocated under 100 MB."""
    import tracemalloc

    (tmp_path / "params.yaml").write_text(billion_laughs(12))
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match=rf"^{tmp_path}/params.yaml: line 5: its aliases expand to over 10000"):
            load_config(tmp_path / "params.yaml")
        with pytest.raises(ConfigError, match=r"^search.x: cannot parse override value .* alias bomb") as refused:
            load_config(REPO / "params.yaml", [BOMB_OVERRIDE])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20 and len(str(refused.value)) < 400


def test_aliases_of_a_reasonable_size_are_accepted():
    raw = apply_overrides({}, ["search={budget: &b 0.25, initial_reduction: *b}"])
    assert parse_config(raw).search.initial_reduction == 0.25


def test_the_params_may_come_from_a_pipe(tmp_path: Path):
    """`--params <(cat params.yaml)`: /dev/fd/N is no regular file; it said "not found"."""
    import os

    read, write = os.pipe()
    os.write(write, (REPO / "params.yaml").read_bytes())
    os.close(write)
    try:
        assert load_config(f"/dev/fd/{read}") == load_config(REPO / "params.yaml")
        # `netadapt run` and the flow read the params again for each stage: the pipe is empty by then
        assert load_config(f"/dev/fd/{read}", ["seed=3"]).seed == 3
    finally:
        os.close(read)
    with pytest.raises(ConfigError, match="is a folder, not a params file"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match=r"cannot read the params file \(File name too long\)"):
        load_config(tmp_path / ("p" * 300))
