"""A device for tests (`profile.backend: command`) whose timings are a function of the graph alone.

    python tests/fake_device.py --model unit.onnx [--runs N --warmup N --threads N]

prints `median_ms=<size of the ONNX file in bytes / 1e5>`, which the default
`profile.command_pattern` reads. A graph's size grows with its weights (channels in times channels
out, kernel area), so tables, searches and budget checks behave as on a device, and give the same
answer on a quiet machine and on a busy one: tests whose verdict depends on measured latency time
on this (`tests.presets.FAKE_DEVICE`) instead of the clock. Standard library only (one process per
graph: it starts in milliseconds). Test-only: nothing outside tests/ names it.

Noise and a neighbour, still deterministic (a test sets them in the environment, which the command
inherits; both number the invocations, so they need `FAKE_DEVICE_CALLS`):

- `FAKE_DEVICE_CALLS=<file>`: one byte is appended to it per invocation; their count numbers the
  invocations from 0.
- `FAKE_DEVICE_NOISE=<fraction>`: each figure is multiplied by 1 + fraction * u, u uniform in
  [-1, 1], drawn from a generator seeded by the invocation's number.
- `FAKE_DEVICE_LOAD=<factor>@<call>[-<end>]`: from invocation `call` on (up to, not including,
  `end`), every figure is `factor` times larger (a neighbour job that starts then and stays, or
  leaves at `end`: sustained contention).
"""

from __future__ import annotations

import argparse
import os
import random
import sys

BYTES_PER_MS = 1e5


def invocation() -> int | None:
    """This invocation's number (from 0), counted in `FAKE_DEVICE_CALLS`; None when it is not set."""
    path = os.environ.get("FAKE_DEVICE_CALLS")
    if not path:
        return None
    with open(path, "ab") as f:
        number = f.tell()
        f.write(b".")
    return number


def slowdown(call: int | None) -> float:
    """The factor that noise and the neighbour (`FAKE_DEVICE_NOISE`, `FAKE_DEVICE_LOAD`) put on this call."""
    noise, load = float(os.environ.get("FAKE_DEVICE_NOISE", "0") or 0), os.environ.get("FAKE_DEVICE_LOAD", "")
    if (noise or load) and call is None:
        raise SystemExit("fake_device: FAKE_DEVICE_NOISE and FAKE_DEVICE_LOAD need FAKE_DEVICE_CALLS")
    factor = 1.0
    if noise:
        factor *= 1 + noise * random.Random(call).uniform(-1, 1)
    if load:
        times, span = load.split("@")
        start, _, end = span.partition("-")
        factor *= float(times) if int(start) <= call < (int(end) if end else call + 1) else 1.0
    return factor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="ONNX file to 'time'")
    parser.add_argument("--runs", type=int, default=1, help="ignored: every run takes as long")
    parser.add_argument("--warmup", type=int, default=0, help="ignored")
    parser.add_argument("--threads", type=int, default=1, help="ignored")
    args = parser.parse_args(argv)
    ms = os.path.getsize(args.model) / BYTES_PER_MS * slowdown(invocation())
    print(f"median_ms={ms:.9f} runs={args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
