"""The Prefect flow on a user's own network: it runs, a rerun is all Cached, and editing the model's
file re-runs exactly the stages that build the model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.flows.test_pipeline import STAGES, cli, result, tiny_data, tiny_params
from tests.test_layout import project_copy


@pytest.mark.slow
def test_the_flow_adapts_a_users_network_and_follows_edits_of_its_code(tmp_path: Path):
    code = project_copy(tmp_path / "code")
    run = tmp_path / "run"
    (run / "mine").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "mymodels.py", run / "mine" / "mymodels.py")
    params = tiny_params(str(tiny_data(tmp_path / "data")))
    params["model"].update({"name": "mymodels:TinyResNet", "path": "mine", "granularity": 4, "kwargs": {"width": 8}})
    (run / "tiny.yaml").write_text(yaml.safe_dump(params))

    first = result(cli(code, run, "flow", "--params", "tiny.yaml", "--json"))
    assert first["states"] == dict.fromkeys(STAGES, "Completed")
    assert first["metrics"]["supernet"]["dimensions"] >= 4  # the traced network's coupled groups
    again = result(cli(code, run, "flow", "--params", "tiny.yaml", "--json"))
    assert again["states"] == dict.fromkeys(STAGES, "Cached")

    with (run / "mine" / "mymodels.py").open("a") as module:
        module.write("\n# the user edits their model's file\n")
    edited = result(cli(code, run, "flow", "--params", "tiny.yaml", "--json"))
    assert edited["states"] == {"prepare": "Cached", **dict.fromkeys(STAGES[1:], "Completed")}
