"""The tiny preset the end-to-end tests run the pipeline with, in one place: params.yaml sections small
enough that every stage takes seconds on the plain CNN, the `-S` flags and command lines made from
them, and tiny Fashion-MNIST-shaped datasets (noise, or classes a network can tell apart)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import yaml

from tests.conftest import REPO, write_idx, write_idx_arrays

Sections = dict[str, dict[str, object]]

# The device every preset times on: `tests/fake_device.py` through the `command` backend, whose
# "latency" of a graph is a function of the graph alone (its file's size). Tables, searches on
# latency and budget verdicts then come out the same on a quiet machine and beside other jobs, in
# this process and in the subprocesses DVC, Prefect and the CLI tests start (a patch in this process
# does not reach them). Tests of a real backend say so and assert only on what timing cannot change
# (tests/e2e/test_lookup_table.py, test_command.py, test_profile_cache.py; the backends themselves:
# tests/netadapt/resources).
FAKE_DEVICE: dict[str, object] = {
    "backend": "command",
    "command": f"{{python}} {shlex.quote(str(REPO / 'tests' / 'fake_device.py'))} --model {{model}} --runs {{repeats}}"}

# The tiny preset, as params.yaml sections. A test that needs other values states only those, with
# `merged(TINY, section={...})`.
TINY: Sections = {
    "model": {"name": "plain_cnn"},
    # max_error: the fake device's "latency" (a graph file's size) is not a sum of its units' as a real
    # device's nearly is, so its tables hold ~13% on traced models; 0.25 keeps them (the threshold itself
    # is tested on a fake machine in tests/netadapt/resources/test_profiling.py)
    "profile": {**FAKE_DEVICE, "warmup": 1, "repeats": 3, "network_repeats": 5, "fidelity_samples": 2,
                "max_error": 0.25},
    "supernet": {"epochs": 2, "batch_size": 32, "group_size": 8},
    "search": {"metric": "macs", "budget": 0.5, "candidates": 3, "bn_recalibration_batches": 1,
               "initial_reduction": 0.2},
    "finetune": {"epochs": 1, "batch_size": 32},
    "evaluate": {"latency_repeats": 5},
}


def merged(base: Sections, **sections: dict[str, object]) -> Sections:
    """`base` with the keys of `sections` set (a new dict; `base` is left as it is)."""
    out = {name: dict(values) for name, values in base.items()}
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


def flags(sections: Sections) -> list[str]:
    """The sections as `-S section.key=value` overrides, in order."""
    out: list[str] = []
    for name, values in sections.items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if isinstance(value, str) and not _reads_back(text):
                text = json.dumps(value)  # a string YAML would read otherwise (`{python} ...`): quoted
            out += ["-S", f"{name}.{key}={text}"]
    return out


def device_over_once(lut: Path, first: float, timed: list):
    """A `network_timings` (patched into `netadapt.resources.metric`, which the search's measured
    check and evaluate time through) of a device whose first timing of an answer says `first` of the
    base, and agrees with the table in `lut` after that: a search that must go on once, whatever
    this machine's clock says. Each call appends the architecture timed to `timed`. (Exact figures:
    zero-width intervals.)"""
    def network_timings(supernet, archs, settings, seed=0):
        from netadapt.resources.lookup_table import LatencyModel, LatencyTable
        from netadapt.resources.spread import Rounds

        table = LatencyModel(supernet, LatencyTable.load(lut))
        timed.append(archs[1])
        ratio = first if len(timed) == 1 else table.estimate(archs[1]) / table.estimate(archs[0])
        return [Rounds.point(1.0), Rounds.point(ratio)]
    return network_timings


def _reads_back(text: str) -> bool:
    """Whether YAML reads `text` as that very string."""
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


TINY_ARGS: list[str] = flags(TINY)

# The DVC pipeline on the repository's own dataset (dvc.yaml, params.yaml; tests/pipeline, the flows):
# one epoch each, smaller steps, and a budget a few iterations reach.
PIPELINE: Sections = merged(
    TINY, model={"granularity": 4}, supernet={"epochs": 1, "batch_size": 64},
    profile={"max_error": 10.0},  # the plumbing is under test here, not a busy machine's table
    search={"budget": 0.7, "eval_batches": 2, "initial_reduction": 0.1, "layers_per_candidate": 1},
    finetune={"batch_size": 128})  # params.yaml's


def project(root: Path, data: Path, sections: Sections = TINY) -> list[str]:
    """The arguments after the stage's name for a project under `root` (artifacts `a`, metrics `m`,
    plots `p`) on the Fashion-MNIST-shaped dataset in `data`, with the repository's params.yaml."""
    return ["--params", str(REPO / "params.yaml"), "-S", "data.name=fashion-mnist", "-S", f"data.root={data}",
            *flags(sections), *outputs(root)]


def outputs(root: Path) -> list[str]:
    """`--artifacts`, `--metrics` and `--plots` under `root`."""
    return ["--artifacts", str(root / "a"), "--metrics", str(root / "m"), "--plots", str(root / "p")]


# A real device's table is accepted whatever its error (`profile.max_error` unreachable): so tiny a
# network (~10 us on onnxruntime), timed briefly, is noise-bound, more so beside other jobs; the
# threshold itself is tested on a fake machine (tests/netadapt/resources/test_profiling.py).
ANY_ERROR: dict[str, object] = {"max_error": 1e6, "max_attempts": 1}

# `netadapt profile` of the plain CNN through the shipped device script (backend `command`, the
# real onnxruntime timing a graph in its own process), briefly timed.
COMMAND: Sections = {
    "model": {"name": "plain_cnn"},
    "profile": {"backend": "command", "warmup": 2, "repeats": 10, "network_repeats": 5, "fidelity_samples": 3,
                **ANY_ERROR},
}


def command_args(data: Path, root: Path) -> list[str]:
    """The `COMMAND` preset's arguments for a project under `root` on the dataset in `data` (the
    8x8 `tiny_root` fixture's, typically)."""
    return ["-S", "data.name=fashion-mnist", "-S", f"data.root={data}", *flags(COMMAND), *outputs(root)]


def tiny_data(root: Path, train: int = 300, test: int = 60, seed: int = 1) -> Path:
    """Noise images, labels cycling through the ten classes: train (`seed`) and t10k (`seed + 1`)."""
    write_idx(root, "train", train, seed=seed)
    write_idx(root, "t10k", test, seed=seed + 1)
    return root


def separable_images(labels: np.ndarray, seed: int, size: int = 28) -> np.ndarray:
    """Noise with bright stripes whose orientation and period say the class (0-4 horizontal, 5-9
    vertical; periods 2, 3, 4, 6, 9 pixels): what a convolution tells apart anywhere in the image, so
    the plain CNN learns it in a few epochs, well above chance (0.1)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), size, size), dtype=np.uint8)
    rows = np.arange(size)
    for i, label in enumerate(labels):
        period = (2, 3, 4, 6, 9)[label % 5]
        lit = rows % period < max(1, period // 2)
        if label < 5:
            images[i, lit, :] += 180
        else:
            images[i, :, lit] += 180
    return images


def separable_data(root: Path, train: int = 300, test: int = 100, seed: int = 1) -> Path:
    """A Fashion-MNIST-shaped dataset whose ten classes `separable_images` tells apart."""
    for prefix, n, s in (("train", train, seed), ("t10k", test, seed + 1)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx_arrays(root, prefix, separable_images(labels, s), labels)
    return root
