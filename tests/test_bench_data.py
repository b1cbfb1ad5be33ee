"""The benchmarks take their data folder from `--data` or `NETADAPT_DATA`, never from a path of one
machine: with neither, they stop before any work with a message naming both (bench/data_folder.py)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("bench_data_folder", REPO / "bench" / "data_folder.py")
data_folder = importlib.util.module_from_spec(spec)
spec.loader.exec_module(data_folder)


def _root(argv: list[str], dataset: str = "cifar10") -> Path:
    parser = argparse.ArgumentParser(prog="bench")
    data_folder.add_data_argument(parser)
    return data_folder.dataset_root(parser, parser.parse_args(argv).data, dataset)


def test_the_data_folder_comes_from_the_argument_or_the_environment(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("NETADAPT_DATA", raising=False)
    with pytest.raises(SystemExit) as stop:
        _root([])
    assert stop.value.code == 2
    assert "give --data DIR or set NETADAPT_DATA=DIR, DIR holding cifar-10/" in capsys.readouterr().err
    monkeypatch.setenv("NETADAPT_DATA", str(tmp_path / "env"))
    assert _root([], "fashion-mnist") == tmp_path / "env" / "fashion-mnist"
    assert _root(["--data", str(tmp_path / "arg")]) == tmp_path / "arg" / "cifar-10", "the argument wins"


@pytest.mark.parametrize("script", ["search_quality.py", "data_rss.py"])
def test_a_benchmark_without_a_data_folder_stops_naming_both_ways_to_give_it(script: str, tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(REPO / "bench" / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "give --data DIR or set NETADAPT_DATA" in done.stderr, done.stderr
