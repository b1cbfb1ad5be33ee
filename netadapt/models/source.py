"""Where the user's model code lives, and its digest: the part of every cache key that the library's
own code version (`io.code_version`) cannot see.

`model.name` names a built-in (covered by the library's code version), `torchvision:<name>` or
`timm:<name>` (covered by that distribution's installed version), or `package.module:Attr`: the
user's code, found on `model.path` (a folder relative to the project root, the working directory
the CLI and `dvc repro` run in) or on `sys.path` (PYTHONPATH). Its digest covers the module's file,
and every `.py` file of its top-level package when it is one, since a model imports its siblings;
a package installed in site-packages counts by its distribution's version instead.

Torch-free, and finding the module never executes it: `importlib.util.find_spec` on the top-level
name (which imports nothing), then `PathFinder` down to the submodule (no parent package is run).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from netadapt.errors import ConfigError, describe
from netadapt.models.registry import BUILTIN_MODELS

HUBS = ("torchvision", "timm")  # `<hub>:<name>`: a distribution's model, keyed by its version
LIBRARY = "netadapt"  # a model inside the library itself is covered by the library's code version
INSTALLED = ("site-packages", "dist-packages")  # folders of installed distributions


def model_path_entries(path: str | None) -> list[str]:
    """The folder of `model.path` as a `sys.path` entry (absolute), or none for None / "": relative
    to the project root (the working directory). A missing folder or a file is a `ConfigError`
    naming `model.path`."""
    if not path:
        return []
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ConfigError(f"model.path: no folder {path!r} (relative to the project root, {Path.cwd()}): "
                          f"create it and put your model's module there, or point model.path at its folder")
    if not folder.is_dir():
        raise ConfigError(f"model.path: {path!r} is not a folder (it must be the folder holding your model's module)")
    return [str(folder.resolve())]


def user_module(name: str) -> str:
    """The module of the user's code that `model.name` names; "" for a built-in, a `torchvision:` /
    `timm:` model or a model of the library itself (nothing of the user's to find)."""
    if name in BUILTIN_MODELS:
        return ""
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ConfigError(f"model.name: {name!r} is not a built-in model, a 'package.module:Attr' path "
                          f"or '{HUBS[0]}:<name>' / '{HUBS[1]}:<name>'")
    return "" if module in HUBS or module.split(".")[0] == LIBRARY else module


@contextmanager
def importable(path: str | None, name: str | None = None) -> Iterator[None]:
    """Put `model.path`'s folder first on `sys.path` for the block (resolving, importing and building
    the model); `sys.path` is as it was afterwards. Modules imported meanwhile stay imported. Given
    `model.name`, only when it names the user's code (`user_module`): a built-in model needs no
    folder, so a project without `models/` runs it."""
    needed = name is None or bool(user_module(name))
    entries = [e for e in model_path_entries(path) if e not in sys.path] if needed else []
    sys.path[:0] = entries
    importlib.invalidate_caches()  # a module written since the folder was last listed is found
    try:
        yield
    finally:
        for entry in entries:
            if entry in sys.path:
                sys.path.remove(entry)


def model_source_digest(name: str, path: str | None = None) -> str:
    """Digest of the user's code behind `model.name` (see the module's docstring); "" for a built-in
    or a model of the library itself (the library's code version covers them). Never imports it."""
    hub, colon, _ = name.partition(":")
    if colon and hub in HUBS:
        return _digest([f"{hub}=={_installed_version(hub, name)}".encode()])
    module = user_module(name)
    if not module:
        return ""
    top = module.split(".")[0]
    with importable(path):
        top_spec = _find_top(top, name, path)
        spec = _walk(top_spec, module, name)
    if _installed(top_spec):
        versions = sorted(f"{d}=={importlib.metadata.version(d)}"
                          for d in importlib.metadata.packages_distributions().get(top, []))
        if versions:
            return _digest([v.encode() for v in versions])
    return _digest(_source_blocks(top_spec, spec))


def _installed_version(hub: str, name: str) -> str:
    """The installed version of `hub`'s distribution (read from its metadata: nothing is imported)."""
    try:
        return importlib.metadata.version(hub)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"model.name: {name!r} needs the {hub} package, which is not installed "
                          f"(pip install {hub})") from None


def _find_top(top: str, name: str, path: str | None) -> importlib.machinery.ModuleSpec:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"model.name: cannot import {name!r} ({describe(exc)})") from None
    if spec is None:
        where = f"model.path ({path!r}) or " if path else ""
        raise ConfigError(f"model.name: cannot import {name!r} (no module {top!r} on {where}sys.path: put its "
                          f"folder in model.path or on PYTHONPATH)")
    return spec


def _walk(spec: importlib.machinery.ModuleSpec, module: str, name: str) -> importlib.machinery.ModuleSpec:
    """The spec of `module` below its top-level package's `spec`, found without running any package."""
    for part in module.split(".")[1:]:
        locations = spec.submodule_search_locations
        found = importlib.machinery.PathFinder.find_spec(f"{spec.name}.{part}", list(locations)) \
            if locations is not None else None
        if found is None:
            why = "is not a package" if locations is None else f"has no module {part!r}"
            raise ConfigError(f"model.name: cannot import {name!r} (module {spec.name!r} {why})")
        spec = found
    return spec


def _installed(spec: importlib.machinery.ModuleSpec) -> bool:
    places = [spec.origin or "", *(spec.submodule_search_locations or [])]
    return any(part in INSTALLED for place in places for part in Path(place).parts)


def _source_blocks(top: importlib.machinery.ModuleSpec, spec: importlib.machinery.ModuleSpec) -> list[bytes]:
    """Name and bytes of every `.py` file of the top-level package (its folders, for a namespace
    package), or of the module's own file when it is a plain module."""
    if top.submodule_search_locations is not None:
        blocks = []
        for folder in map(Path, top.submodule_search_locations):
            for file in sorted(folder.rglob("*.py")):
                blocks += [file.relative_to(folder).as_posix().encode(), file.read_bytes()]
        return blocks
    origin = Path(spec.origin or "")
    if spec.has_location and origin.is_file():
        return [origin.name.encode(), origin.read_bytes()]
    return [f"{spec.name} {spec.origin} python {sys.version}".encode()]  # built-in, frozen: the interpreter's


def _digest(blocks: list[bytes]) -> str:
    h = hashlib.sha256()
    for block in blocks:
        h.update(len(block).to_bytes(8, "little") + block)
    return h.hexdigest()[:16]


__all__ = ["model_path_entries", "importable", "model_source_digest", "user_module", "HUBS"]


def model_reference(model) -> str:
    """What a checkpoint must name for this run (`model`: the params' model section, or a `ModelSpec`):
    `model.name`, and for the user's own code also the folder it is imported from (`model.path`),
    so that a checkpoint cannot send the import to a folder of its own choosing."""
    name, path = model.name, getattr(model, "path", None)
    if not isinstance(name, str):
        return repr(name)
    try:
        own = user_module(name)
    except ConfigError:  # not a model name at all: refused by the caller's comparison
        own = ""
    return f"{name} from {path}" if path and own else name
