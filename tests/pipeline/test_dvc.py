"""The DVC pipeline in a temporary copy of the repository, with a tiny preset: `dvc repro` runs every
stage; a budget change re-runs search, finetune and evaluate only; `dvc exp run -S` works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_layout import project_copy, tool_env

TINY = {
    "model": {"name": "plain_cnn", "granularity": 4},
    "profile": {"warmup": 1, "repeats": 3, "network_repeats": 5, "fidelity_samples": 2,
                "max_error": 100},  # a tiny net timed briefly is noisy: the threshold has its own tests
    "supernet": {"epochs": 1, "batch_size": 64, "group_size": 8},
    "search": {"metric": "macs", "budget": 0.7, "candidates": 3, "bn_recalibration_batches": 1, "eval_batches": 2,
               "initial_reduction": 0.1, "layers_per_candidate": 1},
    "finetune": {"epochs": 1},
    "evaluate": {"latency_repeats": 5},
}


def dvc(repo: Path, *args: str) -> str:
    exe = str(Path(sys.executable).with_name("dvc"))
    done = subprocess.run([exe, *args], cwd=repo, env=tool_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def set_params(repo: Path, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.mark.slow
def test_budget_change_reruns_only_what_it_affects(tmp_path: Path):
    repo = project_copy(tmp_path / "repo")
    set_params(repo, **TINY)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], cwd=repo, check=True)

    first = dvc(repo, "repro")
    assert ran(first) == {"prepare", "profile", "supernet", "search", "finetune", "evaluate"}
    assert json.loads(dvc(repo, "status", "--json")) == {}

    arch_before = (repo / "artifacts" / "search" / "arch.json").read_text()
    first_result = json.loads((repo / "metrics" / "search.json").read_text())
    tighter = round(0.9 * first_result["resource_estimated"] / first_result["base_resource"], 4)  # must change
    set_params(repo, search={"budget": tighter})
    status = json.loads(dvc(repo, "status", "--json"))
    assert set(status) == {"search"}, "only search reads search.budget; its outputs feed the rest"
    second = dvc(repo, "repro")
    assert (repo / "artifacts" / "search" / "arch.json").read_text() != arch_before
    assert ran(second) == {"search", "finetune", "evaluate"}
    metrics = json.loads((repo / "metrics" / "search.json").read_text())
    assert metrics["budget_fraction"] == pytest.approx(tighter) and metrics["reused_iterations"] >= 1

    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "0.4"], cwd=repo, check=True)
    looser = round((1 + tighter) / 2, 4)
    out = dvc(repo, "exp", "run", "-S", f"search.budget={looser}")
    assert ran(out) == {"search", "finetune", "evaluate"}
    assert json.loads((repo / "metrics" / "search.json").read_text())["budget_fraction"] == pytest.approx(looser)
