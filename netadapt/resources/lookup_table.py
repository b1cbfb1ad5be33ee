"""Latency lookup table: per-unit latencies measured on the target device, summed to estimate a network.

The table is a pandas DataFrame keyed by `LayerSpec` fields, with the median latency of each unit,
plus two calibrated terms for what units timed alone do not show: a constant per network (what
lies outside the units) and an offset per unit (a unit timed alone pays a dispatch cost that a node
inside a network does not: small on eager torch, ~4 us per unit on onnxruntime). Both are fitted
on measured networks (see `profiling.profile_space`). It remembers where it was measured (backend, threads, batch size, torch and onnxruntime
versions, CPU); using it for another setting is an error unless explicitly allowed, and a unit
missing from it is an error naming the unit unless interpolation is on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_path
from netadapt.layers import LayerSpec

KEY_FIELDS = [f.name for f in dataclasses.fields(LayerSpec)]
ADDED_FIELDS = {"padding": -1, "dilation": 1, "mode": ""}  # LayerSpec fields later than the first tables


class TableError(NetAdaptError):
    """A table that does not fit the request: wrong setting, or a unit it never measured."""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _onnxruntime_version() -> str:
    try:
        import onnxruntime
        return onnxruntime.__version__
    except ImportError:  # pragma: no cover - a dependency, but tables stay readable without it
        return ""


@dataclass(frozen=True)
class TableContext:
    """Where and how a table was measured; two contexts must agree for a table to be reused."""

    backend: str
    threads: int
    batch_size: int
    torch_version: str
    onnxruntime_version: str
    cpu: str
    command: str = ""  # backend `command`: the template that timed the units (the device); "" otherwise

    @classmethod
    def current(cls, backend: str, threads: int, batch_size: int, command: str | None = None) -> "TableContext":
        ort = _onnxruntime_version() if backend == "onnxruntime-cpu" else ""
        return cls(backend, threads, batch_size, torch.__version__, ort, cpu_model(),
                   (command or "") if backend == "command" else "")

    def mismatches(self, other: "TableContext") -> list[str]:
        """What differs; the command template only when both name one (a table written before it was
        recorded, or a caller that does not know the template, is not refused for it)."""
        checked = ["backend", "threads", "batch_size", "torch_version", "onnxruntime_version"]
        if self.command and other.command:
            checked.append("command")
        return [f"{k}: table has {getattr(self, k)!r}, asked for {getattr(other, k)!r}"
                for k in checked if getattr(self, k) != getattr(other, k)]


@dataclass
class LatencyTable:
    context: TableContext
    entries: pd.DataFrame  # KEY_FIELDS + latency_ms, p10_ms, p90_ms
    constant_ms: float = 0.0
    interpolate: bool = False
    unit_offset_ms: float = 0.0
    held_out_error: float | None = None  # mean relative error on held-out networks when profiled (None: not recorded)

    def __post_init__(self) -> None:
        self._index = {tuple(row[k] for k in KEY_FIELDS): float(row["latency_ms"])
                       for row in self.entries.to_dict("records")}

    def __len__(self) -> int:
        return len(self._index)

    def latency(self, spec: LayerSpec) -> float:
        """Median latency (ms) of one unit."""
        found = self._index.get(spec.key())
        if found is not None:
            return found
        if self.interpolate:
            return self._interpolate(spec)
        raise TableError(f"latency table: no entry for {spec} (re-run `netadapt profile` for this search "
                         f"space, or set profile.interpolate: true)")

    def estimate_layers(self, layers: list[LayerSpec]) -> float:
        return sum(self.latency(spec) + self.unit_offset_ms for spec in layers) + self.constant_ms

    def _interpolate(self, spec: LayerSpec) -> float:
        """Nearest measured unit of the same kind (op, kernel, stride, size, depthwise-ness), scaled
        by the ratio of work (MACs for convs and linear layers, elements otherwise)."""
        df = self.entries
        same = df[(df.op == spec.op) & (df.kernel == spec.kernel) & (df.stride == spec.stride)
                  & (df.h == spec.h) & (df.w == spec.w) & (df.norm == spec.norm) & (df.act == spec.act)
                  & (df["mode"] == spec.mode) & (df["padding"] == spec.padding) & (df["dilation"] == spec.dilation)
                  & ((df.groups == df.cin) == (spec.groups == spec.cin))]
        if same.empty:
            raise TableError(f"latency table: no entry of the same kind as {spec} to interpolate from")
        distance = (same.cin - spec.cin).abs() + (same.cout - spec.cout).abs()
        near = same.loc[distance.idxmin()]
        ref = LayerSpec(**{k: near[k] for k in KEY_FIELDS})
        work = lambda s: s.macs or s.cin * s.h * s.w + s.cout * s.h * s.w
        return float(near.latency_ms) * work(spec) / max(work(ref), 1)

    def check_error(self, csv_path: Path, max_error: float) -> None:
        """Raise if the table's recorded held-out error exceeds `max_error` (`profile.max_error`): a
        table over the threshold (profiled under another threshold, or brought from elsewhere) is
        never used silently. A table that recorded no error (written before it was) passes."""
        if self.held_out_error is not None and self.held_out_error > max_error:
            raise TableError(f"{csv_path}: its mean error on held-out networks was {self.held_out_error:.1%} when "
                             f"profiled, above profile.max_error {max_error:.1%}; re-run `netadapt profile` on a quiet "
                             f"machine, or raise profile.max_error")

    def check(self, expected: TableContext, allow_mismatch: bool = False) -> None:
        """Raise if the table was measured for another setting than `expected` (unless allowed)."""
        problems = self.context.mismatches(expected)
        if problems and not allow_mismatch:
            raise TableError("latency table: measured for another setting (" + "; ".join(problems)
                             + "); re-run `netadapt profile`, or set profile.allow_mismatch: true")

    # -- files: the table as CSV (pandas), its context and constant as JSON beside it ------------------

    def save(self, csv_path: Path) -> None:
        with atomic_path(csv_path) as tmp:
            self.entries.to_csv(tmp, index=False)
        with atomic_path(csv_path.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps({"context": asdict(self.context), "constant_ms": self.constant_ms,
                                       "unit_offset_ms": self.unit_offset_ms, "entries": len(self),
                                       "held_out_error": self.held_out_error},
                                      indent=2) + "\n")

    @classmethod
    def load(cls, csv_path: Path, interpolate: bool = False) -> "LatencyTable":
        meta_path = Path(csv_path).with_suffix(".json")
        for path in (Path(csv_path), meta_path):
            if not path.is_file():
                raise TableError(f"{path}: latency table not found; run `netadapt profile` first")
        try:
            meta = json.loads(meta_path.read_text())
            context = TableContext(**meta["context"])
            constant, offset = float(meta["constant_ms"]), float(meta.get("unit_offset_ms", 0.0))
            error = None if meta.get("held_out_error") is None else float(meta["held_out_error"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TableError(f"{meta_path}: not a latency table's description ({type(exc).__name__}: {exc})") from None
        if not (math.isfinite(constant) and math.isfinite(offset)):
            raise TableError(f"{meta_path}: constant_ms / unit_offset_ms must be finite numbers")
        try:
            entries = pd.read_csv(csv_path, keep_default_na=False)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TableError(f"{csv_path}: not a readable latency table ({type(exc).__name__})") from None
        for column, default in ADDED_FIELDS.items():  # a table measured before these fields existed
            if column not in entries.columns:
                entries[column] = default
        missing = set(KEY_FIELDS + ["latency_ms"]) - set(entries.columns)
        if missing:
            raise TableError(f"{csv_path}: not a latency table (missing columns {sorted(missing)})")
        entries["act"] = entries["act"].astype(str)
        entries["mode"] = entries["mode"].astype(str)
        latency = pd.to_numeric(entries["latency_ms"], errors="coerce")
        bad = entries.index[~(latency.apply(math.isfinite) & (latency >= 0))]
        if len(bad):  # a NaN once let the search "meet" a budget with a network over it
            row = bad[0]
            raise TableError(f"{csv_path}: line {row + 2}: latency_ms {entries['latency_ms'][row]!r} is not a finite "
                             f"number >= 0 ({len(bad)} such rows); re-run `netadapt profile`")
        entries["latency_ms"] = latency
        recorded = meta.get("entries")
        if isinstance(recorded, int) and recorded != len(entries):  # a torn or cut table
            raise TableError(f"{csv_path}: {len(entries)} rows where {meta_path} records {recorded}; re-run "
                             f"`netadapt profile`")
        return cls(context, entries, constant, interpolate, offset, error)


@dataclass
class LatencyModel:
    """Latency (ms) of an architecture, estimated from the lookup table."""

    supernet: nn.Module
    table: LatencyTable
    name: str = "latency"
    unit: str = "ms"

    def estimate(self, arch: Architecture) -> float:
        return self.table.estimate_layers(self.supernet.layers(arch))
