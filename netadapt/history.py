"""The search history: every candidate of every iteration, stored, checked and replayed.

`history.json` (settings, every row, their digest; written atomically after every iteration) is
what a later search replays: a search over the same super-network, table and settings but another
budget reuses the iterations that would start from the same architecture with the same, unclipped
target (`Replay`), so the result always equals a fresh run. `history.csv` is a copy for people,
plots and MLflow, derived from it and read back only through `read_history_csv`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError, describe
from netadapt.io import read_json, write_csv, write_json
from netadapt.resources import ResourceModel
from netadapt.schedule import MeasuredCheck

log = logging.getLogger("netadapt")

COLUMNS = ["iteration", "candidate", "resource_estimated", "holdout_acc", "seconds", "kept", "target",
           "reduction", "halvings", "clipped", "start", "arch"]
NUMBERS = ("iteration", "resource_estimated", "holdout_acc")  # what a plot of a history needs as numbers


def rows_digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def plain_rows(history: pd.DataFrame) -> list[dict]:
    """History rows as plain Python values (JSON- and weights_only-safe, floats exact)."""
    return [{k: v.item() if hasattr(v, "item") else v for k, v in row.items()} for row in history.to_dict("records")]


def save_history(folder: Path, history: pd.DataFrame, meta: dict, complete: bool = True) -> None:
    """`history.json` (settings, every row, their digest) in one atomic write, then `history.csv`."""
    rows = plain_rows(history)
    write_json(folder / "history.json", {**meta, "complete": complete, "rows": rows, "rows_digest": rows_digest(rows)})
    write_csv(folder / "history.csv", rows)


@dataclass
class Replay:
    """An earlier history and the budget it searched for: which of its iterations a search may reuse."""

    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COLUMNS))
    budget: float | None = None

    @classmethod
    def of(cls, history: pd.DataFrame | None, budget: float | None) -> "Replay":
        return cls(history, budget) if history is not None and len(history) else cls(budget=budget)

    def start_row(self) -> dict | None:
        """The recorded score of the base network (iteration -1), if any."""
        start = self.rows[self.rows.iteration == -1]
        return start.iloc[0].to_dict() if len(start) else None

    def iteration(self, t: int, start: Architecture, unclipped: bool, budget: float) -> list[dict] | None:
        """Iteration t's recorded rows when it replays exactly: it started where we are and neither
        run clipped its first target to its budget (or both runs had the same budget)."""
        recorded = self.rows[(self.rows.iteration == t) & (self.rows.start == start.widths_json())]
        reusable = len(recorded) > 0 and (self.budget == budget or (unclipped and not bool(recorded.iloc[0].clipped)))
        return recorded.to_dict("records") if reusable else None


@dataclass
class SavedSearch:
    """What `load_history` found on disk for this search's identity."""

    history: pd.DataFrame | None = None
    budget: float | None = None
    checks: list[MeasuredCheck] = field(default_factory=list)


