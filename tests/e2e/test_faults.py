"""Fault injection on the tiny preset (issue 12): kill -9 at every publication rename, and every
artifact a stage reads damaged (truncated, zero-filled, garbled, or edited in a valid format).

**Kill at each rename.** A driver process (`python -m tests.e2e.test_faults`, run once per module) imports
the library once, patches `os.replace` / `os.rename` (every publication of `netadapt.io`, the
`.old` swap of `atomic_dir`, `clean_stale`'s restore and the lock's take-over go through them) and
forks one child per run, so each run pays no import. It runs the tiny pipeline once, uninterrupted
(the reference), counting the renames each stage makes and where they come from; then, for every
stage and every N up to its count, it starts from a copy of the project as it was before the stage,
runs the stage in a child that SIGKILLs itself at its N-th rename, runs the stage again, and compares:
the re-run must exit 0, leave no `.tmp` / `.old` / `.lock*` debris anywhere under the artifacts,
metrics and plots folders, and give what the uninterrupted run gave (file digests where the output
is deterministic; metrics, CSV and JSON contents without timings elsewhere). Variants: the stage
re-run over its own earlier outputs (the `atomic_dir` swap through `.<name>.old`), killed before and
after each new rename; and a stage started over a stale lock left by a killed holder. The sweep
takes up to 15 minutes on two cores: its tests are marked `slow` (`make test-all`, CI).

**Corrupt each artifact.** A table of (artifact, damage, consuming stage, expected outcome), each
run in-process on a copy of one finished tiny project: `refuse` means exit 2, exactly one
`netadapt: error:` line on stderr that names the file, no traceback; `recover` (caches and progress,
safe to discard) means exit 0 and the same deterministic result as the reference.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests import presets
from tests.conftest import REPO

STAGES = ("prepare", "profile", "supernet", "search", "finetune", "evaluate")
# One epoch each, the table timed least and accepted whatever its error, latency timed twice: many runs.
PRESET = presets.merged(presets.TINY, supernet={"epochs": 1},
                        profile={"network_repeats": 3, "max_error": 1000, "max_attempts": 1},
                        evaluate={"latency_repeats": 2, "latency_warmup": 0})
OUTPUTS = ("a", "m", "p")  # --artifacts, --metrics, --plots of a project folder


def project_args(root: Path, data: Path) -> list[str]:
    return presets.project(root, data, PRESET)


# ---------------------------------------------------------------------------------------------- results

DEBRIS = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|^\..+\.old$|^\.lock(\..*)?$")
# Timings, and what depends on them or on how much an interrupted run had already done.
VOLATILE = re.compile(r"seconds|time|latency|_ms$|^p10|^p90|error|drift|spread|constant|offset|reused|"
                      r"evaluated|units_|measured|rows_digest|outputs|attempts|^digest$|min_ratio|"
                      r"slowdown|contended|load_average|runnable|steal")


def debris(root: Path) -> list[str]:
    """What interrupted writes or a killed lock holder left under the project's output folders."""
    return sorted(p.relative_to(root).as_posix() for name in OUTPUTS if (root / name).is_dir()
                  for p in (root / name).rglob("*") if DEBRIS.match(p.name))


