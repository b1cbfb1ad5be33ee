"""Where and from what code a benchmark cell was computed, and the check that a summary does not mix
cells of different code.

Every cell records `provenance(device, settings)`: the git commit and whether the work tree had
uncommitted changes, the device it trained on, the torch / onnxruntime / python versions and the
cell's settings. A summary calls `mixed_code(cells)` first: cells from two commits, from a dirty tree,
or from before provenance was recorded are not one experiment, so the benches refuse them unless told
(`--mix-commits`). Torch is imported only to write a record, so reading them (bench/tables.py) needs
the standard library alone.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one) and its core count."""
    name = platform.processor() or platform.machine()
    with_info = Path("/proc/cpuinfo")
    if with_info.is_file():
        for line in with_info.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} cores"


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the CPU's model (a cell's seconds are that device's)."""
    import torch
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model()}, {torch.get_num_threads()} threads"


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def provenance(device: torch.device, settings: dict | None = None) -> dict:
    """The record a cell keeps of its code, machine, versions and settings."""
    import torch
    return {"git_commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "device": device_name(device), "torch": torch.__version__, "onnxruntime": version("onnxruntime"),
            "python": platform.python_version(), "settings": settings or {}}


def commit_of(cell: dict) -> str | None:
    """A cell's commit (`+dirty` when it ran on uncommitted changes); None when it records none."""
    record = cell.get("provenance")
    if not record or not record.get("git_commit"):
        return None
    return record["git_commit"] + ("+dirty" if record.get("dirty") else "")


def mixed_code(cells: dict[str, dict]) -> str | None:
    """One line naming two cells of different code (or a dirty / unrecorded one); None when all the
    cells ran on one clean commit. `cells`: key -> cell; keys starting with `_` are bookkeeping."""
    seen: dict[str, str] = {}
    for key, cell in sorted(cells.items()):
        if key.startswith("_"):
            continue
        commit = commit_of(cell)
        if commit is None:
            return (f"cell {key} records no git commit (computed before provenance was recorded): rerun it or "
                    f"pass --mix-commits")
        if commit.endswith("+dirty"):
            return f"cell {key} ran on uncommitted changes ({commit[:12]}+dirty): rerun it or pass --mix-commits"
        seen.setdefault(commit, key)
        if len(seen) > 1:
            (a, first), (b, second) = list(seen.items())[:2]
            return (f"cells of different code: {first} (commit {a[:12]}) and {second} (commit {b[:12]}): "
                    f"rerun one side or pass --mix-commits")
    return None


def require_one_code(parser: argparse.ArgumentParser, cells: dict[str, dict], mix_commits: bool, name: str) -> None:
    """Exit 2 with `mixed_code`'s line (prefixed by `name`, the cells file) unless the cells are of one
    clean commit or `--mix-commits` was given."""
    if (mixed := mixed_code(cells)) and not mix_commits:
        parser.exit(2, f"{name}: {mixed}\n")


def add_cell_arguments(parser: argparse.ArgumentParser, device_help: str) -> None:
    """The options every resumable-cells benchmark takes: where cells run, extra params, the two
    phases (cells here, timing on the target), mixing code, and its folders."""
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help=device_help)
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="another params override, e.g. profile.allow_mismatch=true (recorded in each cell)")
    parser.add_argument("--cells-only", action="store_true",
                        help="compute cells, skip the side-by-side timing (run --measure-only on the target)")
    parser.add_argument("--measure-only", action="store_true", help="time and summarize the finished cells")
    parser.add_argument("--mix-commits", action="store_true",
                        help="summarize cells of different (or uncommitted, or unrecorded) code together")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--cells", type=Path)
    parser.add_argument("--results", type=Path)
