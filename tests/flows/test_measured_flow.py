"""The Prefect flow's latency search measures its answer on the device and goes on while it is over
the budget, inside the same flow run; the evaluate stage then finds the final network within the
budget, and a second run of the same params times nothing again (every stage Cached).

The device is a fake patched into the flow's process (the flow runs its tasks in threads there),
`tests.presets.device_over_once`: its first timing of an answer says 0.96 of the base (over the
budget whatever the table's answer), later ones agree with the table, so the test does not depend
on this machine's timings or on where the table's answer lands under the budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netadapt.arch import Architecture
from tests.flows.test_pipeline import STAGES, flow_script, tiny_data, tiny_params

BUDGET, FIRST = 0.8, 0.96

SCRIPT = r'''
import json
import sys
from pathlib import Path

import logging

import netadapt.eta as eta
import netadapt.resources.metric as metric
import netadapt_flows.flow as ff
from tests.presets import device_over_once

eta.EVERY = 0.0  # every progress line at once (off a terminal: log lines), as a step past 10 s logs them
progress = []
handler = logging.Handler()
handler.emit = lambda record: progress.append(record.getMessage())
logging.getLogger("netadapt").addHandler(handler)
logging.getLogger("netadapt").setLevel(logging.INFO)

timed = []
metric.network_timings = device_over_once(Path("artifacts/profile/lut.csv"), float(sys.argv[1]), timed)
first = ff.netadapt_flow(params_file="tiny.yaml")
timed_first = len(timed)
second = ff.netadapt_flow(params_file="tiny.yaml")
print(json.dumps({"first": first, "second": second, "timed_first": timed_first,
                  "timed_second": len(timed) - timed_first,
                  "candidates": [line for line in progress if line.startswith("search candidates: ")]}))
'''


@pytest.mark.slow
def test_the_flow_searches_on_until_its_answer_measures_within_the_budget(tmp_path: Path):
    params = tiny_params(str(tiny_data(tmp_path / "data")))
    params["search"].update({"metric": "latency", "budget": BUDGET, "measure_rounds": 2})
    out = flow_script(tmp_path, params, SCRIPT, str(FIRST))
    run = tmp_path / "run"
    first, second = out["first"], out["second"]

    assert first["states"] == dict.fromkeys(STAGES, "Completed")
    assert out["candidates"] and all("ETA" in line for line in out["candidates"]), \
        "the mapped candidates of an iteration report their progress with an ETA"
    search = first["metrics"]["search"]
    checks = search["checks"]
    assert [c["measured"] for c in checks][:1] == [FIRST] and checks[-1]["measured"] <= BUDGET
    assert search["continuations"] == len(checks) - 1 == 1, "searched on once, to a table budget scaled down"
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
