"""kill -9 mid-stage: the re-run does only the rest and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netadapt_flows.cli import main
from tests import presets

NETADAPT = str(Path(sys.executable).with_name("netadapt"))
# Every test sets the epochs it needs; the supernet-and-finetune test searches with this step.
PRESET = presets.merged(presets.TINY, search={"initial_reduction": 0.1})


def project(root: Path, data: Path) -> list[str]:
    return presets.project(root, data, PRESET)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return presets.tiny_data(tmp_path_factory.mktemp("data"), train=800, test=100)


def kill_after_progress(args: list[str], progress: Path, timeout: float = 300) -> None:
    """Run `netadapt ...` and SIGKILL it as soon as it has saved some progress."""
    proc = subprocess.Popen([NETADAPT, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not progress.exists():
        assert proc.poll() is None, f"finished (exit {proc.returncode}) before any progress was saved"
        assert time.monotonic() < deadline, "no progress saved in time"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_supernet_and_finetune_resume_after_kill_9(tmp_path: Path, data: Path, caplog):
    caplog.set_level("INFO", logger="netadapt")
    runs = {name: project(tmp_path / name, data) for name in ("killed", "whole")}
    epochs = ["-S", "supernet.epochs=5", "-S", "finetune.epochs=5"]
    for args in runs.values():
        assert main(["prepare", *args]) == 0

    killed = tmp_path / "killed"
    kill_after_progress(["supernet", *runs["killed"], *epochs], killed / "a" / "progress" / "supernet.pt")
    caplog.clear()
    assert main(["supernet", *runs["killed"], *epochs]) == 0
    resumed = [r.message for r in caplog.records if r.message.startswith("supernet epoch")]
    assert any("resuming after epoch" in r.message for r in caplog.records) and 0 < len(resumed) < 5
    assert not (killed / "a" / "progress" / "supernet.pt").exists(), "progress is cleared once done"
    assert main(["supernet", *runs["whole"], *epochs]) == 0
    supernets = [tmp_path / name / "a" / "supernet" / "supernet.pt" for name in runs]
    assert supernets[0].read_bytes() == supernets[1].read_bytes(), "same weights as an uninterrupted run"

    for args in runs.values():
        assert main(["search", *args]) == 0
    kill_after_progress(["finetune", *runs["killed"], *epochs], killed / "a" / "progress" / "finetune.pt")
    caplog.clear()
    assert main(["finetune", *runs["killed"], *epochs]) == 0
    resumed = [r.message for r in caplog.records if r.message.startswith("finetune epoch")]
    assert 0 < len(resumed) < 5
    assert main(["finetune", *runs["whole"], *epochs]) == 0
    finals = [tmp_path / name / "a" / "finetune" / "model.pt" for name in runs]
    assert finals[0].read_bytes() == finals[1].read_bytes()
    curves = [(tmp_path / name / "p" / "finetune.csv").read_text().splitlines() for name in runs]
    assert len(curves[0]) == len(curves[1]) == 6, "the curve keeps the epochs of the killed run"


def recorded_iterations(history: Path) -> int:
    try:
        return 1 + max(row["iteration"] for row in json.loads(history.read_text())["rows"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_a_search_resumes_after_kill_9_from_its_recorded_iterations(tmp_path: Path, data: Path):
    runs = {name: project(tmp_path / name, data) for name in ("killed", "whole")}
    slow = ["-S", "model.name=mobilenet_v2", "-S", "search.initial_reduction=0.04", "-S", "search.decay=1.0",
            "-S", "search.budget=0.4", "-S", "supernet.epochs=1"]  # many small steps over many dimensions
    for args in runs.values():
        assert main(["prepare", *args, *slow]) == 0 and main(["supernet", *args, *slow]) == 0
    history = tmp_path / "killed" / "a" / "search" / "history.json"
    proc = subprocess.Popen([NETADAPT, "search", *runs["killed"], *slow], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while recorded_iterations(history) < 2:
        assert proc.poll() is None, "the search ended before two iterations were recorded"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = recorded_iterations(history)
    assert json.loads(history.read_text())["complete"] is False

    assert main(["search", *runs["killed"], *slow]) == 0
    assert main(["search", *runs["whole"], *slow]) == 0
    resumed, whole = (json.loads((tmp_path / n / "m" / "search.json").read_text()) for n in runs)
    assert resumed["reused_iterations"] >= killed_at >= 2
    assert resumed["candidates_evaluated"] < whole["candidates_evaluated"]
    arch = [(tmp_path / n / "a" / "search" / "arch.json").read_text() for n in runs]
    assert arch[0] == arch[1] and resumed["iterations"] == whole["iterations"]


@pytest.mark.slow  # trains and searches afresh per edit (tests/e2e/test_faults.py damages the history too)
@pytest.mark.parametrize("edit", ["resource", "garble", "drop_column"])
def test_an_edited_or_corrupt_history_is_refused_naming_the_file(tmp_path: Path, data: Path, capsys, edit):
    args = project(tmp_path, data)
    fast = ["-S", "supernet.epochs=1", "-S", "search.initial_reduction=0.2"]
    assert main(["prepare", *args, *fast]) == 0 and main(["supernet", *args, *fast]) == 0
    assert main(["search", *args, *fast]) == 0
    history = tmp_path / "a" / "search" / "history.json"
    saved = json.loads(history.read_text())
    if edit == "resource":  # a valid-format edit, digest recomputed: the resource check catches it
        saved["rows"][1]["resource_estimated"] *= 0.5
        from netadapt.history import rows_digest as _rows_digest
        saved["rows_digest"] = _rows_digest(saved["rows"])
        history.write_text(json.dumps(saved))
    elif edit == "garble":
        history.write_text(history.read_text()[:200])
    else:
        for row in saved["rows"]:
            row.pop("kept")
        history.write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(["search", *args, *fast]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"netadapt: error: {history}:") and "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("damage", [False, True], ids=["intact", "damaged-checks"])
def test_a_netadapt_v1_search_resumes_after_kill_9_with_its_kept_network(tmp_path: Path, data: Path, damage: bool):
    """Killed mid-search, V1 resumes from its progress file with the network its last iteration kept;
    a progress file whose recorded checks cannot be read is not trusted: the search starts afresh."""
    runs = {name: project(tmp_path / name, data) for name in ("killed", "whole")}
    v1 = ["-S", "search.algorithm=netadapt", "-S", "search.short_term_steps=3", "-S", "search.long_term_epochs=1",
          "-S", "search.train_batch_size=32", "-S", "search.initial_reduction=0.05", "-S", "search.decay=1.0",
          "-S", "search.budget=0.3", "-S", "supernet.epochs=1", "-S", "supernet.sampling=none"]
    for args in runs.values():
        assert main(["prepare", *args, *v1]) == 0 and main(["supernet", *args, *v1]) == 0
    progress = tmp_path / "killed" / "a" / "progress" / "search.pt"
    kill_after_progress(["search", *runs["killed"], *v1], progress)
    if damage:
        from netadapt.io import load_tensors, save_tensors

        blob = load_tensors(progress)
        blob["state"]["checks"] = [{"arch": "{}", "measured": "fast"}]
        save_tensors(progress, blob)
    assert main(["search", *runs["killed"], *v1]) == 0
    assert not progress.exists(), "cleared once the search is done"
    assert main(["search", *runs["whole"], *v1]) == 0
    resumed, whole = (json.loads((tmp_path / n / "m" / "search.json").read_text()) for n in runs)
    assert (resumed["reused_iterations"] == 0) if damage else (resumed["reused_iterations"] >= 1)
    assert resumed["iterations"] == whole["iterations"]
    files = [[(tmp_path / n / "a" / "search" / f).read_bytes() for n in runs] for f in ("arch.json", "network.pt")]
    assert files[0][0] == files[0][1] and files[1][0] == files[1][1], "same architecture and weights"