def _strip(value):
    if isinstance(value, dict):
        # timings are left out, keys and all: some (the OS's load figures) are there only when sampled
        return {k: _strip(v) for k, v in value.items() if not VOLATILE.search(str(k))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value


def result(root: Path) -> dict[str, object]:
    """The project's outputs, comparable across runs: every file under the output folders (but the
    resume caches, whose content is timing), deterministic ones by digest, JSON and CSV without
    timings, images by presence."""
    import pandas as pd

    found: dict[str, object] = {}
    for name in OUTPUTS:
        for path in sorted((root / name).rglob("*")) if (root / name).is_dir() else []:
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or rel.startswith("a/profile_cache/"):
                continue
            if path.suffix == ".png":
                found[rel] = "png"
            elif path.suffix == ".json":
                found[rel] = _strip(json.loads(path.read_text()))
            elif path.suffix == ".csv":
                frame = pd.read_csv(path, keep_default_na=False)
                found[rel] = _strip(frame[[c for c in frame.columns if not VOLATILE.search(c)]]
                                    .to_dict("records"))
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return found


def differences(got: dict, want: dict) -> list[str]:
    out = [f"{k}: {'missing' if k not in got else 'unexpected'}" for k in sorted(set(got) ^ set(want))]
    return out + [f"{k}: differs" for k in sorted(set(got) & set(want)) if got[k] != want[k]]


def copy_project(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        if (src / name).exists():
            shutil.copytree(src / name, dst / name, symlinks=True)


# ---------------------------------------------------------------------------------------------- the driver

_FAULT: dict = {"calls": [], "kill_at": None, "after": False, "root": None}


def _site() -> str:
    """Where a rename comes from: the library's frames (innermost first, at most four)."""
    frames, frame = [], sys._getframe(2)
    while frame is not None and len(frames) < 4:
        name = frame.f_code.co_filename
        if any(f"{os.sep}{pkg}{os.sep}" in name for pkg in ("netadapt", "flows", "tasks")):
            frames.append(f"{Path(name).stem}.{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(frames)


def _where(dst) -> str:
    """A rename's target, relative to the project, random temp names made generic."""
    rel = os.path.relpath(os.fspath(dst), _FAULT["root"]) if _FAULT["root"] else os.fspath(dst)
    rel = re.sub(r"\.[A-Za-z0-9_]{8}\.tmp", ".XXXXXXXX.tmp", rel)
    rel = re.sub(r"\.stale\.\d+$", ".stale.PID", rel)
    return re.sub(r"/\.stamps/(\w+)/\w+\.json$", r"/.stamps/\1/KEY.json", rel)


def _patch(real: Callable) -> Callable:
    def rename(src, dst, *args, **kwargs):
        _FAULT["calls"].append([_site(), _where(dst)])
        at = len(_FAULT["calls"]) == _FAULT["kill_at"]
        if at and not _FAULT["after"]:
            os.kill(os.getpid(), signal.SIGKILL)
        done = real(src, dst, *args, **kwargs)
        if at:
            os.kill(os.getpid(), signal.SIGKILL)
        return done
    return rename


def run_stage(stage: str, root: Path, data: Path, kill_at: int | None = None, after: bool = False,
              log: Path | None = None) -> tuple[str, list[list[str]]]:
    """Run `netadapt <stage>` in a forked child (of the driver, which has imported everything):
    ("exit N" | "killed", the renames it made as [site, target])."""
    from netadapt_flows.cli import main

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 70
        try:
            os.close(read)
            out = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            _FAULT.update(calls=[], kill_at=kill_at, after=after, root=str(root))
            try:
                code = main([stage, *project_args(root, data)])
            except BaseException as exc:  # noqa: BLE001 - reported as exit 71 with the traceback in the log
                import traceback

                traceback.print_exc()
                code = 71 if not isinstance(exc, SystemExit) else int(exc.code or 0)
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(write, json.dumps(_FAULT["calls"]).encode())
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 1 << 16):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ("killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"), []
    return f"exit {os.WEXITSTATUS(status)}", json.loads(b"".join(chunks) or b"[]")


def _stale_lock(root: Path) -> None:
    """The lock file of a holder that was killed: a pid that is not alive on this host."""
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "a" / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                  "command": "netadapt killed", "since": "then"}) + "\n")


def sweep(work: Path) -> dict:
    """The whole kill-at-rename sweep; a JSON-able report."""
    data = presets.tiny_data(work / "data")
    ref = work / "ref"
    report: dict = {"stages": {}, "trials": []}
    before: dict[str, Path] = {}
    for stage in STAGES:
        before[stage] = work / f"before-{stage}"
        copy_project(ref, before[stage])
        status, calls = run_stage(stage, ref, data, log=work / f"ref-{stage}.log")
        assert status == "exit 0", f"reference {stage}: {status}; see {work / f'ref-{stage}.log'}"
        report["stages"][stage] = {"calls": calls, "result": result(ref)}
    final = work / "final"
    copy_project(ref, final)

    def trial(stage: str, variant: str, start: Path, kill_at: int, after: bool, want: dict, site: list) -> None:
        root = work / f"t-{stage}-{variant}-{kill_at}{'a' if after else 'b'}"
        copy_project(start, root)
        if variant == "stale-lock":
            _stale_lock(root)
        log = root / "log"
        killed, _ = run_stage(stage, root, data, kill_at=kill_at, after=after, log=log)
        left = debris(root)
        rerun, _ = run_stage(stage, root, data, log=log)
        problems = [] if killed == "killed" else [f"not killed: {killed}"]
        problems += [] if rerun == "exit 0" else [f"re-run: {rerun}: {log.read_text()[-400:]!r}"]
        problems += [f"debris after the re-run: {d}" for d in debris(root)]
        if rerun == "exit 0":
            problems += differences(result(root), want)
        report["trials"].append({"stage": stage, "variant": variant, "kill": f"{'after' if after else 'before'} "
                                 f"rename {kill_at}", "site": site, "left_by_kill": left, "problems": problems})
        shutil.rmtree(root, ignore_errors=True)

    for stage in STAGES:
        calls, want = report["stages"][stage]["calls"], report["stages"][stage]["result"]
        seen = {tuple(c) for c in calls}
        # every rename of an uninterrupted run; a site the run passes many times (once per epoch or
        # iteration) at its first and last pass
        first = {tuple(c): n for n, c in reversed(list(enumerate(calls, 1)))}
        last = {tuple(c): n for n, c in enumerate(calls, 1)}
        for n, site in enumerate(calls, 1):
            if n in (first[tuple(site)], last[tuple(site)]):
                trial(stage, "fresh", before[stage], n, False, want, site)
        # the stage again over its own outputs: renames the first run did not make (the `.old` swap)
        after_stage = before[STAGES[STAGES.index(stage) + 1]] if stage != STAGES[-1] else final
        over = work / f"over-{stage}"
        copy_project(after_stage, over)
        status, over_calls = run_stage(stage, over, data, log=work / f"over-{stage}.log")
        assert status == "exit 0", f"{stage} over its outputs: {status}"
        over_want = result(over)
        shutil.rmtree(over)
        report["stages"][stage]["over_calls"] = over_calls
        for n, site in enumerate(over_calls, 1):
            if tuple(site) not in seen:
                seen.add(tuple(site))
                for after in (False, True):
                    trial(stage, "over", after_stage, n, after, over_want, site)
    # a stage started over a killed holder's lock: killed before and after the take-over's rename
    _stale_lock(work / "lock-probe")
    status, lock_calls = run_stage("prepare", work / "lock-probe", data, log=work / "lock-probe.log")
    assert status == "exit 0" and "lock" in lock_calls[0][0], lock_calls[:1]
    for after in (False, True):
        trial("prepare", "stale-lock", before["prepare"], 1, after, report["stages"]["prepare"]["result"],
              lock_calls[0])
    return report


