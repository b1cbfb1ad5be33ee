"""The `command` backend: a user's command times one exported graph per invocation.

Templates and patterns are checked at config time; a failing, hanging or unreadable command fails
naming its key and showing its last output line; the profiler times a batch runner's unit in one
invocation (`netadapt profile` end to end on the shipped onnxruntime device script:
tests/e2e/test_command.py)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import psutil
import pytest

from netadapt.arch import ModelSpec
from netadapt.config import parse_config
from netadapt.errors import ConfigError
from netadapt.models import build_supernet
from netadapt.resources import backends, timing
from netadapt.resources.backends import time_module
from netadapt.resources.command import CommandError, CommandSettings, template_files
from netadapt.resources.lookup_table import LatencyTable, TableContext
from netadapt.resources.enumeration import enumerate_layers
from netadapt.resources.profiling import cache_context
from netadapt.resources.timing import ProfileSettings, time_units
from netadapt.resources.units import build_unit
from netadapt.layers import LayerSpec
from tests.conftest import REPO

SPEC = ModelSpec("plain_cnn", (1, 8, 8), 3)


@pytest.mark.parametrize("key, value, message", [
    ("command", "bench --graph={graph}", r"profile.command: unknown placeholder \{graph\} \(known: \{model\}"),
    ("command", "bench --runs {repeats}", r"profile.command: must contain \{model\}"),
    ("command", "bench {model:>10}", r"profile.command: placeholder \{model\} takes no format spec"),
    ("command", "bench {model", r"profile.command: not a valid template"),
    ("command", "bench {} {model}", r"profile.command: unknown placeholder \{\}"),
    ("command_pattern", "median_ms=([0-9.", r"profile.command_pattern: not a valid regular expression"),
    ("command_pattern", "median_ms=[0-9.]+", r"profile.command_pattern: needs a capture group"),
    ("command_timeout", 0, r"profile.command_timeout: must be > 0, got 0"),
])
def test_bad_command_keys_fail_at_config_time(key, value, message):
    with pytest.raises(ConfigError, match=f"^{message}") as info:
        parse_config({"profile": {"backend": "command", key: value}})
    assert "\n" not in str(info.value)


def test_the_default_command_and_a_literal_brace_are_valid():
    cfg = parse_config({"profile": {"backend": "command"}})
    assert "{python} devices/onnxruntime_device.py --model {model}" in cfg.profile.command
    parse_config({"profile": {"command": "sh -c 'echo {{ x }}; bench {model}'"}})


def test_placeholders_are_filled_and_shell_quoted():
    device = CommandSettings("{python} bench --graph={model} -r {repeats} -w {warmup} -t {threads} -b {batch_size}")
    line = device.command_line("/tmp/a b.onnx", 20, 5, 2, 4)
    assert shlex.split(line) == [sys.executable, "bench", "--graph=/tmp/a b.onnx", "-r", "20", "-w", "5", "-t", "2",
                                 "-b", "4"]


@pytest.mark.parametrize("template", [
    "sh -c 'test -f {model} && echo median_ms=1.5'",  # the documented `sh -c '...{model}...'` form
    'sh -c "test -f {model} && echo median_ms=1.5"',
    "sh -c 'sh -c \"test -f \\\"\\$0\\\" && echo median_ms=1.5\" {model}'",  # a quoted word inside "..." inside '...'
    "test -f {model} && echo median_ms=1.5",
    "test -f {model} && sh -c 'echo median_ms=1.5'",
])
@pytest.mark.parametrize("folder", ["a b", "it's mine", 'say "hi" $HOME `id` \\ ;'])
def test_a_temp_path_with_a_space_or_quotes_stays_one_argument(tmp_path: Path, template: str, folder: str):
    """Issue 27: the documented `sh -c '...{model}...'` template broke when the temp path had a space:
    the value, quoted for the top level, closed the template's own quotes. Each placeholder is quoted
    for the shell that reads it (`expand`), in quotes or not."""
    model = tmp_path / folder / "m.onnx"
    model.parent.mkdir()
    model.write_bytes(b"graph")
    assert CommandSettings(template).time_graph(str(model), 1, 0, 1, 1) == 1.5


def test_a_temp_folder_with_a_space_times_graphs_through_the_documented_template(tmp_path: Path, monkeypatch):
    """The exported graph goes to the temp folder (`tempfile`): one with a space in its name, as the
    issue's machine had, through `time_module` and the `sh -c '...'` form of the docs."""
    import tempfile

    (tmp_path / "my temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "my temp"))
    module, inputs = build_unit(LayerSpec("linear", 8, 3, 1, 1, bias=True))
    device = CommandSettings("sh -c 'test -s {model} && echo median_ms=0.5'")
    monkeypatch.setattr(backends, "command_overhead_ms", lambda device, threads: 0.125)
    assert time_module(module, inputs, "command", warmup=1, repeats=3, command=device).median_ms == 0.375


def test_the_pattern_reads_its_named_group_or_first_group_from_the_last_match():
    assert CommandSettings(pattern=r"median_ms=([0-9.]+)").read_ms("median_ms=9\nmedian_ms=1.5\n") == 1.5
    named = CommandSettings(pattern=r"(warm|avg) (?P<ms>[0-9.]+) ms")
    assert named.read_ms("warm 9.0 ms\navg 2.25 ms\n") == 2.25
    with pytest.raises(CommandError, match=r"^profile.command_pattern: .* read 'abc', not a time in ms"):
        CommandSettings(pattern=r"ms=(\w+)").read_ms("ms=abc")


def test_a_failing_command_names_the_key_and_its_last_output_line(tmp_path: Path):
    device = CommandSettings("sh -c 'echo loading; echo no such graph >&2; exit 3' {model}")
    with pytest.raises(CommandError, match=r"^profile.command: exited with status 3: sh -c .*; "
                                           r"last output line: 'no such graph'$"):
        device.time_graph(str(tmp_path / "m.onnx"), 5, 1, 1, 1)


def test_a_command_that_prints_no_time_names_the_pattern():
    device = CommandSettings("echo took 3 ms on {model}")
    with pytest.raises(CommandError, match=r"^profile.command_pattern: 'median_ms=\(\[0-9.eE\+-\]\+\)' matches "
                                           r"nothing in the output of echo took .*; "
                                           r"last output line: 'took 3 ms on x'"):
        device.time_graph("x", 5, 1, 1, 1)


def test_a_hanging_command_times_out_with_its_children(tmp_path: Path):
    """The command (a shell waiting on a child that sleeps for 2 minutes) is killed at its timeout,
    the child with it: the call returns long before the child would have ended, on any machine load,
    and the child is gone."""
    child = tmp_path / "child.pid"
    device = CommandSettings(f"sh -c 'echo started; sleep 120 & echo $! > {child}; wait' {{model}}", timeout_s=2)
    with pytest.raises(CommandError, match=r"^profile.command: timed out after 2 s \(profile.command_timeout\): "
                                           r".*; last output line: 'started'$"):
        device.time_graph("x", 5, 1, 1, 1)
    pid = int(child.read_text())
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the shell's child was killed with it"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_command_timings_exclude_the_fixed_cost_of_a_run(monkeypatch):
    """The fake device reports 0.5 ms for every graph; the identity graph's reading (its fixed per-run
    cost) is subtracted from every timing, never below 0. One invocation times all repeats."""
    module, inputs = build_unit(LayerSpec("linear", 8, 3, 1, 1, bias=True))
    device = CommandSettings("echo median_ms=0.5 {model}")
    backends.command_overhead_ms.cache_clear()
    assert backends.command_overhead_ms(device, 1) == 0.5
    assert time_module(module, inputs, "command", warmup=1, repeats=7, command=device).median_ms == 0.0
    monkeypatch.setattr(backends, "command_overhead_ms", lambda device, threads: 0.125)
    t = time_module(module, inputs, "command", warmup=1, repeats=7, command=device)
    assert (t.median_ms, t.p10_ms, t.p90_ms, t.repeats) == (0.375, 0.375, 0.375, 7)


def test_the_shipped_device_agrees_with_the_in_process_backend():
    """One conv unit, timed by `devices/onnxruntime_device.py` in its own process and by the
    `onnxruntime-cpu` backend in this one: the same engine, so within a factor of 2 on a busy CI."""
    module, inputs = build_unit(LayerSpec("conv", 32, 64, 14, 14, 3, 1, norm=True, act="relu6"))
    device = CommandSettings(f"{{python}} {REPO / 'devices' / 'onnxruntime_device.py'} --model {{model}} "
                             f"--runs {{repeats}} --warmup {{warmup}} --threads {{threads}}")
    by_command = time_module(module, inputs, "command", warmup=5, repeats=30, command=device).median_ms
    in_process = time_module(module, inputs, "onnxruntime-cpu", warmup=5, repeats=30).median_ms
    assert 0.5 < by_command / in_process < 2.0


def test_the_device_script_reports_errors_on_stderr_with_a_non_zero_status(tmp_path: Path):
    (tmp_path / "bad.onnx").write_bytes(b"not a graph")
    device = CommandSettings(f"{{python}} {REPO / 'devices' / 'onnxruntime_device.py'} --model {{model}}")
    with pytest.raises(CommandError,
                       match=r"exited with status 1: .*last output line: 'onnxruntime_device: cannot load"):
        device.time_graph(str(tmp_path / "bad.onnx"), 3, 1, 1, 1)


class BatchDevice:
    """A fake batch runner: a unit's time is a formula of its spec; calls are counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.batches: list[tuple[int, int]] = []
        build_unit_ = timing.build_unit

        def fake_build_unit(spec, batch_size=1):
            module, inputs = build_unit_(spec, batch_size)
            module.fake_ms = 0.01 + spec.macs * 1e-5
            return module, inputs

        monkeypatch.setattr(timing, "build_unit", fake_build_unit)
        monkeypatch.setattr(timing, "make_runner", self.make_runner)

    def make_runner(self, module, inputs, backend, threads=1, command=None):
        device = self

        class Runner:
            def time_batch(self, warmup: int, repeats: int) -> float:
                device.batches.append((warmup, repeats))
                return module.fake_ms

            def __call__(self) -> float:
                raise AssertionError("a batch runner is never timed call by call")
        return Runner()


def test_the_profiler_times_a_batch_runner_in_one_invocation_per_unit(monkeypatch):
    device = BatchDevice(monkeypatch)
    specs = enumerate_layers(build_supernet(SPEC))
    settings = ProfileSettings("command", warmup=2, repeats=9)
    times = time_units(specs, settings, group_size=5)
    assert device.batches == [(2, 9)] * len(specs)
    assert [r["latency_ms"] for r in times.rows] == pytest.approx(
        [0.01 + LayerSpec(**{k: r[k] for k in timing.KEY_FIELDS}).macs * 1e-5 for r in times.rows])
    assert times.measured == len(specs) and times.from_cache == 0 and times.repeat_spread == 1.0


def test_the_cache_keys_a_command_by_its_template_pattern_and_device_script():
    model = build_supernet(SPEC)
    script = "devices/onnxruntime_device.py"
    assert set(template_files(CommandSettings().template)) == {script}
    contexts = [cache_context(model, ProfileSettings("command", command=c)) for c in [
        CommandSettings(), CommandSettings(pattern=r"median=([0-9.]+)"),
        CommandSettings("ssh box bench -r {repeats} {model}")]]
    assert len({json.dumps(c, sort_keys=True) for c in contexts}) == 3
    local, remote = contexts[0], contexts[2]
    assert local["command_files"][script] and local["cpu"], "a {python} command runs here: its CPU counts"
    assert remote["cpu"] == remote["onnxruntime"] == "" and remote["command_files"] == {}


def test_the_tests_fake_device_reads_a_graph_by_its_size_alone():
    """`tests/fake_device.py`, the device of every test preset: a unit built twice (other random
    weights) reads the same to the last digit, whatever the machine's load; a wider one reads more."""
    from tests.presets import FAKE_DEVICE

    device = CommandSettings(str(FAKE_DEVICE["command"]))
    narrow, wide, again = (build_unit(LayerSpec("conv", 8, c, 6, 6, 3, 1, norm=True, act="relu")) for c in (4, 8, 4))
    times = [time_module(module, inputs, "command", warmup=1, repeats=3, command=device).median_ms
             for module, inputs in (narrow, wide, again)]
    assert times[0] == times[2] < times[1]
