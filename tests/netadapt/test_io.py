"""Artifact writes: atomic, and bytes that depend only on content."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from netadapt.io import load_tensors, save_tensors


def test_equal_content_gives_equal_checkpoint_bytes(tmp_path: Path):
    """torch.save names its archive after the file; saving via a random temp name gave new bytes
    for unchanged content, and DVC then re-ran everything downstream."""
    blob = {"state_dict": {"w": torch.arange(6.0).view(2, 3)}, "arch": "{}", "config_digest": "abc"}
    save_tensors(tmp_path / "a.pt", blob)
    save_tensors(tmp_path / "a.pt.again", blob)
    save_tensors(tmp_path / "b.pt", blob)
    first = (tmp_path / "a.pt").read_bytes()
    assert first == (tmp_path / "a.pt.again").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(load_tensors(tmp_path / "b.pt")["state_dict"]["w"], blob["state_dict"]["w"])
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")], "no temp file left behind"


def test_artifacts_get_a_plain_files_mode(tmp_path: Path):
    """Temp files and folders are private (0600/0700); published artifacts are not."""
    from netadapt.io import atomic_dir, write_json

    mask = os.umask(0o022)
    os.umask(mask)
    write_json(tmp_path / "m.json", {"a": 1})
    save_tensors(tmp_path / "t.pt", {"x": torch.zeros(1)})
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("x")
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "t.pt").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask
