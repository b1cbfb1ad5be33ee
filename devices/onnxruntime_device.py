"""An example "device" for `profile.backend: command`: times one ONNX graph with onnxruntime.

    python devices/onnxruntime_device.py --model unit.onnx --runs 20 --warmup 5 --threads 1

loads the graph in its own process (CPU provider, graph optimizations on, intra-op threads pinned
to --threads, one inter-op thread), binds random inputs and engine-allocated outputs once, runs it
--warmup times untimed and --runs times timed, and prints one line:

    median_ms=0.0123 p10_ms=0.0118 p90_ms=0.0131 runs=20

which the default `profile.command_pattern` (`median_ms=([0-9.eE+-]+)`) reads. Errors go to stderr
with a non-zero exit status. A real device replaces this script by its own benchmark (over adb,
ssh, ...) printing the median in milliseconds, and `profile.command_pattern` by what reads it.

Needs numpy and onnxruntime only (no torch, no netadapt), so it can be copied to another machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="ONNX file to time")
    parser.add_argument("--runs", type=int, default=20, help="timed runs (the median is printed)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        print("onnxruntime_device: --runs and --threads must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - reported as one line, exit status 1
        print(f"onnxruntime_device: cannot load {args.model}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    rng = np.random.default_rng(0)
    binding = session.io_binding()
    for node in session.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in node.shape]  # a symbolic axis runs at 1
        value = rng.standard_normal(shape).astype(DTYPES.get(node.type, np.float32))
        binding.bind_cpu_input(node.name, value)
    for node in session.get_outputs():
        binding.bind_output(node.name, "cpu")
    for _ in range(args.warmup):
        session.run_with_iobinding(binding)
    samples = []
    for _ in range(args.runs):
        start = time.perf_counter_ns()
        session.run_with_iobinding(binding)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    print(f"median_ms={statistics.median(ordered):.6f} p10_ms={pick(0.1):.6f} p90_ms={pick(0.9):.6f} "
          f"runs={len(ordered)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