def load_history(folder: Path, identity: str, space: Architecture, resource: ResourceModel) -> SavedSearch:
    """The earlier history to replay, if it was computed for the same identity, with its budget and
    the measured checks it made; checked before use: its digest, its columns, and every row's
    resource recomputed from the resource model."""
    path = folder / "history.json"
    if not path.is_file():
        return SavedSearch()
    try:
        saved = read_json(path)
        rows, budget = saved["rows"], float(saved["budget"])
        checks = MeasuredCheck.from_records(saved.get("checks", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise NetAdaptError(f"{path}: not a search history ({exc}); delete it to search afresh") from None
    if saved.get("identity") != identity:
        log.info("search: the earlier history is for another super-network, table, settings or code: not reused")
        return SavedSearch()
    if saved.get("rows_digest") != rows_digest(rows):
        raise NetAdaptError(f"{path}: its rows do not match their digest (edited or corrupt); delete it to "
                            f"search afresh")
    history = pd.DataFrame(rows, columns=COLUMNS)
    for i, row in enumerate(rows):
        _check_row(path, i, row, space, resource)
    if not saved.get("complete", True):
        log.info("search: continuing an interrupted search (%d iterations recorded)", history.iteration.max() + 1)
    return SavedSearch(history, budget, checks)


def _check_row(path: Path, i: int, row: dict, space: Architecture, resource: ResourceModel) -> None:
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise NetAdaptError(f"{path}: row {i} lacks {missing}; delete it to search afresh")
    try:
        estimate = resource.estimate(space.with_widths(json.loads(row["arch"])))
    except (ValueError, TypeError, NetAdaptError) as exc:
        raise NetAdaptError(f"{path}: row {i}: not an architecture of this space ({exc}); delete it to "
                            f"search afresh") from None
    if not math.isclose(estimate, float(row["resource_estimated"]), rel_tol=1e-9, abs_tol=1e-12):
        raise NetAdaptError(f"{path}: row {i} (iteration {row['iteration']}) records resource "
                            f"{row['resource_estimated']!r} where the model gives {estimate!r}; delete it "
                            f"to search afresh")


@dataclass
class SearchRecorder:
    """Writes a search down as it goes: `history.json` after every newly evaluated iteration (marked
    incomplete until `save`), the measured checks as they are made. `also` is called with the
    history and the checks after each iteration too (NetAdapt V1 stores the network it kept)."""

    folder: Path
    meta: dict  # identity, budget, base, metric, unit, algorithm
    also: Callable[[pd.DataFrame, list[dict]], None] | None = None

    def __post_init__(self) -> None:
        self.meta = {**self.meta, "checks": []}

    @property
    def checks(self) -> list[dict]:
        return self.meta["checks"]

    def on_iteration(self, history: pd.DataFrame) -> None:
        save_history(self.folder, history, self.meta, complete=False)
        if self.also is not None:
            self.also(history, self.checks)

    def on_check(self, checks: list[MeasuredCheck]) -> None:
        self.meta["checks"] = [asdict(c) for c in checks]

    def save(self, history: pd.DataFrame) -> None:
        """The history as it stands, complete (finished, or stopped for want of candidates)."""
        save_history(self.folder, history, self.meta)


def history_meta(folder: Path) -> dict | None:
    """`history.json`'s settings (budget, base, metric, unit, checks, ...) without its rows."""
    path = folder / "history.json"
    return {k: v for k, v in read_json(path).items() if k != "rows"} if path.is_file() else None


def read_history_csv(path: Path) -> pd.DataFrame:
    """`history.csv`, checked: its columns, and numbers where numbers belong. The one reader of it
    (the trade-off plot, the flow's trajectory table, MLflow's candidates table)."""
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise NetAdaptError(f"{path}: not a search history ({describe(exc, 120)}); run `netadapt search` "
                            f"again") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    bad = [c for c in NUMBERS if c in frame.columns and pd.to_numeric(frame[c], errors="coerce").isna().any()]
    if missing or bad or frame.empty:
        raise NetAdaptError(f"{path}: not a search history (missing columns {missing}, non-numbers in {bad}, "
                            f"{len(frame)} rows); run `netadapt search` again")
    return frame


def searched_architecture(path: Path, space: Architecture) -> Architecture:
    """The search's answer (`arch.json`), checked: a readable architecture of the super-network's space."""
    if not path.is_file():
        raise NetAdaptError(f"{path}: not found; run `netadapt search` first")
    try:
        arch = Architecture.from_dict(read_json(path))
    except NetAdaptError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise NetAdaptError(f"{path}: not an architecture ({detail}); run `netadapt search` again") from None
    if not arch.same_space(space):
        raise NetAdaptError(f"{path}: an architecture of another space than the super-network's (model or "
                            f"maximum widths differ); run `netadapt search` again")
    return arch