@pytest.fixture(scope="module")
def sweep_process(tmp_path_factory):
    """The kill sweep's driver, started once per module and left to run in parallel with the in-process
    corruption tests (which start it first when both are selected); stopped if nobody waited for it."""
    work = tmp_path_factory.mktemp("kill-sweep")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NETADAPT_TRACKING": "off"}
    with open(work / "driver.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.e2e.test_faults", str(work)], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    yield work, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def kill_sweep(sweep_process) -> dict:
    work, proc = sweep_process
    code = proc.wait(timeout=900)
    assert code == 0, (work / "driver.log").read_text()[-3000:]
    return json.loads((work / "report.json").read_text())


# ---------------------------------------------------------------------------------------------- corruption

def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero(path: Path) -> None:
    path.write_bytes(b"\0" * path.stat().st_size)


def _garble(path: Path) -> None:
    """16 bytes in the middle replaced (seeded): the length stays, a zip's records and JSON's syntax break."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = hashlib.sha256(path.name.encode()).digest()[:16]
    path.write_bytes(bytes(data))


def _edit_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        blob = json.loads(path.read_text())
        change(blob)
        path.write_text(json.dumps(blob))
    return edit


def _edit_tensors(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        import torch

        blob = torch.load(path, weights_only=True)
        change(blob)
        buffer = io.BytesIO()
        torch.save(blob, buffer)
        path.write_bytes(buffer.getvalue())
    return edit


def _edit_csv(change: Callable) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        import pandas as pd

        frame = pd.read_csv(path, keep_default_na=False)
        change(frame)
        frame.to_csv(path, index=False)
    return edit


def _history_resource(blob: dict) -> None:
    """A valid-format edit: a row's resource halved and the rows' digest recomputed to match."""
    from netadapt.history import rows_digest as _rows_digest

    blob["rows"][1]["resource_estimated"] *= 0.5
    blob["rows_digest"] = _rows_digest(blob["rows"])


def _arch_width(blob: dict) -> None:
    """A valid-format edit: the first dimension wider than the super-network's (consistent in itself)."""
    dim = blob["dimensions"][0]
    dim["max_width"] = dim["width"] = dim["max_width"] * 2


def _foreign_model(blob: dict) -> None:
    """A valid-format edit: the checkpoint names a model class of another module (issue 27: resolving
    the name imported, so ran, that module; `this` printed the Zen of Python)."""
    blob["arch"] = re.sub(r'"name": "[^"]*"', '"name": "this:X"', blob["arch"], count=1)


def _labels_out_of_range(blob: dict) -> None:
    blob["labels"] = blob["labels"] + 100


def _lut_nan(frame) -> None:
    frame["latency_ms"] = frame["latency_ms"].astype(object)
    frame.loc[2, "latency_ms"] = "nan"


def _cache_edit(path: Path) -> None:
    """A unit line whose latency is not a number (valid JSON, wrong content)."""
    lines = path.read_text().splitlines()
    row = json.loads(lines[1])
    row["latency_ms"] = -1.0
    lines[1] = json.dumps(row, sort_keys=True)
    path.write_text("\n".join(lines) + "\n")


def _random_bytes(path: Path) -> None:
    import random

    path.write_bytes(random.Random(27).randbytes(path.stat().st_size))


def _text(path: Path) -> None:
    path.write_text("not a model\n")


def _delete(path: Path) -> None:
    path.unlink()


def _cache_file(root: Path) -> Path:
    return next((root / "a" / "profile_cache").rglob("units-*.jsonl"))


def _stamp_file(stage: str) -> Callable[[Path], Path]:
    return lambda root: next((root / "a" / ".stamps" / stage).glob("*.json"))


