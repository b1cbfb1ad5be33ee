"""Resumable profiling: measured units appended to a per-device cache as they finish.

Profiling a phone takes hours; a run killed midway resumes where it stopped. Each rotation group's
units are appended, once the group's reference burst is timed, as JSON lines in one write,
flushed and fsynced. One file per measurement context (backend, threads, batch size, warm-up and
repeats, command, versions, reference network: see `profiling.cache_context`), named by the
context's digest, so a cache measured under another setting is never read:

    <folder>/units-<digest>.jsonl
    {"format": 1, "context": {...}}                                        first line
    {"unit": {<LayerSpec fields>}, "latency_ms": ..., "p10_ms": ..., "p90_ms": ...,
     "reference_ms": ..., "group": "<run>-<n>"}                             one line per unit

Times are as measured (not rescaled); `reference_ms` is the median of the reference burst timed
after the unit's group, so a later run rescales them to its own reference speed. A torn last
line (a kill during the write) is ignored and cut off before the next append. A file whose first
line is not this context's header is discarded, never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netadapt.layers import LayerSpec

log = logging.getLogger("netadapt")

CACHE_FORMAT = 1
UNIT_FIELDS = [f.name for f in dataclasses.fields(LayerSpec)]


@dataclass(frozen=True)
class CachedUnit:
    """One unit's timing as measured, and the reference median of the group it was measured in."""

    latency_ms: float
    p10_ms: float
    p90_ms: float
    reference_ms: float
    group: str


def context_digest(context: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:16]


class UnitCache:
    """The measured units of one measurement context, in `folder` (one folder per device)."""

    def __init__(self, folder: Path, context: dict[str, Any]):
        self.context = {"format": CACHE_FORMAT, **context}
        self.path = Path(folder) / f"units-{context_digest(self.context)}.jsonl"

    def _header(self) -> bytes:
        return (json.dumps({"format": CACHE_FORMAT, "context": self.context}, sort_keys=True) + "\n").encode()

    def load(self) -> dict[LayerSpec, CachedUnit]:
        """Every complete unit line; {} when there is no file. A foreign or unreadable header
        discards the file; a torn last line is left out (and cut off by the next `append`)."""
        if not self.path.is_file():
            return {}
        lines = self.path.read_bytes().split(b"\n")
        complete, torn = lines[:-1], lines[-1]  # a file that ends with a newline has an empty tail
        try:
            header = json.loads(complete[0]) if complete else None
        except ValueError:
            header = None
        if header != json.loads(self._header()):
            log.warning("%s: not a unit cache of this measurement context: discarded", self.path)
            self.discard()
            return {}
        found: dict[LayerSpec, CachedUnit] = {}
        skipped = 0
        for raw in complete[1:]:
            try:
                row = json.loads(raw)
                spec = LayerSpec(**{k: row["unit"][k] for k in UNIT_FIELDS if k in row["unit"]})
                unit = CachedUnit(float(row["latency_ms"]), float(row["p10_ms"]), float(row["p90_ms"]),
                                  float(row["reference_ms"]), str(row["group"]))
                times = (unit.latency_ms, unit.p10_ms, unit.p90_ms, unit.reference_ms)
                if not (all(math.isfinite(t) and t >= 0 for t in times) and unit.reference_ms > 0):
                    raise ValueError("a time that is not a finite number >= 0 (a reference > 0)")
                found[spec] = unit
            except (ValueError, KeyError, TypeError):
                skipped += 1
        if skipped or torn:
            log.warning("%s: %d unreadable line(s) and %s torn last line ignored", self.path, skipped,
                        "a" if torn else "no")
        return found

    def append(self, units: dict[LayerSpec, CachedUnit]) -> None:
        """Append one group's units in one write, flushed and fsynced (the header first in a new
        file; a torn last line cut off first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = b"".join((json.dumps({"unit": dataclasses.asdict(spec), **dataclasses.asdict(unit)},
                                       sort_keys=True) + "\n").encode() for spec, unit in units.items())
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn last line: cut it off
                    f.seek(0)
                    size = f.read().rfind(b"\n") + 1
                    f.truncate(size)
            if not size:
                payload = self._header() + payload
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())

    def discard(self) -> int:
        """Remove every unit of this context (a re-measure then times them all again); how many."""
        count = 0
        if self.path.is_file():
            count = max(0, self.path.read_bytes().count(b"\n") - 1)
            self.path.unlink()
        return count
