"""Saved training progress is trusted only for the inputs that wrote it (netadapt.resume); killing a
stage mid-run and resuming it is tests/e2e/test_resume.py."""

from __future__ import annotations

from pathlib import Path

import torch

from netadapt.resume import Progress


def test_progress_of_other_inputs_or_a_torn_file_is_never_trusted(tmp_path: Path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 4)
    Progress(tmp_path / "p.pt", "key-a").save(model, optimizer, scheduler, [{"epoch": 1}])
    assert Progress(tmp_path / "p.pt", "key-a").restore(model, optimizer, scheduler) == [{"epoch": 1}]
    assert Progress(tmp_path / "p.pt", "key-b").restore(model, optimizer, scheduler) == []
    (tmp_path / "p.pt").write_bytes((tmp_path / "p.pt").read_bytes()[:100])
    assert Progress(tmp_path / "p.pt", "key-a").restore(model, optimizer, scheduler) == []