@dataclass(frozen=True)
class Damage:
    artifact: str  # relative to the project, or a callable finding it
    how: str
    stage: str  # the stage that reads it
    expect: str  # refuse | recover
    change: Callable[[Path], None]
    args: tuple[str, ...] = ()  # extra overrides for the consuming run
    find: Callable[[Path], Path] | None = None
    known: str = ""  # a known failure: the fix it needs, in code this change does not own (strict xfail)
    removed: tuple[str, ...] = ()  # removed first, so that the stage reads the artifact (no replay)

    @property
    def id(self) -> str:
        return f"{self.artifact.replace('a/', '').replace('/', '-')}-{self.how}-{self.stage}"


HOWS = {"truncate": _truncate, "zero": _zero, "garble": _garble}
LATENCY = ("-S", "search.metric=latency", "-S", "search.budget=0.95", "-S", "profile.interpolate=true")
DAMAGES: list[Damage] = [
    *[Damage(f"a/prepared/{split}{suffix}", how, stage, "refuse", fn, removed=removed)
      for split, stage, removed in (("train", "supernet", ()), ("holdout", "search", ("a/search/history.json",)),
                                    ("test", "evaluate", ()))
      for suffix in (".pt", ".images.npy") for how, fn in HOWS.items()],
    Damage("a/prepared/train.pt", "labels", "supernet", "refuse", _edit_tensors(_labels_out_of_range)),
    *[Damage("a/prepared/meta.json", how, "profile", "refuse", fn) for how, fn in HOWS.items()],
    Damage("a/prepared/meta.json", "no-classes", "supernet", "refuse", _edit_json(lambda b: b.pop("classes"))),
    *[Damage("a/profile/lut.csv", how, "evaluate", "refuse", fn) for how, fn in HOWS.items()],
    Damage("a/profile/lut.csv", "nan", "search", "refuse", _edit_csv(_lut_nan), LATENCY),
    Damage("a/profile/lut.csv", "nan", "evaluate", "refuse", _edit_csv(_lut_nan)),
    *[Damage("a/profile/lut.json", how, "search", "refuse", fn, LATENCY) for how, fn in HOWS.items()],
    Damage("a/profile/lut.json", "no-context", "evaluate", "refuse", _edit_json(lambda b: b.pop("context"))),
    *[Damage("a/supernet/supernet.pt", how, stage, "refuse", fn)
      for how, fn in HOWS.items() for stage in ("search", "finetune")],
    Damage("a/supernet/supernet.pt", "no-arch", "evaluate", "refuse", _edit_tensors(lambda b: b.pop("arch"))),
    *[Damage("a/supernet/supernet.pt", "foreign-model", stage, "refuse", _edit_tensors(_foreign_model))
      for stage in ("search", "finetune")],
    *[Damage("a/search/history.json", how, "search", "refuse", fn) for how, fn in HOWS.items()],
    Damage("a/search/history.json", "resource", "search", "refuse", _edit_json(_history_resource)),
    Damage("a/search/history.json", "no-rows-digest", "search", "refuse",
           _edit_json(lambda b: b.pop("rows_digest"))),
    Damage("a/search/history.json", "garble", "evaluate", "refuse", _garble),
    Damage("a/search/history.csv", "garble", "evaluate", "refuse", _garble),
    Damage("a/search/history.csv", "zero", "evaluate", "refuse", _zero),
    *[Damage("a/search/arch.json", how, "finetune", "refuse", fn) for how, fn in HOWS.items()],
    Damage("a/search/arch.json", "widths", "finetune", "refuse", _edit_json(_arch_width)),
    *[Damage("a/finetune/model.pt", how, "evaluate", "refuse", fn) for how, fn in HOWS.items()],
    Damage("a/finetune/model.pt", "no-state", "evaluate", "refuse", _edit_tensors(lambda b: b.pop("state_dict"))),
    Damage("a/finetune/model.pt", "foreign-model", "evaluate", "refuse", _edit_tensors(_foreign_model)),
    # the deliverables evaluate reports on: checked against finetune's digests (issue 27, item 11)
    *[Damage("a/finetune/model.onnx", how, "evaluate", "refuse", fn)
      for how, fn in {**HOWS, "random": _random_bytes, "text": _text, "deleted": _delete}.items()],
    Damage("a/finetune/model.pt", "deleted", "evaluate", "refuse", _delete),
    *[Damage("a/finetune/digests.json", how, "evaluate", "refuse", fn)
      for how, fn in {"garble": _garble, "deleted": _delete,
                      "edit": _edit_json(lambda b: b.update({"model.onnx": "0" * 64}))}.items()],
    *[Damage(f"a/progress/{stage}.pt", how, stage, "recover", fn)
      for stage in ("supernet", "finetune") for how, fn in HOWS.items()],
    Damage("a/progress/supernet.pt", "other-key", "supernet", "recover", _edit_tensors(lambda b: b.update(key="x"))),
    *[Damage("profile_cache", how, "profile", "recover", fn, find=_cache_file)
      for how, fn in {**HOWS, "edit": _cache_edit}.items()],
    Damage("a/.lock", "garble", "supernet", "refuse", lambda path: path.write_bytes(b"\x93\x00 not a lock")),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, request):
    """One finished tiny project, plus the progress files of its supernet and finetune stages as an
    interrupted run would leave them (all epochs saved); and each stage's reference result."""
    from netadapt.resume import Progress
    from netadapt_flows.cli import main

    if any("kill_sweep" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("sweep_process")  # the kill sweep runs on the other core meanwhile

    work = tmp_path_factory.mktemp("corrupt")
    data = presets.tiny_data(work / "data")
    root = work / "ref"
    results = {}
    for stage in STAGES:
        assert main([stage, *project_args(root, data)]) == 0
        results[stage] = result(root)
    keep = root / "kept-progress"
    keep.mkdir()
    clear = Progress.clear
    try:  # the stages' progress, kept: what a run killed after its last epoch leaves
        Progress.clear = lambda self: shutil.copy2(self.path, keep / self.path.name)
        for stage in ("supernet", "finetune"):
            assert main([stage, *project_args(root, data)]) == 0
    finally:
        Progress.clear = clear
    for saved in keep.iterdir():
        shutil.copy2(saved, root / "a" / "progress" / saved.name)
    shutil.rmtree(keep)
    return root, data, results


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:200]


