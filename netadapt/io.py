"""Atomic artifact writes (temp file + rename): an interrupted stage leaves nothing half-written."""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch

from netadapt.errors import NetAdaptError, describe
from netadapt.layout import DEVICES, PLOT_FILES, STAGES, Paths


_UMASK = os.umask(0o022)  # read once, at import (single-threaded): umask can only be read by setting it
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds. The
    artifact gets the mode a plain write would give (mkstemp's temp files are private, 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # a folder that takes no new file: the artifact's name, not a temp name's
        raise _naming(exc, path, temp=True) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# Writes the machine refuses (`ulimit -f`, a full disk, a quota, a read-only mount, a folder without write
# permission): the CLI says them in one line naming the artifact.
STORAGE_FULL = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "over the file size limit (ulimit -f)",
                errno.EDQUOT: "over the disk quota", errno.EROFS: "on a read-only file system",
                errno.EACCES: "permission denied (a read-only folder?)"}


def _naming(exc: OSError, path: Path, temp: bool = False) -> OSError:
    """`exc`, naming the artifact being written when the OS did not name a file (a refused write()),
    or named only the temp file it was being written to (`temp`)."""
    if exc.errno in STORAGE_FULL and (temp or not exc.filename):
        return OSError(exc.errno, exc.strerror, str(path))
    return exc


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; it replaces `path` only if the block succeeds,
    with a plain folder's mode (mkdtemp's are private, 0700)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise _naming(exc, path, temp=True) from None
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _naming(exc, path) from None
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# What an interrupted `atomic_path` / `atomic_dir` leaves behind: mkstemp's and mkdtemp's temp files and
# folders `.<name>.<8 random characters>.tmp`, and `.<name>.old`, the folder being replaced.
STALE_TMP = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")
STALE_OLD = re.compile(r"^\.(.+)\.old$")

# The folders of the artifacts folder that are the project's own (its stages' outputs, their reports,
# progress, caches and stamps, the named devices' own): whatever is below them is the project's writing.
# Beside them in the artifacts folder, and in the metrics and plots folders, which a user may point at
# a folder of their own (`--plots ~/thesis`), only the leftovers of the project's own file names are.
OWN_FOLDERS = ("prepared", "profile", "supernet", "search", "finetune", "reports", "progress", "profile_cache",
               ".stamps", "devices")


def stale_places(paths: Paths) -> list[tuple[Path, frozenset[str] | None]]:
    """Where interrupted writes of the project can have left something: (folder, the output names
    whose leftovers may be in it; None: any, the folder and all below it being the project's)."""
    places: list[tuple[Path, frozenset[str] | None]] = [(paths.artifacts, frozenset(OWN_FOLDERS))]
    places += [(paths.artifacts / name, None) for name in OWN_FOLDERS]
    for folder, names in ((paths.metrics, [f"{stage}.json" for stage in STAGES]),
                          (paths.plots, [name for files in PLOT_FILES.values() for name in files])):
        places += [(folder, frozenset(names)), (folder / DEVICES, None)]
    return places


def clean_stale(paths: Paths) -> list[Path]:
    """Remove what interrupted atomic writes of the project left in its artifacts, metrics and plots
    folders (`stale_places`): temp files and staging folders `.<name>.XXXXXXXX.tmp`, and `.<name>.old`
    folders, where `<name>` is the project's own; nothing else, and never a user's file that only looks
    alike (`.thesis.docx.backup01.tmp`, `.vim.old` in a plots folder). A `.<name>.old` folder whose
    `<name>` is gone (killed between the two renames) is the last complete version: it is put back
    instead. Call it holding the project's lock (so no live writer's temp file goes). Returns what was
    removed or restored."""
    touched: list[Path] = []
    for folder, names in stale_places(paths):
        if not folder.is_dir() or folder.is_symlink():
            continue
        if names is not None:
            touched += _clean_here(folder, os.listdir(folder), names)
            continue
        for root, dirs, files in os.walk(folder):  # top-down; symlinked folders are not followed
            touched += _clean_here(Path(root), files, None)
            stale = _clean_here(Path(root), dirs, None)
            touched += stale
            dirs[:] = [d for d in dirs if Path(root) / d not in stale]  # not walked into
    return touched


