"""One writer per project: a lock file `<artifacts>/.lock` held while a stage (or a whole pipeline)
writes the project's artifacts, metrics and plots, so two runs that write the same outputs never race.

The file is created with O_CREAT|O_EXCL and holds one JSON line: the holder's pid, host, command and
start time. A second writer fails at once, naming the holder. A lock whose pid is no longer alive on
this host is stale (its holder was killed): it is taken over, with a log line. The lock is per
process and re-entrant within it (the flow's stage tasks run in the process that holds it), and a
process started by the holder (a served flow run: the runner's subprocess) shares it: the holder
lists its pid in `NETADAPT_LOCK_PIDS`, which child processes inherit.

Guards: other locks a front end holds with this one (`acquire(..., guards=...)`: DVC's write lock on
the project's folders, `netadapt_tasks.dvc.dvc_writes`, so that a `dvc repro` refuses before it removes
an output). A guard is entered before the lock file is created, only by the process that takes the
lock for itself (not re-entrantly, not by a child sharing its parent's), and left after the file is
removed; it refuses by raising `LockHeld`.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from netadapt.errors import NetAdaptError

log = logging.getLogger("netadapt")

LOCK_NAME = ".lock"
ENV = "NETADAPT_LOCK_PIDS"  # pids whose locks this process may share (its ancestors that hold one)

_held: dict[Path, int] = {}  # lock file -> depth, for the locks this process holds or shares
_owned: set[Path] = set()  # the lock files this process created (and removes when done)
_made: set[Path] = set()  # artifacts folders acquire created (removed on release if still empty)
_guards: dict[Path, ExitStack] = {}  # lock file -> the guards its holder entered with it
_mutex = threading.RLock()

Guard = Callable[[Path, str], AbstractContextManager]  # (artifacts folder, holder's command) -> held while locked


class LockHeld(NetAdaptError):
    """Another live process holds the project's lock."""


def lock_path(artifacts: str | Path) -> Path:
    return Path(artifacts) / LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _read(path: Path) -> dict | None:
    """The holder recorded in `path`; None when there is no lock; {} when it cannot be read (being
    written, or garbage)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # unreadable, or not UTF-8 (garbage)
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else {}


def _stale(holder: dict, path: Path) -> bool:
    """The holder's process is gone: same host and no such pid. An unreadable lock file is stale
    once it is a minute old (a holder writes it right after creating it)."""
    if not holder:
        try:
            return time.time() - path.stat().st_mtime > 60
        except FileNotFoundError:
            return False
    return holder.get("host") == socket.gethostname() and not _alive(holder["pid"])


def _shared_pids() -> set[int]:
    return {int(p) for p in os.environ.get(ENV, "").split(",") if p.strip().isdigit()}


def _describe(holder: dict) -> str:
    if not holder:
        return "an unknown process (the lock file is unreadable)"
    host = "" if holder.get("host") == socket.gethostname() else f" on {holder.get('host')}"
    return f"pid {holder['pid']}{host} ({holder.get('command', '?')}, since {holder.get('since', '?')})"


def _create(path: Path, command: str) -> bool:
    """Create the lock file for this process; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record) + "\n")
    return True