def outcome(case: Damage, root: Path, data: Path, results: dict, capsys) -> tuple[str, str]:
    """("refused" | "recovered" | "traceback" | "accepted" | "unnamed" | ..., detail)."""
    from netadapt_flows.cli import main

    path = case.find(root) if case.find else root / case.artifact
    for name in case.removed:
        (root / name).unlink()
    case.change(path)
    capsys.readouterr()
    try:
        code = main([case.stage, *project_args(root, data), *case.args])
    except Exception as exc:  # noqa: BLE001 - what a user sees as a traceback
        return "traceback", f"{type(exc).__name__}: {_first_line(str(exc))}"
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("netadapt: error:")]
    if code == 0:
        if case.expect == "recover":
            if case.stage == "profile":  # the table it wrote is one a later stage accepts
                from netadapt.resources.lookup_table import LatencyTable

                try:
                    LatencyTable.load(root / "a" / "profile" / "lut.csv")
                except Exception as exc:  # noqa: BLE001
                    return "wrong result", _first_line(str(exc))
            settled = lambda found: {k: v for k, v in found.items() if not k.startswith("a/progress/")}  # noqa: E731
            problems = differences(settled(result(root)), settled(results["evaluate"]))
            return ("recovered", "") if not problems else ("wrong result", "; ".join(problems[:3]))
        return "accepted", "exit 0"
    if code != 2 or "Traceback" in err or len(errors) != 1:
        return "badly refused", f"exit {code}: {err[-300:]!r}"
    if str(path) not in errors[0]:
        return "unnamed", errors[0][:200]
    return "refused", errors[0][:200]


@pytest.mark.parametrize("case", [pytest.param(d, id=d.id, marks=[pytest.mark.xfail(strict=True, reason=d.known)]
                                               if d.known else []) for d in DAMAGES])
def test_a_damaged_artifact_is_refused_naming_it_or_recomputed(case: Damage, finished, tmp_path, capsys):
    ref, data, results = finished
    root = tmp_path / "project"
    copy_project(ref, root)
    got, detail = outcome(case, root, data, results, capsys)
    if os.environ.get("NETADAPT_FAULTS_REPORT"):  # the figures of the issue: one JSON line per case
        with open(os.environ["NETADAPT_FAULTS_REPORT"], "a") as f:
            f.write(json.dumps({"case": case.id, "expect": case.expect, "got": got, "detail": detail}) + "\n")
    assert got == ("recovered" if case.expect == "recover" else "refused"), f"{got}: {detail}"


@pytest.mark.parametrize("stage", ["supernet", "finetune"])
def test_a_stage_that_cannot_publish_its_metrics_keeps_its_finished_training(stage, finished, tmp_path, monkeypatch,
                                                                             caplog, capsys):
    """Issue 27 item 6: progress is cleared only once everything the stage publishes is written. A
    metrics folder that refuses the write (read-only) used to throw the finished epochs away: the
    next run trained them all again; now it resumes after the last one."""
    import errno
    import logging

    from netadapt import stages
    from netadapt_flows.cli import main

    ref, data, _ = finished
    root = tmp_path / "project"
    copy_project(ref, root)
    progress = root / "a" / "progress" / f"{stage}.pt"
    assert progress.is_file()  # every epoch saved: what a run that trained them all leaves

    def read_only(name, metrics, paths):
        raise OSError(errno.EROFS, "Read-only file system", str(paths.metrics_file(name)))

    monkeypatch.setattr(stages, "write_metrics", read_only)
    assert main([stage, *project_args(root, data)]) == 2
    assert f"{root / 'm' / stage}.json: on a read-only file system" in capsys.readouterr().err  # one line
    assert progress.is_file(), "the finished training was thrown away before its metrics were written"
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="netadapt"):
        assert main([stage, *project_args(root, data)]) == 0
    assert "resuming after epoch" in caplog.text and f"{stage} epoch 1/" not in caplog.text
    assert not progress.exists() and (root / "m" / f"{stage}.json").is_file()


