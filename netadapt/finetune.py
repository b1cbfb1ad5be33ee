"""The discovered network: extracted physically, trained further, saved as state dict + architecture."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_path, load_checkpoint, save_tensors
from netadapt.models import build_supernet, extract
from netadapt.resources.backends import onnx_bytes
from netadapt.supernet import rebuild

log = logging.getLogger("netadapt")


def initial_network(supernet: nn.Module, arch: Architecture, init: str) -> nn.Module:
    """The slim network of `arch`, with the super-network's weights or freshly initialized."""
    model = extract(supernet, arch)
    if init == "scratch":
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
    return model


def save_network(path: Path, model: nn.Module, arch: Architecture, config_digest: str) -> None:
    save_tensors(path, {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "arch": arch.to_json(), "config_digest": config_digest})


def load_network(path: Path) -> tuple[nn.Module, Architecture]:
    """Rebuild a saved slim network (weights_only load): structure from the architecture, then weights."""
    if not Path(path).is_file():
        raise NetAdaptError(f"{path}: final model not found; run `netadapt finetune` first")
    blob = load_checkpoint(path, ("state_dict", "arch", "config_digest"), "final model")
    model = rebuild(path, blob, lambda arch: extract(build_supernet(arch.model), arch), "final model")
    return model, Architecture.from_json(blob["arch"])


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> None:
    """ONNX export of the slim network with a symbolic batch axis (`input0` -> `output0`), written atomically.

    Traced on a batch of 2, so that no size-1 batch can be baked into a reshape along the way.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(onnx_bytes(model.eval(), (torch.zeros(2, *input_shape),), dynamic_batch=True))
