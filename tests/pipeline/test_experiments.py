"""The experiment sequence docs/pipeline.md gives, as written: `make run`, commit the baseline
(`git add dvc.lock metrics plots && git commit`), `make exp BUDGET=...`, `make exp-show`. The
baseline's row then carries its figures (without the commit it is all `!`: DVC reads that row from
git) and the experiment's row its own, under it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.test_dvc import TINY, bare_env, commit, dvc, set_params
from tests.test_layout import project_copy

ROOT = Path(__file__).resolve().parents[2]


def documented_commit() -> list[str]:
    """The commit command of docs/pipeline.md's experiment sequence, as a `git add` argument list."""
    text = (ROOT / "docs" / "pipeline.md").read_text()
    [paths] = re.findall(r"^git add ([^&\n]+?) && git commit", text, flags=re.M)
    return ["git", "add", *paths.split()]


def figures(row: dict) -> dict:
    """A `dvc exp show --json` row's evaluate metrics (an error entry where git has none)."""
    return row["data"]["metrics"]["metrics/evaluate.json"]


@pytest.mark.slow
def test_make_exp_show_compares_the_experiment_with_the_committed_baseline(tmp_path: Path):
    repo = project_copy(tmp_path / "repo")
    set_params(repo, **TINY)
    commit(repo, "tiny")
    (repo / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    with (repo / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("/.venv\n")
    dvc(repo, "repro", env=bare_env())  # make run
    subprocess.run(documented_commit(), cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], cwd=repo,
                   check=True)
    baseline = json.loads((repo / "metrics" / "evaluate.json").read_text())
    dvc(repo, "exp", "run", "-S", "search.budget=0.6")  # make exp BUDGET=0.6
    rows = json.loads(dvc(repo, "exp", "show", "--json"))
    [head] = [row for row in rows if row["rev"] != "workspace"]
    assert figures(head)["data"] == baseline, "the baseline's row: its figures, not '!'"
    [experiment] = [rev for group in head["experiments"] for rev in group["revs"]]
    assert experiment["data"]["params"]["params.yaml"]["data"]["search"]["budget"] == 0.6
    assert "data" in figures(experiment) and figures(experiment)["data"]["macs"] < baseline["macs"]