@pytest.mark.parametrize("how", [*HOWS, "edit"])
def test_a_damaged_stamp_is_never_trusted(finished, tmp_path, how):
    """A stamp tells the flow a stage is up to date (and gives its metrics): a damaged one must make
    the stage run again (`read_stamp` None), never serve what it says."""
    from netadapt import stamps
    from netadapt.config import load_config
    from netadapt.layout import Paths

    ref, data, _ = finished
    root = tmp_path / "project"
    copy_project(ref, root)
    args = project_args(root, data)
    overrides = [args[i + 1] for i, arg in enumerate(args) if arg == "-S"]
    cfg, paths = load_config(Path(args[1]), overrides), Paths(root / "a", root / "m", root / "p")
    key = stamps.stage_key("search", cfg, paths)
    assert stamps.read_stamp("search", key, paths) is not None
    path = stamps.stamp_path("search", key, paths)
    if how == "edit":  # valid JSON, outputs' digests intact: only the metrics the flow would report changed
        _edit_json(lambda blob: blob["metrics"].update(holdout_acc=1.0))(path)
    else:
        HOWS[how](path)
    assert stamps.read_stamp("search", key, paths) is None


def test_the_damage_table_covers_every_artifact_a_stage_reads():
    artifacts = {d.artifact for d in DAMAGES}
    assert artifacts >= {"a/prepared/train.pt", "a/prepared/holdout.pt", "a/prepared/test.pt",
                         "a/prepared/meta.json", "a/profile/lut.csv", "a/profile/lut.json",
                         "a/supernet/supernet.pt", "a/search/history.json", "a/search/history.csv",
                         "a/search/arch.json", "a/finetune/model.pt", "a/finetune/model.onnx",
                         "a/finetune/digests.json", "a/progress/supernet.pt",
                         "a/progress/finetune.pt", "profile_cache", "a/.lock",
                         *[f"a/prepared/{s}.images.npy" for s in ("train", "holdout", "test")]}
    for artifact in artifacts:
        hows = {d.how for d in DAMAGES if d.artifact == artifact}
        assert hows & {"truncate", "zero", "garble"}, artifact


# ---------------------------------------------------------------------------------------------- signals

def interrupt(args: list[str], sig: int, when: str, env: dict) -> tuple[int, str]:
    """`netadapt <args>` in a process of its own, sent `sig` once its stderr shows `when` (a finished
    epoch): (exit status, stderr)."""
    # as a terminal starts it: a test run in the background (`make test &`) has SIGINT ignored, and a
    # command inherits that (and keeps it, as a background job should)
    proc = subprocess.Popen([sys.executable, "-m", "netadapt_flows.cli", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if when in line:
            proc.send_signal(sig)
            break
    seen.append(proc.communicate(timeout=600)[1])
    return proc.returncode, "".join(seen)


def mlflow_runs(uri: str) -> list[tuple[str, str]]:
    """(run name, status) of every run in the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    return sorted((r.info.run_name, r.info.status) for r in client.search_runs(ids))


SIGNALLED = [("supernet", signal.SIGINT, 130), ("finetune", signal.SIGINT, 130), ("flow", signal.SIGINT, 130),
             ("finetune", signal.SIGTERM, 143), ("flow", signal.SIGTERM, 143)]  # the flow: Prefect's own SIGTERM


@pytest.mark.parametrize("stage,sig,code", SIGNALLED, ids=[f"{s}-{g.name}" for s, g, _ in SIGNALLED])
def test_an_interrupted_command_says_so_in_one_line_and_keeps_its_finished_epochs(stage, sig, code, finished,
                                                                                  tmp_path):
    """Issue 27 items 7 and 10: Ctrl-C (and SIGTERM) during training used to print a 66-line traceback
    (SIGTERM: nothing), leave the lock behind and the MLflow runs RUNNING forever. Now: one line, exit
    130 (143), the finished epochs' progress kept, the lock released, the stage's run and its
    pipeline's parent run ended KILLED."""
    ref, data, _ = finished
    root = tmp_path / "project"
    copy_project(ref, root)
    shutil.rmtree(root / "a" / "progress")
    trained = "supernet" if stage == "supernet" else "finetune"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "NETADAPT_TRACKING": "on", "MLFLOW_TRACKING_URI": uri,
           "PREFECT_HOME": str(tmp_path / "prefect"), "OMP_NUM_THREADS": "1"}
    args = [stage, *project_args(root, data), "-S", f"{trained}.epochs=50"]
    status, err = interrupt(args, sig, f"{trained} epoch 2/50", env)  # epoch 1 saved: 2 is logged before
    said = [line for line in err.splitlines() if line.startswith("netadapt:")]
    assert status == code and "Traceback" not in err and len(said) == 1 and "interrupted" in said[0], err[-3000:]
    assert (root / "a" / "progress" / f"{trained}.pt").is_file(), "the finished epochs' progress"
    assert not (root / "a" / ".lock").exists() and not debris(root)
    runs = mlflow_runs(uri)
    assert (trained, "KILLED") in runs and not [r for r in runs if r[1] == "RUNNING"], runs


FAKE_DVC = """import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:])
print(child.pid, flush=True)
child.wait()
"""


def test_a_stage_whose_dvc_is_terminated_stops_too(finished, tmp_path):
    """Issue 27 item 9: SIGTERM to `dvc repro -s supernet` killed dvc only; the stage, orphaned, went
    on training holding the lock. A stand-in for dvc (a script named `dvc` that runs the stage and
    dies of the SIGTERM as dvc does): the stage now stops as if it had been sent SIGTERM itself."""
    ref, data, _ = finished
    root = tmp_path / "project"
    copy_project(ref, root)
    shutil.rmtree(root / "a" / "progress")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dvc").write_text(FAKE_DVC)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    dvc = subprocess.Popen([sys.executable, str(tmp_path / "bin" / "dvc"), sys.executable, "-m", "netadapt_flows.cli",
                            "supernet", *project_args(root, data), "-S", "supernet.epochs=50"],
                           cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    int(dvc.stdout.readline())
    seen = []
    for line in dvc.stderr:
        seen.append(line)
        if "supernet epoch 2/50" in line:
            dvc.terminate()
            break
    assert dvc.wait() == -signal.SIGTERM
    seen.append(dvc.stderr.read())  # until the stage, which holds the pipe too, has exited
    err = "".join(seen)
    assert "supernet epoch 50/50" not in err and "netadapt: interrupted (SIGTERM)" in err, err[-2000:]
    assert not (root / "a" / ".lock").exists() and (root / "a" / "progress" / "supernet.pt").is_file()


