"""The Prefect flow's latency search measures its answer on the device and goes on while it is over
the budget, inside the same flow run; the evaluate stage then finds the final network within the
budget, and a second run of the same params times nothing again (every stage Cached).

The device is a fake patched into the flow's process (the flow runs its tasks in threads there): it
measures a network as the lookup table estimates it plus a constant 0.05 of the base, a per-call
cost the table misses, so the table's own answer is over the budget by construction and the test
does not depend on this machine's timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netadapt.arch import Architecture
from tests.flows.test_pipeline import STAGES, cli_env, tiny_data, tiny_params
from tests.test_layout import project_copy

BUDGET, OFFSET = 0.8, 0.05

SCRIPT = r'''
import json
import sys

import netadapt.stages as st
import netadapt_flows.pipeline as fp
from netadapt.resources.lookup_table import LatencyModel, LatencyTable

offset = float(sys.argv[1])
timed = []


def device(supernet, archs, settings, seed=0):
    """Whole networks as the table estimates them, plus `offset` of the base for any other."""
    table = LatencyModel(supernet, LatencyTable.load("artifacts/profile/lut.csv"))
    timed.append([a.widths_json() for a in archs])
    base = table.estimate(archs[0])
    return [1.0] + [table.estimate(a) / base + offset for a in archs[1:]]


st.network_latencies = device
first = fp.netadapt_flow(params_file="tiny.yaml")
timed_first = len(timed)
second = fp.netadapt_flow(params_file="tiny.yaml")
print(json.dumps({"first": first, "second": second, "timed_first": timed_first,
                  "timed_second": len(timed) - timed_first}))
'''


@pytest.mark.slow
def test_the_flow_searches_on_until_its_answer_measures_within_the_budget(tmp_path: Path):
    code = project_copy(tmp_path / "code")
    run = tmp_path / "run"
    run.mkdir()
    params = tiny_params(str(tiny_data(tmp_path / "data")))
    params["search"].update({"metric": "latency", "budget": BUDGET, "measure_rounds": 2})
    (run / "tiny.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(OFFSET)], cwd=run, capture_output=True, text=True,
                          timeout=600, env=cli_env(code, PREFECT_HOME=str(tmp_path / "prefect-home")))
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    first, second = out["first"], out["second"]

    assert first["states"] == dict.fromkeys(STAGES, "Completed")
    search = first["metrics"]["search"]
    checks = search["checks"]
    assert checks[0]["measured"] > BUDGET, "the table's answer is over by the offset it misses"
    assert checks[-1]["measured"] <= BUDGET * (1 + 1e-9), "searched on until it measures within"
    assert search["continuations"] == len(checks) - 1 >= 1
    assert search["resource_estimated"] <= search["budget_searched"] < search["budget"]
    assert search["iteration_states"] and set(search["iteration_states"]) == {"Completed"}
    answer = Architecture.from_dict(json.loads((run / "artifacts" / "search" / "arch.json").read_text()))
    assert checks[-1]["arch"] == answer.widths_json(), "the answer is the last network checked"
    history = json.loads((run / "artifacts" / "search" / "history.json").read_text())
    assert history["checks"] == checks

    evaluate = first["metrics"]["evaluate"]
    assert evaluate["budget_met"] is True
    assert evaluate["measured_over_budget"] == pytest.approx(checks[-1]["measured"] / BUDGET)
    assert out["timed_first"] == len(checks) + 1, "each check once, then evaluate once"

    assert second["states"] == dict.fromkeys(STAGES, "Cached")
    assert out["timed_second"] == 0, "a cached search is not measured again"
    assert second["metrics"]["search"]["checks"] == checks
