"""Training progress that survives kill -9.

After every epoch the model, optimizer, schedule, torch's RNG and the per-epoch metrics are written
atomically, under a key of everything that determines the training (code, params, input digests).
A re-run with the same key continues after the last finished epoch and ends where an uninterrupted
run ends: each epoch's data order and widths are seeded from (seed, epoch). A file with another key
(other inputs) or one that cannot be read is ignored, never trusted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netadapt.io import load_tensors, save_tensors

log = logging.getLogger("netadapt")


@dataclass(frozen=True)
class Progress:
    path: Path
    key: str

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: torch.optim.lr_scheduler.LRScheduler) -> list[dict[str, Any]]:
        """The finished epochs' metrics, with model, optimizer and schedule loaded in place; [] to
        start afresh (nothing saved, saved for other inputs, or unreadable)."""
        if not self.path.is_file():
            return []
        try:
            blob = load_tensors(self.path)
            if blob.get("key") != self.key:
                log.info("%s: progress of a run with other inputs, params or code: starting afresh", self.path)
                return []
            model.load_state_dict(blob["model"])
            optimizer.load_state_dict(blob["optimizer"])
            scheduler.load_state_dict(blob["scheduler"])
            torch.set_rng_state(blob["rng"])
            epochs = list(blob["epochs"])
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file is never trusted
            log.warning("%s: unreadable progress (%s): starting afresh", self.path, exc)
            return []
        log.info("%s: resuming after epoch %d of an interrupted run", self.path, len(epochs))
        return epochs

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: torch.optim.lr_scheduler.LRScheduler, epochs: list[dict[str, Any]]) -> None:
        save_tensors(self.path, {"key": self.key, "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                 "rng": torch.get_rng_state(), "epochs": epochs})

    def store(self, state: dict[str, Any]) -> None:
        """Any other progress (weights_only-loadable), under this key: e.g. a search's history and network."""
        save_tensors(self.path, {"key": self.key, "state": state})

    def load(self) -> dict[str, Any] | None:
        """What `store` saved under this key; None if nothing, another key, or unreadable."""
        if not self.path.is_file():
            return None
        try:
            blob = load_tensors(self.path)
            if blob.get("key") != self.key or "state" not in blob:
                log.info("%s: progress of a run with other inputs, params or code: starting afresh", self.path)
                return None
            return blob["state"]
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file is never trusted
            log.warning("%s: unreadable progress (%s): starting afresh", self.path, exc)
            return None

    def clear(self) -> None:
        """Called once the stage's outputs are written: the progress has served its purpose."""
        self.path.unlink(missing_ok=True)
