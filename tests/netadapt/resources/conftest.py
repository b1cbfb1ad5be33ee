"""Fixtures of the profiling tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_idx, write_sha256sums


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A Fashion-MNIST-shaped dataset of 8x8 images (plain_cnn on it has 34 distinct units)."""
    root = tmp_path / "tiny"
    write_idx(root, "train", 60, seed=1, size=8)
    write_idx(root, "t10k", 20, seed=2, size=8)
    write_sha256sums(root)
    return root
