"""Named devices (`devices` in params.yaml): parsed and checked at config time, each device's config
(`Config.for_device`) and paths (`Paths.for_device`), its stamps, and dvc.yaml's foreach stages
matching them. The CLI and pipeline runs are in tests/e2e/test_devices.py, tests/pipeline/test_dvc.py,
tests/flows/test_devices_flow.py and tests/tracking/test_tracking.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from netadapt import layout, stamps
from netadapt.config import Config, SearchConfig, flatten, load_config, parse_config, to_dict
from netadapt.errors import ConfigError
from netadapt.layout import DEVICE_STAGES, STAGE_PARAMS, Paths
from tests.conftest import REPO

PHONE = ["devices.phone.budget=0.3", "devices.phone.profile={backend: command, threads: 2}"]


def test_no_devices_by_default_and_a_device_overrides_profile_keys_and_the_budget():
    assert load_config(REPO / "params.yaml").devices == {}
    cfg = load_config(REPO / "params.yaml", PHONE + ["devices.box.budget=1", "devices.box.profile={}"])
    assert list(cfg.devices) == ["phone", "box"]
    phone = cfg.for_device("phone")
    assert (phone.profile.backend, phone.profile.threads, phone.search.budget) == ("command", 2, 0.3)
    assert phone.profile.repeats == cfg.profile.repeats and phone.supernet == cfg.supernet
    assert cfg.for_device("box").profile == cfg.profile and cfg.for_device("box").search.budget == 1.0
    assert parse_config(to_dict(cfg)) == cfg, "round-trips through plain data (the flow's params)"
    assert flatten(cfg)["devices.phone.profile.threads"] == 2
    # the plain pipeline's sections, hence its stamps and dvc.yaml params, do not see the devices
    assert cfg.section_digest("profile", "search") == load_config(REPO / "params.yaml").section_digest("profile",
                                                                                                       "search")
    with pytest.raises(ConfigError, match=r"^devices.tablet: no such device in the params \(known: box, phone\)"):
        cfg.for_device("tablet")


@pytest.mark.parametrize("overrides, message", [
    (["devices.Phone.budget=0.3"], r"^devices.Phone: a device name must be 1-40 lowercase"),
    (["devices={1: {budget: 0.3, profile: {}}}"], r"^devices.1: a device name"),
    (["devices.a.b.budget=0.3"], r"^devices.a.b: unknown key \(known: budget, profile\)"),
    (["devices=null"], r"^devices: must be a mapping of device names"),
    (["devices.phone=3"], r"^devices.phone: must be a mapping with `budget` and `profile`"),
    (["devices.phone.profile={}"], r"^devices.phone.budget: required"),
    (["devices.phone.budget=0.3"], r"^devices.phone.profile: required"),
    (["devices.phone.budget=0.3", "devices.phone.profile={thread: 2}"],
     r"^devices.phone.profile.thread: unknown key \(known: allow_mismatch, backend"),
    (["devices.phone.budget=0.3", "devices.phone.profile={threads: 0}"], r"^devices.phone.profile.threads: must be >= 1"),
    (["devices.phone.budget=0.3", "devices.phone.profile={backend: tpu}"], r"^devices.phone.profile.backend: must be one"),
    (["devices.phone.budget=0.3", "devices.phone.profile={command: 'adb shell bench'}"],
     r"^devices.phone.profile.command: must contain \{model\}"),
    (["devices.phone.budget=0.3", "devices.phone.profile={command_pattern: 'ms'}"],
     r"^devices.phone.profile.command_pattern: "),
    (["devices.phone.budget=0", "devices.phone.profile={}"], r"^devices.phone.budget: must be > 0"),
    (["devices.phone.budget=1.5", "devices.phone.profile={}"], r"^devices.phone.budget: a relative budget"),
    (["devices.phone.budget=yes", "devices.phone.profile={}"], r"^devices.phone.budget: must be a number"),
    (["devices.phone.budget=0.3", "devices.phone.profile=[]"], r"^devices.phone.profile: must be a mapping"),
])
def test_bad_devices_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "params.yaml", overrides)


def test_an_absolute_budget_per_device():
    cfg = load_config(REPO / "params.yaml", ["search.budget_type=absolute", "search.budget=5.0",
                                             "devices.phone.budget=20", "devices.phone.profile={}"])
    assert cfg.for_device("phone").search.budget == 20.0


def test_a_device_has_its_own_outputs_beside_the_shared_inputs():
    p = Paths(Path("a"), Path("m"), Path("pl"))
    d = p.for_device("phone")
    assert (d.prepared, d.supernet) == (p.prepared, p.supernet), "one super-network for every device"
    assert d.lut == Path("a/devices/phone/profile/lut.csv") and d.search == Path("a/devices/phone/search")
    assert d.final == Path("a/devices/phone/finetune/model.pt")
    assert d.report("search") == Path("a/devices/phone/reports/search.json")
    assert d.metrics_file("search") == Path("m/devices/phone/search.json")
    assert d.progress("finetune") == Path("a/devices/phone/progress/finetune.pt")
    assert d.plots == Path("pl/devices/phone") and d.artifacts == p.artifacts
    assert p.for_device("") is p
    with pytest.raises(ValueError):
        d.for_device("box")


def test_the_folders_cross_a_task_boundary_and_come_back_as_the_same_paths():
    p = Paths(Path("a"), Path("m"), Path("pl"))
    assert p.folders() == {"artifacts": "a", "metrics": "m", "plots": "pl"}
    assert Paths.from_folders(p.folders()) == p
    assert Paths.from_folders(p.folders(), "phone") == p.for_device("phone")
    with pytest.raises(ValueError):
        p.for_device("phone").folders()


def test_device_stamps_are_their_own(tmp_path: Path):
    cfg = load_config(REPO / "params.yaml", ["devices.phone.budget=0.5", "devices.phone.profile={}"])
    p = Paths(tmp_path / "a", tmp_path / "m", tmp_path / "p")
    d = p.for_device("phone")
    assert stamps.stage_key("search", cfg.for_device("phone"), d) != stamps.stage_key("search", cfg, p), \
        "same settings, other device: another key"
    assert stamps.stamp_path("search", "k", d) == tmp_path / "a" / "devices" / "phone" / ".stamps" / "search" / "k.json"
    outputs = {x.relative_to(tmp_path).as_posix() for x in layout.stage_outputs("evaluate", d)}
    assert outputs == {"a/devices/phone/reports/evaluate.json", "m/devices/phone/evaluate.json",
                       "p/devices/phone/tradeoff.png"}


def test_dvc_device_stages_match_the_stamps_and_read_only_their_device():
    """dvc.yaml's foreach stages declare what the device's stamps cover; a device stage lists its own
    device's keys and no other section than its stage's; the device search lists every search key but
    the budget (so a new search key cannot be forgotten there)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    cfg = load_config(REPO / "params.yaml", ["devices.phone.budget=0.5", "devices.phone.profile={}"])
    d = Paths().for_device("phone")
    names = lambda entries: {(next(iter(e)) if isinstance(e, dict) else e).replace("${key}", "phone")
                             for e in entries}
    for stage in DEVICE_STAGES:
        do = spec[f"device-{stage}"]
        assert do["foreach"] == "${devices}"
        do = do["do"]
        assert do["cmd"].endswith(f"netadapt_flows.cli {stage} --device ${{key}}")
        declared = names(do.get("outs", [])) | names(do.get("metrics", [])) | names(do.get("plots", []))
        assert {x.as_posix() for x in layout.stage_outputs(stage, d)} == declared, stage
        deps = {x for x in names(do["deps"]) if not x.startswith(("netadapt", "${model.path}"))}  # code
        assert deps <= {x.as_posix() for x in layout.stage_inputs(stage, cfg, d)}, stage
        params = names(do["params"])
        assert {x.split(".")[0] for x in params} <= set(STAGE_PARAMS[stage]) | {"devices"}, stage
        assert {x for x in params if x.startswith("devices.")} <= {"devices.phone.profile", "devices.phone.budget"}
        assert "search.budget" not in params and "search" not in params, "the device's budget replaces it"
    search = names(spec["device-search"]["do"]["params"])
    assert {f"search.{k}" for k in to_dict(SearchConfig()) if k != "budget"} <= search
    assert "devices.phone.budget" in search and "devices.phone.budget" not in names(
        spec["device-profile"]["do"]["params"]), "a budget change does not re-profile"