def _take_over(path: Path, holder: dict) -> None:
    """Remove a stale lock file, unless it changed since it was judged stale (then put it back)."""
    aside = path.with_name(f"{path.name}.stale.{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != holder:  # another process took it over meanwhile: that lock is live
        try:
            os.link(aside, path)
        except OSError:
            pass
    else:
        log.warning("%s: taking over a stale lock of %s: that process is gone", path, _describe(holder))
    aside.unlink(missing_ok=True)


def _clear_asides(path: Path) -> None:
    """Remove `.lock.stale.<pid>` files whose process is gone: what a holder killed in the middle of
    `_take_over` (between moving the stale lock aside and removing it) left behind."""
    for aside in path.parent.glob(f"{path.name}.stale.*"):
        pid = aside.name.rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            aside.unlink(missing_ok=True)


def _shares(path: Path, holder: dict | None) -> bool:
    """`holder` is the process that started this one, alive on this host, holding the lock on its
    behalf (a served flow run in the runner's subprocess)."""
    return bool(holder) and holder["pid"] in _shared_pids() and holder.get("host") == socket.gethostname() \
        and _alive(holder["pid"])


def _command_line() -> str:
    """This process's command line, as a lock's holder is named."""
    return shlex.join([Path(sys.argv[0]).name or "python", *sys.argv[1:]])


def acquire(artifacts: str | Path, command: str | None = None, guards: Sequence[Guard] = ()) -> Path:
    """Take the project's lock (re-entrant within this process); raises LockHeld naming the holder.
    `guards` are entered first when this process takes it for itself (see the module docstring)."""
    path = lock_path(artifacts)
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        _made.add(path.parent.resolve())  # removed again on release if nothing else was written
    path = path.resolve()
    command = command or _command_line()
    with _mutex:
        if path in _held:
            _held[path] += 1
            return path
        if _shares(path, _read(path)):
            _held[path] = 1  # held by the process that started this one, on its behalf: shared
            return path
        stack = ExitStack()
        try:
            for guard in guards:
                stack.enter_context(guard(path.parent, command))
            _take(path, command)
        except BaseException:
            stack.close()
            _forget_made(path)
            raise
        if path in _owned:
            _guards[path] = stack
        else:
            stack.close()  # shared after all (its holder took it meanwhile): the holder keeps the guards
        return path


def _take(path: Path, command: str) -> None:
    """Create the lock file (taking over a stale one), or share the holder's; raises LockHeld."""
    for _ in range(10):
        if _create(path, command):
            _held[path] = 1
            _owned.add(path)
            _clear_asides(path)
            pids = _shared_pids() | {os.getpid()}
            os.environ[ENV] = ",".join(map(str, sorted(pids)))
            return
        holder = _read(path)
        if holder is None:  # released meanwhile
            continue
        if _shares(path, holder):
            _held[path] = 1
            return
        if _stale(holder, path):
            _take_over(path, holder)
            continue
        raise _refusal(path, holder)
    raise LockHeld(f"{path}: could not be taken (it keeps changing hands)")


def _refusal(path: Path, holder: dict) -> LockHeld:
    return LockHeld(f"{path}: held by {_describe(holder)}; wait for it or remove the file if that process is gone")


def check(artifacts: str | Path, guards: Sequence[Guard] = ()) -> None:
    """Raise LockHeld, as `acquire` would, if another live process holds the project's lock (not this
    process, nor one whose lock it shares), or if a guard refuses (each entered and left at once):
    asked before work that comes before the lock is taken (a stage command opens its tracking run
    first, and a refusal after that would leave a FAILED run behind). `acquire` still decides."""
    path = lock_path(artifacts).resolve()
    with _mutex:
        if path in _held:
            return
    holder = _read(path)
    if holder is not None and _shares(path, holder):
        return
    if holder is not None and not _stale(holder, path):
        raise _refusal(path, holder)
    with ExitStack() as stack:
        for guard in guards:
            stack.enter_context(guard(path.parent, f"{_command_line()} (checking)"))


def _forget_made(path: Path) -> None:
    """Remove the artifacts folder `acquire` created for `path`, if nothing was written in it."""
    if path.parent in _made:  # a refused command leaves no empty artifacts folder behind
        _made.discard(path.parent)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # not empty: the command wrote something


def release(path: Path) -> None:
    """Undo one `acquire`; the outermost removes the file if this process created it."""
    with _mutex:
        depth = _held.get(path, 0) - 1
        if depth > 0:
            _held[path] = depth
            return
        _held.pop(path, None)
        if path not in _owned:
            return  # shared with the process that started this one: it removes the file
        _owned.discard(path)
        holder = _read(path)
        if holder and holder["pid"] == os.getpid() and holder.get("host") == socket.gethostname():
            path.unlink(missing_ok=True)
        guards = _guards.pop(path, None)
        if guards is not None:
            guards.close()  # after the file: DVC never finds the folders free while the file still stands
        _forget_made(path)
        if not _owned:
            pids = _shared_pids() - {os.getpid()}
            if pids:
                os.environ[ENV] = ",".join(map(str, sorted(pids)))
            else:
                os.environ.pop(ENV, None)


@contextmanager
def project_lock(artifacts: str | Path, command: str | None = None, guards: Sequence[Guard] = ()) -> Iterator[Path]:
    """Hold `<artifacts>/.lock` for the block: one writer per project directory (`guards`: see `acquire`)."""
    path = acquire(artifacts, command, guards)
    try:
        yield path
    finally:
        release(path)


def holder(artifacts: str | Path) -> dict | None:
    """Who holds the project's lock (pid, host, command, since); None if nobody."""
    return _read(lock_path(artifacts))


def holder_pids() -> set[int]:
    """This process and those whose lock it shares: the processes holding a lock on its behalf."""
    return _shared_pids() | {os.getpid()}


__all__ = ["LockHeld", "Guard", "acquire", "check", "holder_pids", "release", "project_lock", "holder", "lock_path", "LOCK_NAME"]
