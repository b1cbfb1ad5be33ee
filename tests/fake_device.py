"""A device for tests (`profile.backend: command`) whose timings are a function of the graph alone.

    python tests/fake_device.py --model unit.onnx [--runs N --warmup N --threads N]

prints `median_ms=<size of the ONNX file in bytes / 1e5>`, which the default
`profile.command_pattern` reads. A graph's size grows with its weights (channels in times channels
out, kernel area), so tables, searches and budget checks behave as on a device, and give the same
answer on a quiet machine and on a busy one: tests whose verdict depends on measured latency time
on this (`tests.presets.FAKE_DEVICE`) instead of the clock. Standard library only (one process per
graph: it starts in milliseconds). Test-only: nothing outside tests/ names it.
"""

from __future__ import annotations

import argparse
import os
import sys

BYTES_PER_MS = 1e5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="ONNX file to 'time'")
    parser.add_argument("--runs", type=int, default=1, help="ignored: every run takes as long")
    parser.add_argument("--warmup", type=int, default=0, help="ignored")
    parser.add_argument("--threads", type=int, default=1, help="ignored")
    args = parser.parse_args(argv)
    print(f"median_ms={os.path.getsize(args.model) / BYTES_PER_MS:.9f} runs={args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
