"""The stage functions end to end through the CLI, on tiny data and the plain CNN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import onnx
import pytest
import torch

from netadapt import evaluation, layout, stages
from netadapt.arch import Architecture
from netadapt.resources import metric
from netadapt.resources.spread import Rounds
from netadapt.config import load_config
from netadapt.checkpoints import load_network, load_supernet
from netadapt_flows.cli import main
from tests import presets
from tests.conftest import REPO

@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[list[str], Path]:
    """Prepared, profiled and a super-network trained, on data whose classes a network tells apart."""
    root = tmp_path_factory.mktemp("stages")
    args = presets.project(root, presets.separable_data(root / "data", train=300, test=100))
    for stage in ["prepare", "profile", "supernet"]:
        assert main([stage, *args]) == 0
    return args, root


def metrics(root: Path, stage: str) -> dict:
    """Every metric of the stage's last run: its report (`metrics/<stage>.json` holds the headline ones)."""
    return json.loads((root / "a" / "reports" / f"{stage}.json").read_text())


def finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_search_finetune_evaluate(project):
    """On data a network can learn (chance: 0.1), each stage keeps what it learned while the
    resource comes down to the budget: the search's answer, the fine-tuned network and its test
    accuracy are all well above chance."""
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.5"]) == 0
    m = metrics(root, "search")
    assert m["algorithm"] == "mcd" and m["budget"] == pytest.approx(0.5 * m["base_resource"])
    assert 0 < m["resource_estimated"] <= m["budget"] < m["base_resource"]
    assert m["iterations"] >= 1 and m["reused_iterations"] == 0 and m["candidates_evaluated"] >= m["iterations"]
    assert m["holdout_acc"] >= 0.5, m
    assert finite_positive(m["seconds"])
    assert (root / "p" / "search.png").is_file() and (root / "a" / "search" / "arch.json").is_file()

    assert main(["finetune", *args]) == 0
    f = metrics(root, "finetune")
    assert f["epochs"] == 1 and f["holdout_acc"] >= 0.5 and finite_positive(f["seconds"]), f
    model, arch = load_network(root / "a" / "finetune" / "model.pt")
    onnx.checker.check_model(str(root / "a" / "finetune" / "model.onnx"))

    assert main(["evaluate", *args]) == 0
    e = metrics(root, "evaluate")
    assert 0.5 <= e["test_acc"] <= e["test_acc_top5"] <= 1, e
    assert 0 < e["base_test_acc"] <= 1, "the trade-off plot's base network: its test accuracy beside the final one's"
    assert 0 < e["macs"] <= 0.5 * e["base_macs"] and e["macs"] == pytest.approx(m["resource_estimated"])
    assert e["budget_met"] is True and e["measured_over_budget"] <= 1
    assert all(finite_positive(e[k]) for k in ("latency_measured_ms", "latency_estimated_ms",
                                                "base_latency_measured_ms"))
    assert e["latency_ratio"] == pytest.approx(e["latency_measured_ms"] / e["base_latency_measured_ms"])
    assert e["params"] == sum(p.numel() for p in model.parameters())
    x = torch.randn(2, 1, 28, 28)
    assert model(x).shape == (2, 10)


def test_a_tighter_budget_continues_the_stage_history(project):
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.6"]) == 0
    first = metrics(root, "search")
    assert main(["search", *args, "-S", "search.budget=0.4"]) == 0
    second = metrics(root, "search")
    assert second["reused_iterations"] >= 1 and second["resource_estimated"] <= second["budget"]
    assert second["candidates_evaluated"] < second["iterations"] * 3 + 1
    assert first["iterations"] <= second["iterations"]


def test_unreachable_budget_fails_before_searching(project, capsys):
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.0001"]) == 2
    err = capsys.readouterr().err
    assert "search.budget:" in err and "smallest achievable budget" in err


def test_netadapt_v1_end_to_end(project):
    args, root = project
    v1 = ["-S", "search.algorithm=netadapt", "-S", "search.short_term_steps=2", "-S", "search.long_term_epochs=1",
          "-S", "search.train_batch_size=32", "-S", "search.budget=0.6"]
    assert main(["search", *args, *v1]) == 0
    m = metrics(root, "search")
    assert m["algorithm"] == "netadapt" and m["resource_estimated"] <= m["budget"] and m["iterations"] >= 1
    history = __import__("pandas").read_csv(root / "a" / "search" / "history.csv")
    for t in range(m["iterations"]):
        changed = [sum(a != b for a, b in zip(json.loads(row.arch).values(), json.loads(row.start).values()))
                   for row in history[history.iteration == t].itertuples()]
        assert set(changed) == {1}, "V1 proposals each shrink one dimension"
    assert (root / "a" / "search" / "network.pt").is_file()
    assert main(["finetune", *args]) == 0 and main(["evaluate", *args]) == 0
    # MCD afterwards removes V1's network so finetune starts from the super-network again
    assert main(["search", *args, "-S", "search.budget=0.6"]) == 0
    assert not (root / "a" / "search" / "network.pt").exists()


