"""Timing backends: how one module is run and timed on the target device.

- `torch-cpu`: eager PyTorch in inference mode, intra-op threads pinned.
- `onnxruntime-cpu`: the module exported to ONNX, run in an InferenceSession with pinned threads
  (graph optimizations on, as deployed: conv + BN + activation fuse), inputs and outputs bound
  once; the fixed cost of one call from Python is subtracted (see `ort_call_overhead_ms`).
- `torch-cuda`: eager PyTorch on the GPU, timed with CUDA events after synchronizing.
- `command`: the module exported to ONNX (fixed batch) and timed by a user's command, one
  invocation per graph for all its repeats (see `command.py`); the fixed per-run cost the command
  reports for an identity graph is subtracted (see `command_overhead_ms`).

Each measurement: `warmup` untimed runs, then `repeats` timed runs; the median is what counts.
A backend gives a *runner* (one timed call), so callers can interleave calls of many modules. A
runner that cannot afford one call per run (a process per call) also has `time_batch(warmup,
repeats)`, which times all repeats in one go and returns their times or just their median;
callers use it where present (`time_runner`).
"""

from __future__ import annotations

import functools
import io
import os
import statistics
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np
import torch
from torch import nn

from netadapt.errors import NetAdaptError
from netadapt.resources.command import CommandSettings

Backend = Literal["torch-cpu", "onnxruntime-cpu", "torch-cuda", "command"]
BACKENDS: tuple[str, ...] = ("torch-cpu", "onnxruntime-cpu", "torch-cuda", "command")


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int

    @classmethod
    def of(cls, samples_ms: list[float]) -> "Timing":
        ordered = sorted(samples_ms)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
        return cls(statistics.median(ordered), pick(0.1), pick(0.9), len(ordered))


@contextmanager
def timing_context(threads: int) -> Iterator[None]:
    """Pinned intra-op threads and inference mode, for every torch backend's timed calls."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.set_num_threads(before)


Runner = Callable[[], float]  # runs the module once, returns the elapsed milliseconds


def _cpu_runner(call: Callable[[], object]) -> Runner:
    def run() -> float:
        start = time.perf_counter_ns()
        call()
        return (time.perf_counter_ns() - start) / 1e6
    return run


def _torch_cpu(module: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int) -> Runner:
    module = module.eval().cpu()
    return _cpu_runner(lambda: module(*inputs))


def _torch_cuda(module: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int) -> Runner:
    if not torch.cuda.is_available():
        raise NetAdaptError("profile.backend: torch-cuda was asked for but no CUDA device is available")
    module = module.eval().cuda()
    inputs = tuple(t.cuda() for t in inputs)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run() -> float:
        torch.cuda.synchronize()
        start.record()
        module(*inputs)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    return run


def onnx_bytes(module: nn.Module, inputs: tuple[torch.Tensor, ...], *, dynamic_batch: bool = False) -> bytes:
    """Export a module to an in-memory ONNX model (TorchScript exporter: fast for many small graphs).

    Inputs are named `input0, input1, ...`. By default every shape is fixed to the example's (the
    profiler times unit graphs at one batch size). `dynamic_batch=True` also names the outputs
    `output0, ...` and makes axis 0 of every input and output symbolic (`batch`): a network served
    on any batch size.
    """
    module = module.eval().cpu()
    names: dict = {"input_names": [f"input{i}" for i in range(len(inputs))]}
    if dynamic_batch:
        with torch.no_grad():
            example = module(*inputs)
        count = len(example) if isinstance(example, (tuple, list)) else 1
        names["output_names"] = [f"output{i}" for i in range(count)]
        names["dynamic_axes"] = {name: {0: "batch"} for name in names["input_names"] + names["output_names"]}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # chosen on purpose: ~10x faster per graph
        torch.onnx.export(module, inputs, buffer, dynamo=False, opset_version=17, **names)
    return buffer.getvalue()


def _ort_session(model: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _ort_bound_call(session, feeds: dict) -> Callable[[], object]:
    """One run over pre-bound inputs and engine-allocated outputs (no numpy copies per call)."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for output in session.get_outputs():
        binding.bind_output(output.name, "cpu")
    return lambda: session.run_with_iobinding(binding)