# ---------------------------------------------------------------------------------------------- kill at rename

# Every publication site of the tiny pipeline: the targets of its renames (temp names made generic).
# The sweep kills every stage before (and, re-run over its own outputs, after) each of them; a site
# that is not listed here fails `test_every_publication_site_is_listed_and_killed_at` until it is.
SITES = {
    # prepare: the splits and their description into a staging folder, published by one rename
    *[f"a/.prepared.XXXXXXXX.tmp/{name}" for name in ("train.pt", "holdout.pt", "test.pt", "meta.json")],
    "a/prepared", "a/.prepared.old",
    # profile: lut.csv + lut.json likewise; the fidelity check's data and plot
    "a/.profile.XXXXXXXX.tmp/lut.csv", "a/.profile.XXXXXXXX.tmp/lut.json", "a/profile", "a/.profile.old",
    "p/fidelity.csv", "p/fidelity.png",
    # supernet: progress after every epoch, the checkpoint, the training curve
    "a/progress/supernet.pt", "a/supernet/supernet.pt", "p/supernet.csv",
    # search: the history after every iteration (and at the end), the architecture, the trajectory
    "a/search/history.json", "a/search/history.csv", "a/search/arch.json", "p/search.csv", "p/search.png",
    # finetune: progress after every epoch; model.pt + model.onnx in a staging folder; the curve
    "a/progress/finetune.pt", "a/.finetune.XXXXXXXX.tmp/model.pt", "a/.finetune.XXXXXXXX.tmp/model.onnx",
    "a/.finetune.XXXXXXXX.tmp/digests.json",
    "a/finetune", "a/.finetune.old", "p/finetune.csv",
    # evaluate
    "p/tradeoff.png",
    # every stage: its report, its metrics, its stamp; a killed holder's lock taken over
    *[f"a/reports/{stage}.json" for stage in STAGES], *[f"m/{stage}.json" for stage in STAGES],
    *[f"a/.stamps/{stage}/KEY.json" for stage in STAGES], "a/.lock.stale.PID",
}


@pytest.mark.slow
def test_every_publication_site_is_listed_and_killed_at(kill_sweep):
    made = {t["site"][1] for t in kill_sweep["trials"]}
    assert made == SITES, f"not listed: {sorted(made - SITES)}; not made: {sorted(SITES - made)}"


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_killed_at_any_rename_reruns_clean_to_the_same_result(kill_sweep, stage):
    trials = [t for t in kill_sweep["trials"] if t["stage"] == stage]
    sites = {tuple(c) for c in kill_sweep["stages"][stage]["calls"]}
    assert {tuple(t["site"]) for t in trials if t["variant"] == "fresh"} == sites and sites
    failed = [f"{t['variant']} {t['kill']} ({t['site'][1]}): {'; '.join(t['problems'])}" for t in trials
              if t["problems"]]
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_a_kill_at_the_lock_take_over_leaves_no_stale_lock(kill_sweep):
    trials = [t for t in kill_sweep["trials"] if t["variant"] == "stale-lock"]
    assert len(trials) == 2 and not [t["problems"] for t in trials if t["problems"]]