def test_no_devices_is_a_config_without_them():
    assert Config().devices == {} and "devices" not in {k.split(".")[0] for k in flatten(Config())}


def test_a_tables_context_records_the_command_template(tmp_path: Path):
    """`lut.json` names the device a `command` table was measured on; another template is a mismatch,
    unless one side does not know it (a table written before it was recorded)."""
    import json

    import pandas as pd

    from netadapt.errors import NetAdaptError
    from netadapt.resources.lookup_table import KEY_FIELDS, LatencyTable, TableContext

    context = TableContext.current("command", 1, 1, "{python} bench.py {model}")
    assert context.command == "{python} bench.py {model}"
    assert TableContext.current("torch-cpu", 1, 1, "{python} bench.py {model}").command == ""
    table = LatencyTable(context, pd.DataFrame(columns=KEY_FIELDS + ["latency_ms", "p10_ms", "p90_ms"]))
    table.save(tmp_path / "lut.csv")
    assert json.loads((tmp_path / "lut.json").read_text())["context"]["command"] == "{python} bench.py {model}"
    loaded = LatencyTable.load(tmp_path / "lut.csv")
    loaded.check(TableContext.current("command", 1, 1, "{python} bench.py {model}"))
    loaded.check(TableContext.current("command", 1, 1))  # the template not known: not compared
    with pytest.raises(NetAdaptError, match="command: table has"):
        loaded.check(TableContext.current("command", 1, 1, "adb shell bench {model}"))
    meta = json.loads((tmp_path / "lut.json").read_text())
    del meta["context"]["command"]
    (tmp_path / "lut.json").write_text(json.dumps(meta))
    LatencyTable.load(tmp_path / "lut.csv").check(context)  # an older table loads