def test_a_missing_v1_start_checkpoint_names_the_key(project, capsys):
    args, root = project
    assert main(["search", *args, "-S", "search.algorithm=netadapt", "-S", "search.start_checkpoint=nope.pt"]) == 2
    assert "search.start_checkpoint: nope.pt not found" in capsys.readouterr().err


def test_netadapt_run_runs_every_stage_in_order(tmp_path, capsys):
    args = presets.project(tmp_path, presets.tiny_data(tmp_path / "data", train=200, test=60, seed=3))
    assert main(["run", *args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"prepare", "profile", "supernet", "search", "finetune", "evaluate"}
    assert printed["evaluate"] == metrics(tmp_path, "evaluate")
    for stage, returned in printed.items():
        # metrics/<stage>.json: exactly the figures a reviewer compares (DESIGN.md's contract keys,
        # plus evaluate's budget verdict); the report: everything the stage returned
        headline = json.loads((tmp_path / "m" / f"{stage}.json").read_text())
        assert set(headline) == set(layout.HEADLINE_METRICS[stage]), stage
        assert metrics(tmp_path, stage) == returned and set(returned) > set(headline), stage
        assert {k: returned[k] for k in headline} == headline, stage


def test_a_code_change_or_another_device_starts_a_new_search_history(project, monkeypatch):
    """The history is replayed only for the code, torch and device that computed its scores."""
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.6"]) == 0
    assert main(["search", *args, "-S", "search.budget=0.6"]) == 0
    assert metrics(root, "search")["reused_iterations"] >= 1, "same inputs and code: replayed"
    monkeypatch.setattr(evaluation, "code_version", lambda *model: "a-changed-scorer")
    assert main(["search", *args, "-S", "search.budget=0.6"]) == 0
    assert metrics(root, "search")["reused_iterations"] == 0

    overrides = [v for flag, v in zip(args, args[1:]) if flag == "-S"]
    cfg, paths = load_config(REPO / "params.yaml", overrides), layout.Paths(root / "a", root / "m", root / "p")
    here = evaluation.search_identity(cfg, paths)
    monkeypatch.setattr(evaluation, "resolve_device", lambda name: torch.device("cuda"))
    assert evaluation.search_identity(cfg, paths) != here


@pytest.mark.parametrize("final_ms, met", [(0.40, True), (0.52, True), (0.60, False)])
def test_evaluate_checks_the_measured_latency_against_the_budget(project, monkeypatch, caplog, final_ms, met):
    """Budget 0.5 of a base measuring 1 ms, tolerance 5%: 0.52 ms passes, 0.6 ms is over."""
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.5"]) == 0 and main(["finetune", *args]) == 0
    monkeypatch.setattr(metric, "network_timings", lambda *a, **k: [Rounds.point(1.0), Rounds.point(final_ms)])
    latency = [*args, "-S", "search.metric=latency", "-S", "search.budget=0.5"]
    assert main(["evaluate", *latency]) == 0
    e = metrics(root, "evaluate")
    assert e["budget_met"] is met and e["budget"] == pytest.approx(0.5)
    assert e["measured_over_budget"] == pytest.approx(final_ms / 0.5)
    assert ("OVER the budget" in caplog.text) is not met
    assert main(["evaluate", *latency, "-S", "evaluate.fail_over_budget=true"]) == (0 if met else 3)
    assert metrics(root, "evaluate")["budget_met"] is met, "metrics are written before the non-zero exit"


def test_evaluate_checks_macs_budgets_exactly(project):
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.5"]) == 0 and main(["finetune", *args]) == 0
    assert main(["evaluate", *args, "-S", "search.budget=0.5"]) == 0
    e = metrics(root, "evaluate")
    assert e["budget_metric"] == "macs" and e["budget_met"] is True
    assert e["budget"] == pytest.approx(0.5 * e["base_macs"]) and e["measured_over_budget"] <= 1.0


def test_model_and_onnx_publish_together(project, monkeypatch):
    """A finetune that fails between the two files once left a new model.pt beside an old model.onnx."""
    args, root = project
    assert main(["search", *args, "-S", "search.budget=0.5"]) == 0 and main(["finetune", *args]) == 0
    final = root / "a" / "finetune"
    before = {p.name: p.read_bytes() for p in final.iterdir()}
    assert set(before) == {"model.pt", "model.onnx", "digests.json"}

    def broken(*a, **k):
        raise RuntimeError("export failed")

    monkeypatch.setattr(stages, "export_onnx", broken)
    with pytest.raises(RuntimeError, match="export failed"):
        main(["finetune", *args, "-S", "finetune.lr=0.03"])
    assert {p.name: p.read_bytes() for p in final.iterdir()} == before, "the earlier pair, untouched"
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".finetune.")], "no staging left"


