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
