"""What a command prints when it ends: the verdict first, then one readable line per stage; the
metrics as one JSON line only with `--json`."""

from __future__ import annotations

import json

from netadapt.config import parse_config
from netadapt_flows.cli import main
from netadapt_flows.console import command_lines

EVALUATE = {"test_acc": 0.81, "latency_measured_ms": 0.317, "base_latency_measured_ms": 1.0, "latency_ratio": 0.317,
            "macs": 1000, "params": 50, "budget_met": True, "backend": "onnxruntime-cpu", "seconds": 3.2}
SEARCH = {"iterations": 8, "reused_iterations": 0, "candidates_evaluated": 24, "budget_fraction": 0.305,
          "resource_estimated": 0.3, "holdout_acc": 0.8, "seconds": 191.2, "checks": [{"arch": "{}"}]}


def test_a_stage_prints_one_line_of_its_headline_metrics_and_evaluate_the_verdict_first():
    cfg = parse_config({"model": {"name": "mobilenet_v2"}, "search": {"metric": "latency", "budget": 0.305}})
    [search] = command_lines("search", cfg, SEARCH)
    assert search.split()[0] == "search" and "reused_iterations=0" in search and "candidates_evaluated=24" in search
    assert "checks" not in search and "{" not in search, "headline figures, not every metric"
    verdict, line = command_lines("evaluate", cfg, EVALUATE)
    assert verdict.startswith("latency ≤ 30.5% · MET · mobilenet_v2 · ") and "budget_met=true" in verdict
    assert "(1.039 of it) but within its 5% tolerance: met" in verdict
    assert line.split()[0] == "evaluate" and "test_acc=0.81" in line


def test_run_prints_the_verdict_of_each_network_then_a_line_per_stage():
    cfg = parse_config({"search": {"metric": "latency", "budget": 0.305}, "devices": {"phone": {"budget": 0.3,
                                                                                                "profile": {}}}})
    result = {"search": SEARCH, "evaluate": EVALUATE,
              "devices": {"phone": {"search": SEARCH, "evaluate": {**EVALUATE, "latency_measured_ms": 0.4}}}}
    lines = command_lines("run", cfg, result)
    assert " · MET · " in lines[0]
    assert lines[1].startswith("latency ≤ 30% · MISSED · ") and "(device phone)" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["search", "evaluate", "search@phone", "evaluate@phone"]
    assert len({line.index("=") - len(line.split("=")[0].split()[-1]) for line in lines[2:]}) == 1, "aligned"


def test_the_cli_prints_readable_lines_and_json_only_when_asked(idx_root, tmp_path, capsys):
    args = ["prepare", "-S", "data.name=fashion-mnist", "-S", f"data.root={idx_root}", "--artifacts",
            str(tmp_path / "a"), "--metrics", str(tmp_path / "m"), "--plots", str(tmp_path / "p")]
    assert main(args) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split() == ["prepare", "train=180", "holdout=20", "test=50", "classes=10"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train"] == 180


def test_make_run_and_make_exp_end_with_the_verdict_then_a_line_per_stage(tmp_path, capsys):
    """`python -m netadapt_flows.console` (the results block `make run` and `make exp` print): from
    the reports on disk, a missed budget on the first line with its figures, then the stages."""
    from netadapt_flows.console import main as results

    (tmp_path / "params.yaml").write_text("search: {metric: latency, budget: 0.4}\n"
                                          "devices: {phone: {budget: 0.5, profile: {}}}\n")
    missed = {**EVALUATE, "latency_measured_ms": 0.443, "base_latency_measured_ms": 1.0}
    reports = {"artifacts/reports": {"search": SEARCH, "evaluate": missed},
               "artifacts/devices/phone/reports": {"evaluate": {**EVALUATE, "latency_measured_ms": 0.41}}}
    for folder, stages in reports.items():
        (tmp_path / folder).mkdir(parents=True)
        for stage, metrics in stages.items():
            (tmp_path / folder / f"{stage}.json").write_text(json.dumps(metrics))
    assert results(["--params", str(tmp_path / "params.yaml"), "--artifacts", str(tmp_path / "artifacts")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("latency ≤ 40% · MISSED · ") and "budget_met=false" in lines[0]
    assert "0.443 ms" in lines[0] and "the budget 0.4 of the base" in lines[0] and "1.107 of it" in lines[0], lines[0]
    assert lines[1].startswith("latency ≤ 50% · MET · ") and "(device phone)" in lines[1]
    assert [line.split()[0] for line in lines[2:]] == ["search", "evaluate", "evaluate@phone"]
    assert "latency_measured_ms=0.443" in lines[3]


def test_the_results_block_before_evaluate_ran_and_with_bad_params(tmp_path, capsys):
    from netadapt_flows.console import main as results

    (tmp_path / "params.yaml").write_text("search: {budget: 0.4}\n")
    assert results(["--params", str(tmp_path / "params.yaml"), "--artifacts", str(tmp_path / "none")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert " · pending · " in line and line.endswith("budget_met=unknown; evaluate did not run")
    (tmp_path / "params.yaml").write_text("search: {budget: -3}\n")
    assert results(["--params", str(tmp_path / "params.yaml")]) == 2
    assert "search.budget" in capsys.readouterr().err