if __name__ == "__main__":  # the kill sweep's driver: python -m tests.e2e.test_faults <work folder>
    folder = Path(sys.argv[1])
    # never the project's MLflow store or Prefect state, whoever starts the driver
    os.environ.update(NETADAPT_TRACKING="off", MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}",
                      PREFECT_HOME=str(folder / "prefect"), OMP_NUM_THREADS="1")
    # everything a stage imports, imported (and the code's digest taken) once, before forking: every
    # run of the sweep sees the same code even if the working tree changes meanwhile
    import netadapt.lock  # noqa: F401
    import netadapt.run_stage  # noqa: F401
    import netadapt.stages  # noqa: F401
    import netadapt.stamps  # noqa: F401
    import netadapt_flows.cli  # noqa: F401
    import netadapt_tracking  # noqa: F401
    import matplotlib  # noqa: F401 - what the stages import lazily: plots, the ONNX exporter
    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import torch.onnx  # noqa: F401
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        pass
    from netadapt.io import code_version

    code_version()

    os.replace, os.rename = _patch(os.replace), _patch(os.rename)
    started = time.monotonic()
    out = sweep(folder)
    out["seconds"] = round(time.monotonic() - started, 1)
    (folder / "report.json").write_text(json.dumps(out, indent=1))


def test_a_write_over_the_file_size_limit_is_one_line_naming_the_artifact(tmp_path: Path):
    """`ulimit -f` (or a full disk) during prepare printed an EFBIG traceback without the file's name."""
    data = presets.tiny_data(tmp_path / "data", train=300, test=60)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NETADAPT_TRACKING": "off"}
    command = " ".join([sys.executable, "-m", "netadapt_flows.cli", "prepare", *map(shlex.quote, project_args(tmp_path, data))])
    done = subprocess.run(["bash", "-c", f"ulimit -f 64; exec {command}"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("netadapt: error: ") and "over the file size limit (ulimit -f)" in line, done.stderr
    assert str(tmp_path / "a" / "prepared") in line and "Traceback" not in done.stderr
    assert not (tmp_path / "a" / "prepared").exists(), "nothing half-written was published"


def test_a_read_only_artifacts_folder_is_one_line_naming_the_lock(tmp_path: Path):
    """Issue 27 item 10: an artifacts folder without write permission (EACCES; a read-only mount gives
    EROFS, said the same way) made creating the lock a PermissionError traceback. Now one line naming
    the lock file, exit 2. Root writes anyway: it runs without the capability that lets it."""
    data = presets.tiny_data(tmp_path / "data", train=100, test=20)
    artifacts = tmp_path / "a"
    artifacts.mkdir()
    artifacts.chmod(0o555)
    command = [sys.executable, "-m", "netadapt_flows.cli", "prepare", *project_args(tmp_path, data)]
    if os.geteuid() == 0:
        drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
        if not shutil.which("setpriv") or subprocess.run([*drop, "true"], capture_output=True).returncode:
            pytest.skip("running as root, and setpriv cannot drop CAP_DAC_OVERRIDE here")
        command = [*drop, *command]
    env = {**os.environ, "PYTHONPATH": str(REPO), "NETADAPT_TRACKING": "off"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"netadapt: error: {artifacts / '.lock'}: permission denied"), line
    assert os.listdir(artifacts) == []


def test_a_full_disk_at_the_second_epoch_keeps_the_first(finished, tmp_path, monkeypatch, capsys, caplog):
    """Issue 27 item 10: a write refused mid-training (a full disk, `ulimit -f`: the OS names no file) is
    one line naming the artifact, and the epochs saved before it stay: the next run resumes after them."""
    import errno
    import logging

    from netadapt import io as artifact_io
    from netadapt import resume
    from netadapt_flows.cli import main

    ref, data, _ = finished
    root = tmp_path / "project"
    copy_project(ref, root)
    shutil.rmtree(root / "a" / "progress")
    args = [*project_args(root, data), "-S", "supernet.epochs=3"]
    saves: list[Path] = []

    def full_at_the_second(path, obj):
        saves.append(Path(path))
        if len(saves) < 2:
            return artifact_io.save_tensors(path, obj)
        with artifact_io.atomic_path(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() fails: no file named

    monkeypatch.setattr(resume, "save_tensors", full_at_the_second)
    assert main(["supernet", *args]) == 2
    progress = root / "a" / "progress" / "supernet.pt"
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"netadapt: error: {progress}: no space left on the device"), line
    assert progress.is_file() and not debris(root)
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="netadapt"):
        assert main(["supernet", *args]) == 0
    assert "resuming after epoch 1 " in caplog.text and "supernet epoch 1/3" not in caplog.text
