"""Shared fixtures: tiny datasets written in the original formats, so tests need no real data."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
ISOLATED = ("NETADAPT_TRACKING", "MLFLOW_TRACKING_URI", "PREFECT_HOME", "NETADAPT_PIPELINE_ID")


def pytest_configure(config) -> None:
    """Before collection and before any fixture of any scope: tracking off, and MLflow and Prefect
    state in a temporary folder, so no test touches the project's `mlflow.db`, `mlruns/` or
    `.prefect/` (a module-scoped fixture runs before function-scoped autouse fixtures)."""
    state = Path(tempfile.mkdtemp(prefix="netadapt-tests-"))
    config._netadapt_state = (state, {k: os.environ.get(k) for k in ISOLATED})
    os.environ.update({"NETADAPT_TRACKING": "off", "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
                       "PREFECT_HOME": str(state / "prefect")})
    os.environ.pop("NETADAPT_PIPELINE_ID", None)
    config._netadapt_project_files = project_files()


# What the project's own runs write in the checkout: tests must leave all of it as it was.
PROJECT_OUTPUTS = ("artifacts", "metrics", "plots", "mlflow.db", "mlruns", "mlartifacts", ".prefect", "dvc.lock")


def project_files() -> dict[str, int]:
    """Every file under the checkout's own outputs, with its modification time."""
    found = {}
    for name in PROJECT_OUTPUTS:
        root = REPO / name
        for path in ([root] if root.is_file() else root.rglob("*") if root.is_dir() else []):
            if path.is_file():
                found[path.relative_to(REPO).as_posix()] = path.stat().st_mtime_ns
    return found


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run when a test wrote into the checkout's artifacts, metrics, plots, MLflow or Prefect
    state (a stage called without `--metrics`, say), naming what it wrote."""
    before = getattr(session.config, "_netadapt_project_files", None)
    if before is None:
        return
    after = project_files()
    written = sorted(name for name, mtime in after.items() if before.get(name) != mtime)
    if written:
        session.config.get_terminal_writer().line(
            f"tests wrote into the checkout's own outputs: {', '.join(written[:10])}", red=True)
        session.exitstatus = 1


def pytest_unconfigure(config) -> None:
    state, saved = getattr(config, "_netadapt_state", (None, {}))
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if state is not None:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(autouse=True)
def _tracking_off(monkeypatch):
    """Stage runs in tests do not write MLflow runs, except where a test turns it back on."""
    monkeypatch.setenv("NETADAPT_TRACKING", "off")


def write_idx(root: Path, prefix: str, n: int, classes: int = 10, seed: int = 0, size: int = 28) -> None:
    """IDX image + label files for `n` samples, labels cycling through the classes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    write_idx_arrays(root, prefix, images, (np.arange(n) % classes).astype(np.uint8))


def write_idx_arrays(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """IDX files of uint8 `images` [N, H, W] and `labels` [N]."""
    n, height, width = images.shape
    root.mkdir(parents=True, exist_ok=True)
    with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, height, width) + images.tobytes())
    with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.tobytes())


def write_folders(root: Path, classes: list[str], per_class: dict[str, int], size: int = 8,
                  suffix: str = ".png", seed: int = 0, mode: str = "RGB") -> None:
    """`root/<split>/<class>/NNNN<suffix>` images, RGB or (`mode="L"`) grayscale."""
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    for split, count in per_class.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(pixels, mode).save(folder / f"{i:04d}{suffix}")


def write_sha256sums(root: Path) -> None:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}"
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != "SHA256SUMS"]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A tiny Fashion-MNIST-shaped dataset: train (200) and t10k (50) IDX files with SHA256SUMS."""
    root = tmp_path / "fmnist"
    write_idx(root, "train", 200, seed=1)
    write_idx(root, "t10k", 50, seed=2)
    write_sha256sums(root)
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """A tiny image-folder dataset: 3 classes, 10 train and 4 test images each."""
    root = tmp_path / "folders"
    write_folders(root, ["cat", "dog", "owl"], {"train": 10, "test": 4})
    write_sha256sums(root)
    return root


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A Fashion-MNIST-shaped dataset of 8x8 images (plain_cnn on it has 34 distinct units): what the
    profiling tests time."""
    root = tmp_path / "tiny"
    write_idx(root, "train", 60, seed=1, size=8)
    write_idx(root, "t10k", 20, seed=2, size=8)
    write_sha256sums(root)
    return root