def test_profile_reports_how_much_latency_width_alone_can_remove(project):
    """`width_only_min_ratio`: every dimension at its smallest non-zero width, over the base (what a
    budget below it needs blocks removed for); `min_ratio`: blocks removed too. Both from the table."""
    from netadapt.models import build_supernet
    from netadapt.resources.lookup_table import LatencyModel, LatencyTable

    args, root = project
    m = metrics(root, "profile")
    assert 0 < m["min_ratio"] <= m["width_only_min_ratio"] < 1
    cfg = load_config(REPO / "params.yaml", ["model.name=plain_cnn"])  # the preset's model
    supernet = build_supernet(stages.model_spec(cfg, root / "a" / "prepared"))
    latency = LatencyModel(supernet, LatencyTable.load(root / "a" / "profile" / "lut.csv"))
    space = supernet.space()
    assert m["min_ratio"] == pytest.approx(latency.estimate(space.smallest()) / latency.estimate(space))
    assert set(json.loads((root / "m" / "profile.json").read_text())) >= {"width_only_min_ratio", "min_ratio"}


def table_of(root: Path, supernet):
    from netadapt.resources.lookup_table import LatencyModel, LatencyTable

    return LatencyModel(supernet, LatencyTable.load(root / "a" / "profile" / "lut.csv"))


@pytest.mark.parametrize("algorithm", ["mcd", "netadapt"])
def test_a_latency_search_goes_on_while_its_answer_measures_over_the_budget(project, monkeypatch, capsys, algorithm):
    """The search times its answer beside the base; over the budget, it goes on from where it stopped
    (V1 from the weights it kept) to a table budget tightened by measured / estimated, records the
    checks in the history, and a rerun replays them instead of timing again."""
    args, root = project
    timed: list = []
    monkeypatch.setattr(metric, "network_timings", presets.device_over_once(root / "a" / "profile" / "lut.csv", 0.96,
                                                                              timed))
    latency = [*args, "-S", "search.metric=latency", "-S", "search.budget=0.8", "-S", f"search.algorithm={algorithm}",
               "-S", "search.short_term_steps=1", "-S", "search.long_term_epochs=0", "-S", "search.train_batch_size=32"]
    assert main(["search", *latency]) == 0
    m = metrics(root, "search")
    checks = m["checks"]
    assert [c["measured"] for c in checks][:1] == [0.96] and checks[-1]["measured"] <= 0.8
    assert m["continuations"] == len(checks) - 1 == len(timed) - 1 == 1
    supernet, _ = load_supernet(root / "a" / "supernet" / "supernet.pt")
    smallest = table_of(root, supernet).estimate(supernet.space().smallest())
    assert m["budget_searched"] == pytest.approx(max(checks[0]["resource_estimated"] * 0.8 / 0.96, smallest))
    assert m["resource_estimated"] <= m["budget_searched"] < m["budget"]
    assert m["measured_over_budget"] == pytest.approx(checks[-1]["measured"] / 0.8)
    saved = json.loads((root / "a" / "search" / "history.json").read_text())
    assert saved["checks"] == checks and saved["budget"] == m["budget"]
    arch = (root / "a" / "search" / "arch.json").read_text()
    kept = [r for r in saved["rows"] if r["kept"]]
    answer = Architecture.from_dict(json.loads(arch)).widths_json()
    assert answer == kept[-1]["arch"] == checks[-1]["arch"], "the answer is the end of the path, and checked"
    if algorithm == "netadapt":
        assert main(["finetune", *latency]) == 0, "V1's network is the answer's"
        return
    timed.clear()
    assert main(["search", *latency]) == 0
    again = metrics(root, "search")
    assert timed == [] and again["checks"] == checks and again["reused_iterations"] == again["iterations"]
    assert (root / "a" / "search" / "arch.json").read_text() == arch
    history = root / "a" / "search" / "history.json"
    damaged = {**saved, "checks": [{**checks[0], "measured": "fast"}]}
    history.write_text(json.dumps(damaged))
    assert main(["search", *latency]) == 2, "a history whose checks cannot be read is refused, not trusted"
    assert f"{history}: not a search history" in capsys.readouterr().err
    history.write_text(json.dumps(saved))
    assert main(["search", *latency, "-S", "search.measure_rounds=0"]) == 0
    trusting = metrics(root, "search")
    assert trusting["continuations"] == 0 and trusting["checks"] == [] and "measured_over_budget" not in trusting
    assert trusting["resource_estimated"] > m["resource_estimated"]
