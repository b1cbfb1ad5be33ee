"""The Prefect flow with two named devices: after the shared prepare and supernet, a `netadapt-device`
subflow per device (its profile, search, finetune, evaluate); then one device's budget changes and
only that device's search, finetune and evaluate run again, everything else comes back Cached. Both
flow runs share one process (one ephemeral API server) on a snapshot of the code, tracking off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.flows.test_pipeline import STAGES, flow_script, tiny_data, tiny_params

# (the phone's own table, calibrated on its own network timings; its units, timed as the host's, come
# from the host's unit cache: a short test)
DEVICES = {"phone": {"budget": 0.8, "profile": {"network_repeats": 4}}, "box": {"budget": 0.6, "profile": {}}}
DEVICE_STAGES = ["profile", "search", "finetune", "evaluate"]

SCRIPT = r'''
import json
import netadapt_flows.flow as ff
import netadapt_flows.reporting as fr

first = ff.netadapt_flow(params_file="tiny.yaml")
search = first["devices"]["phone"]["metrics"]["search"]
tighter = round(0.9 * search["resource_estimated"] / search["base_resource"], 4)
second = ff.netadapt_flow(params_file="tiny.yaml", overrides=[f"devices.phone.budget={tighter}"])
print(json.dumps({"first": first, "second": second, "tighter": tighter, "lines": fr.summary_lines(second)}))
'''


@pytest.mark.slow
def test_a_subflow_per_device_and_a_budget_change_reruns_only_that_devices_branch(tmp_path: Path):
    params = tiny_params(str(tiny_data(tmp_path / "data")))
    params["devices"] = DEVICES  # phone, then box
    out = flow_script(tmp_path, params, SCRIPT)
    run = tmp_path / "run"
    first, second = out["first"], out["second"]

    assert first["states"] == dict.fromkeys(STAGES, "Completed")
    assert list(first["devices"]) == ["phone", "box"], "in the params' order"
    for name in DEVICES:
        assert first["devices"][name]["states"] == dict.fromkeys(DEVICE_STAGES, "Completed"), name
        own = run / "artifacts" / "devices" / name
        assert (own / "profile" / "lut.csv").is_file() and (own / "finetune" / "model.pt").is_file()
        assert {p.parent.name for p in (own / ".stamps").glob("*/*.json")} == set(DEVICE_STAGES)
        assert (run / "metrics" / "devices" / name / "evaluate.json").is_file()
        assert first["devices"][name]["metrics"]["search"]["budget_fraction"] == pytest.approx(DEVICES[name]["budget"])
    # a candidate's score does not depend on the device: the second device finds the first one's
    assert first["devices"]["box"]["metrics"]["search"]["candidates_cached"] >= 1

    assert second["states"] == dict.fromkeys(STAGES, "Cached")
    assert second["devices"]["box"]["states"] == dict.fromkeys(DEVICE_STAGES, "Cached")
    assert second["devices"]["phone"]["states"] == {"profile": "Cached", "search": "Completed",
                                                    "finetune": "Completed", "evaluate": "Completed"}
    phone = second["devices"]["phone"]["metrics"]["search"]
    assert phone["budget_fraction"] == pytest.approx(out["tighter"])
    assert "Cached" in phone["iteration_states"], "the iterations it shares with the looser budget"
    assert json.loads((run / "artifacts" / "devices" / "phone" / "reports" / "search.json").read_text())[
        "budget_fraction"] == pytest.approx(out["tighter"])
    labels = [line.split()[:2] for line in out["lines"]]
    assert ["search@phone", "Completed"] in labels and ["evaluate@box", "Cached"] in labels
