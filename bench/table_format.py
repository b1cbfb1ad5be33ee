"""What every rendered table shares: reading a results JSON, markdown tables, number formats, and
where a cell ran (`tables.py` renders, the `tables_*.py` modules build each benchmark's tables)."""

from __future__ import annotations

import json
from pathlib import Path

# search_quality.py's methods, in its order; a label for the headline table
METHODS = {"netadapt_v2": "NetAdaptV2 (MCD)", "netadapt_v1": "NetAdapt (V1)", "uniform": "uniform width multiplier",
           "random": "random network", "best_of_n": "best of N random", "netadapt_v1_dr0.04": "NetAdapt (V1), dR₀ = 4%"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "fashion-mnist": "Fashion-MNIST"}


def read(results: Path, name: str) -> dict:
    return json.loads((results / name).read_text())


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def block(caption: str, header: list[str], rows: list[list[str]]) -> str:
    return f"{caption}\n\n{table(header, rows)}"


def spread(median: float, low: float, high: float, fmt: str = ".3f") -> str:
    return f"{median:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def span(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{min(values)}" if min(values) == max(values) else f"{min(values)}-{max(values)}"


def signed(values: list[float]) -> str:
    return ", ".join(f"{v:+.2f}" for v in values)



def finished_cells(entry: dict) -> dict:
    return {k: c for k, c in entry["cells"].items() if "infeasible" not in c}


def train_images(setup: dict) -> str:
    n = setup["train_per_class"]
    return "all train images" if n == 0 else f"{n} train images per class"


def where(cell: dict) -> tuple[str, str]:
    """(device, commit) as a cell records them (`provenance.py`'s record; older cells: `ran_on`, `commit`)."""
    record = cell.get("provenance") or {}
    commit = record.get("git_commit", "") + ("+dirty" if record.get("dirty") else "")
    return record.get("device") or cell.get("ran_on") or "?", commit or cell.get("commit") or "?"


def ran_on(entry: dict) -> list[str]:
    """Where the cells' training and search ran, as the cells record it."""
    return sorted({where(c)[0] for c in entry["cells"].values() if where(c)[0] != "?"})