def identity_graph() -> bytes:
    """A one-element Identity ONNX graph (input `x`, output `y`): what a fixed call cost is timed on."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@functools.lru_cache(maxsize=None)
def ort_call_overhead_ms(threads: int) -> float:
    """The fixed cost of one bound `run` from Python, timed on a one-element Identity graph.

    It is paid once per network but once per unit in a table, so ORT timings exclude it: units and
    networks alike are then timed inside the engine.
    """
    call = _ort_bound_call(_ort_session(identity_graph(), threads), {"x": np.zeros(1, np.float32)})
    for _ in range(50):
        call()
    samples = []
    for _ in range(500):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples)


def _onnxruntime_cpu(module: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int) -> Runner:
    session = _ort_session(onnx_bytes(module, inputs), threads)
    call = _ort_bound_call(session, {f"input{i}": t.numpy() for i, t in enumerate(inputs)})
    overhead = ort_call_overhead_ms(threads)
    timed = _cpu_runner(call)
    return lambda: max(timed() - overhead, 0.0)


class CommandRunner:
    """One graph timed by the device command: `time_batch` is one invocation for all repeats and
    returns the median it reports, less the command's fixed per-run cost (`command_overhead_ms`);
    calling the runner is one invocation of one run (slow: a process per call).

    The graph is written to a temporary file for each invocation and removed after it, so an
    interrupted run leaves at most one file behind."""

    def __init__(self, graph: bytes, device: CommandSettings, threads: int, batch_size: int,
                 overhead_ms: float = 0.0):
        self.graph, self.device, self.threads, self.batch_size = graph, device, threads, batch_size
        self.overhead_ms = overhead_ms

    def time_batch(self, warmup: int, repeats: int) -> float:
        fd, path = tempfile.mkstemp(prefix="netadapt-", suffix=".onnx")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.graph)
            median = self.device.time_graph(path, repeats, warmup, self.threads, self.batch_size)
        finally:
            os.unlink(path)
        return max(median - self.overhead_ms, 0.0)

    def __call__(self) -> float:
        return self.time_batch(0, 1)


OVERHEAD_WARMUP, OVERHEAD_REPEATS, OVERHEAD_INVOCATIONS = 20, 200, 3


@functools.lru_cache(maxsize=None)
def command_overhead_ms(device: CommandSettings, threads: int) -> float:
    """The per-run time the device command reports for a one-element Identity graph (median of a
    few invocations): its fixed cost of one run, paid once per network but once per unit in a
    table, so command timings exclude it, as onnxruntime's exclude `ort_call_overhead_ms`."""
    run = CommandRunner(identity_graph(), device, threads, 1)
    return statistics.median(run.time_batch(OVERHEAD_WARMUP, OVERHEAD_REPEATS) for _ in range(OVERHEAD_INVOCATIONS))


def _command(module: nn.Module, inputs: tuple[torch.Tensor, ...], threads: int,
             device: CommandSettings | None) -> Runner:
    device = device or CommandSettings()
    return CommandRunner(onnx_bytes(module, inputs), device, threads, int(inputs[0].shape[0]),
                         command_overhead_ms(device, threads))


_RUNNERS = {"torch-cpu": _torch_cpu, "onnxruntime-cpu": _onnxruntime_cpu, "torch-cuda": _torch_cuda}


def make_runner(module: nn.Module, inputs: tuple[torch.Tensor, ...], backend: Backend, threads: int = 1,
                command: CommandSettings | None = None) -> Runner:
    """A callable that runs `module(*inputs)` once on `backend` and returns the elapsed ms.
    Call it inside `timing_context(threads)`. `command`: the device of the `command` backend
    (default: `CommandSettings()`, the shipped onnxruntime device script)."""
    if backend == "command":
        return _command(module, inputs, threads, command)
    if backend not in _RUNNERS:
        raise NetAdaptError(f"profile.backend: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    return _RUNNERS[backend](module, inputs, threads)


def time_runner(run: Runner, warmup: int, repeats: int) -> Timing:
    """`warmup` untimed then `repeats` timed runs of `run`, call by call, or in one `time_batch`
    where the runner has it (a median alone gives a Timing whose p10 and p90 are that median)."""
    if hasattr(run, "time_batch"):
        result = run.time_batch(warmup, repeats)
        if isinstance(result, (int, float)):
            return Timing(float(result), float(result), float(result), repeats)
        return Timing.of(list(result))
    for _ in range(warmup):
        run()
    return Timing.of([run() for _ in range(repeats)])


def time_module(module: nn.Module, inputs: tuple[torch.Tensor, ...], backend: Backend, threads: int = 1,
                warmup: int = 5, repeats: int = 20, command: CommandSettings | None = None) -> Timing:
    """Latency (ms) of `module(*inputs)` on `backend`: `warmup` untimed runs, then `repeats` timed."""
    with timing_context(threads):
        return time_runner(make_runner(module, inputs, backend, threads, command), warmup, repeats)


def measure_latency(module: nn.Module, input_shape: tuple[int, ...], backend: Backend, threads: int = 1,
                    batch_size: int = 1, warmup: int = 10, repeats: int = 50, seed: int = 0,
                    command: CommandSettings | None = None) -> Timing:
    """Latency of a whole network on an input of `input_shape` (C, H, W) with `batch_size` samples."""
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(seed))
    return time_module(module, (x,), backend, threads, warmup, repeats, command)
