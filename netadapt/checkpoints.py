"""Checkpoints: a network's weights + its architecture JSON + the digest of the config that made it.

Two kinds, rebuilt from the architecture alone: the super-network (`supernet` stage; a V1 search's
network has this form too) and the slim final network (`finetune` stage). Files are written
atomically and read with weights_only=True; whatever is wrong with one is a `NetAdaptError` naming it.

No code from artifacts: a checkpoint stores the name of its model class, and resolving that name
imports a module. A checkpoint may only name the model the run's own params name (`model.name`,
passed in as `expected`) or a built-in one; any other name is refused, naming the file, before
anything is imported (a `supernet.pt` naming `artifacts.supernet.pwn:Net` would otherwise run
`pwn.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from torch import nn

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError, describe
from netadapt.io import DamagedArtifact, load_tensors, save_tensors
from netadapt.models import build_supernet, extract
from netadapt.models.registry import BUILTIN_MODELS
from netadapt.models.source import model_reference

KEYS = ("state_dict", "arch", "config_digest")


def save_supernet(path: Path, model: nn.Module, config_digest: str) -> None:
    """Atomic checkpoint: state dict + architecture JSON + the digest of the config that made it."""
    _save(path, model, model.space(), config_digest)


def load_supernet(path: Path, expected: str = "") -> tuple[nn.Module, str]:
    """Rebuild a super-network from its checkpoint (loaded with weights_only=True); returns it in eval
    mode with the config digest it was trained under. `expected`: the run's `model.name` (without
    it only a built-in model is accepted, `check_model_name`)."""
    if not Path(path).is_file():
        raise NetAdaptError(f"{path}: super-network checkpoint not found; run `netadapt supernet` first")
    blob = load_checkpoint(path, KEYS, "super-network checkpoint")
    return rebuild(path, blob, lambda arch: build_supernet(arch.model), "super-network checkpoint", expected), \
        blob["config_digest"]


def save_network(path: Path, model: nn.Module, arch: Architecture, config_digest: str) -> None:
    """Atomic checkpoint of the slim network of `arch`, as `save_supernet`."""
    _save(path, model, arch, config_digest)


def load_network(path: Path, expected: str = "") -> tuple[nn.Module, Architecture]:
    """Rebuild a saved slim network (weights_only load): structure from the architecture, then weights.
    `expected`: the run's `model.name`, as for `load_supernet`."""
    if not Path(path).is_file():
        raise NetAdaptError(f"{path}: final model not found; run `netadapt finetune` first")
    blob = load_checkpoint(path, KEYS, "final model")
    model = rebuild(path, blob, lambda arch: extract(build_supernet(arch.model), arch), "final model", expected)
    return model, Architecture.from_json(blob["arch"])


def _save(path: Path, model: nn.Module, arch: Architecture, config_digest: str) -> None:
    save_tensors(path, {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "arch": arch.to_json(), "config_digest": config_digest})


def load_checkpoint(path: str | Path, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    """A checkpoint (loaded with weights_only=True) that holds `keys`; a missing, truncated, garbled
    or foreign file is a `NetAdaptError` naming the file, never a raw torch error."""
    path = Path(path)
    if not path.is_file():
        raise NetAdaptError(f"{path}: {what} not found")
    try:
        blob = load_tensors(path)
    except DamagedArtifact as exc:
        raise NetAdaptError(f"{exc} (a {what})") from None
    except Exception as exc:  # noqa: BLE001 - whatever torch or pickle says, one line naming the file
        raise NetAdaptError(f"{path}: not a readable {what} ({describe(exc)})") from None
    missing = [k for k in keys if not isinstance(blob, dict) or k not in blob]
    if missing:
        raise NetAdaptError(f"{path}: not a {what} (missing {', '.join(missing)})")
    return blob


def check_model_name(path: Path, name: str, expected: str, what: str) -> None:
    """A checkpoint's stored model name, before anything resolves (imports) it: the run's own
    `model.name` (`expected`) or a built-in model, else a `NetAdaptError` naming the file."""
    if isinstance(name, str) and (name in BUILTIN_MODELS or name in BUILTIN_MODELS.values() or (expected and name == expected)):
        return
    params = f"the params' model.name {expected!r}" if expected else "a model.name of the run's params"
    raise NetAdaptError(f"{path}: the {what} names model {name!r}, which is neither {params} nor a built-in "
                        f"model ({', '.join(BUILTIN_MODELS)}); refused before importing anything")


def rebuild(path: Path, blob: dict, build: Callable[[Architecture], nn.Module], what: str,
            expected: str = "") -> nn.Module:
    """The network a checkpoint describes, its weights loaded; errors name the file. Its model name
    is checked against `expected` first (`check_model_name`)."""
    try:
        arch = Architecture.from_json(blob["arch"])
    except NetAdaptError as exc:
        raise NetAdaptError(f"{path}: not a {what} ({exc})") from None
    check_model_name(path, model_reference(arch.model), expected, what)
    model = build(arch)
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise NetAdaptError(f"{path}: weights do not fit the network it describes ({describe(exc)})") from None
    return model.eval()
