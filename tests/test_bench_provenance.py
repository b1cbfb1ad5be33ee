"""bench/provenance.py: every cell records its code and machine, and a summary refuses cells of
different code (two commits, a dirty tree, no record) unless `--mix-commits`."""

from __future__ import annotations

import argparse
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import provenance  # noqa: E402  (bench/)


def cell(commit: str | None, dirty: bool = False) -> dict:
    return {"method": "netadapt_v2", "test_acc": 0.9,
            **({"provenance": {"git_commit": commit, "dirty": dirty, "device": "cpu"}} if commit else {})}


def refuse(cells: dict, mix: bool, capsys: pytest.CaptureFixture) -> tuple[int | None, str]:
    parser = argparse.ArgumentParser(prog="bench")
    try:
        provenance.require_one_code(parser, cells, mix, "cells.json")
    except SystemExit as stop:
        return stop.code, capsys.readouterr().err
    return None, ""


def test_a_record_names_commit_dirty_flag_device_versions_and_settings() -> None:
    import torch

    record = provenance.provenance(torch.device("cpu"), {"budget": 0.5})
    assert len(record["git_commit"]) == 40 and isinstance(record["dirty"], bool)
    assert record["device"].startswith("cpu: ") and record["torch"] == torch.__version__
    assert record["onnxruntime"] and record["python"] and record["settings"] == {"budget": 0.5}


def test_cells_of_two_commits_are_refused_naming_two_cells_unless_mix_commits(capsys) -> None:
    cells = {"_setup": {}, "a-s0": cell("a" * 40), "a-s1": cell("a" * 40), "b-s0": cell("b" * 40)}
    code, err = refuse(cells, False, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "cells.json: cells of different code: a-s0 (commit aaaaaaaaaaaa) and b-s0 (commit bbbbbbbbbbbb)" in err
    assert refuse(cells, True, capsys) == (None, "")
    assert provenance.mixed_code({k: v for k, v in cells.items() if k != "b-s0"}) is None, "one commit: accepted"


def test_dirty_and_unrecorded_cells_are_refused_unless_mix_commits(capsys) -> None:
    code, err = refuse({"a-s0": cell("a" * 40), "d-s0": cell("a" * 40, dirty=True)}, False, capsys)
    assert code == 2 and "cell d-s0 ran on uncommitted changes (aaaaaaaaaaaa+dirty)" in err
    code, err = refuse({"a-s0": cell("a" * 40), "old-s0": cell(None)}, False, capsys)
    assert code == 2 and "cell old-s0 records no git commit" in err and "--mix-commits" in err
    assert refuse({"old-s0": cell(None)}, True, capsys) == (None, "")