def _clean_here(here: Path, entries: list[str], names: frozenset[str] | None) -> list[Path]:
    """`clean_stale` in one folder: the leftovers among `entries` (of names in `names`, None: any)."""
    log = logging.getLogger("netadapt")
    touched = []
    for entry in entries:
        path, tmp, old = here / entry, STALE_TMP.match(entry), STALE_OLD.match(entry)
        match = tmp or (old if path.is_dir() else None)
        if not match or (names is not None and match.group(1) not in names):
            continue
        touched.append(path)
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        elif old and not (here / old.group(1)).exists():
            os.replace(path, here / old.group(1))
            log.warning("%s: restored from %s (a write was interrupted)", here / old.group(1), path)
            continue
        else:
            shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s: left by an interrupted write", path)
    return touched


def file_blocks(path: str | Path, size: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes, `size` at a time: hashing a file (a prepared split) larger than memory."""
    with open(path, "rb") as stream:
        yield from iter(lambda: stream.read(size), b"")


def content_digest(paths: list[Path]) -> str:
    """Digest of files and folders (every file below, sorted), by content and by name relative to the
    path given, so a moved project keeps its digests; a missing path counts as such."""
    h = hashlib.sha256()
    for path in map(Path, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            h.update((f.relative_to(path).as_posix() if path.is_dir() else f.name).encode())
            if not f.is_file():
                h.update(b"<missing>")
                continue
            for block in file_blocks(f):
                h.update(block)
    return h.hexdigest()[:16]


PACKAGE = Path(__file__).resolve().parent


def code_version(model_name: str = "", model_path: str | None = None) -> str:
    """Digest of the library's source (every `netadapt/**/*.py`) and, given `model.name` (and
    `model.path`), of the user's model code behind it (`models.source.model_source_digest`): part of
    every cache key and search identity, so a change to either never serves results the old code
    computed. A built-in model adds nothing: its code is the library's."""
    from netadapt.models.source import model_source_digest  # (here: the models package may import io)

    source = model_source_digest(model_name, model_path) if model_name else ""
    if not source:
        return library_version()
    return hashlib.sha256(f"{library_version()} {source}".encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def library_version() -> str:
    """Digest of the library's source (every `netadapt/**/*.py`), read once per process."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(path.relative_to(PACKAGE).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:16]


class DamagedArtifact(NetAdaptError, ValueError):
    """An artifact that cannot be what it claims to be (torn, garbled, not JSON); the message names
    the file. A ValueError too, so readers that treat unreadable files as absent (caches) still do."""


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Rows as a CSV file, atomically (a search history, a training curve, a plot's data)."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def read_json(path: str | Path) -> Any:
    """The JSON in `path`; a file that is not UTF-8 JSON is a `DamagedArtifact` naming it."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedArtifact(f"{path}: not valid JSON ({describe(exc, 120)})") from None


def save_tensors(path: str | Path, obj: Any) -> None:
    """torch.save, atomically; the object must be loadable with `weights_only=True`.

    Serialized in memory first: torch.save names the archive after the file it writes, so saving
    to the random temp name gave equal content new bytes (and DVC a changed output)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def check_archive(path: str | Path) -> None:
    """Every record of a torch archive (a zip file) against its CRC-32: torch.load itself reads
    garbled tensor bytes without a word (weights, labels or images silently changed). A file that is
    not a zip archive at all is left to torch.load to refuse."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return
    except Exception as exc:  # noqa: BLE001 - a garbled header can raise almost anything
        raise DamagedArtifact(f"{path}: damaged archive ({type(exc).__name__})") from None
    if bad is not None:
        raise DamagedArtifact(f"{path}: damaged: its record {bad} fails its CRC check")


def load_tensors(path: str | Path) -> Any:
    """torch.load with weights_only=True, after `check_archive`."""
    check_archive(path)
    return torch.load(Path(path), map_location="cpu", weights_only=True)
