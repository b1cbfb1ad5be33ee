"""NetAdapt (ECCV 2018), the V1 algorithm: Algorithm 1 of the paper, on the shared search loop.

    from a plainly trained network, while its resource is over the budget:  (`search.search`)
        iteration t starts from the network the last one kept                (`NetAdaptV1.propose`)
        for each dimension, the largest width that cuts dR_t by the table     (`NetAdaptV1.candidates`)
        keep that many filters of largest L2 norm, fine-tune the proposal for
            `short_term_steps`, score it on holdout                           (`NetAdaptV1.evaluate`)
        keep the best                                                         (`search.conclude_iteration`)
    long-term fine-tune the last network kept (one cosine over all epochs)   (`NetAdaptV1.finish`)

Filters are kept by reordering the channel space so they come first, then slicing physically; a
filter never crosses the CBC width of a bypassed block reading the space, so the reordering keeps the
current network's function. Fine-tuning seeds derive from (seed, t), with t handed in by the loop.
Unlike MCD, the state carried between iterations is the network's weights, so its iterations are not
replayed from an earlier history: only its own interrupted run is, from its progress file (`V1Progress`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from netadapt.arch import Architecture
from netadapt.checkpoints import load_supernet
from netadapt.config import Config
from netadapt.data import Split, load_split
from netadapt.errors import NetAdaptError, describe
from netadapt.history import COLUMNS, SavedSearch, plain_rows
from netadapt.io import content_digest
from netadapt.layout import Paths
from netadapt.mcd import Candidate, shrink
from netadapt.models import build_supernet, extract
from netadapt.models.source import model_reference
from netadapt.resources import ResourceModel
from netadapt.resume import Progress
from netadapt.schedule import MeasuredCheck, Schedule
from netadapt.search import CandidateGenerator, Proposal, SearchSettings, propose_iteration
from netadapt.training import (Loop, accuracy, cosine_schedule, cross_entropy, epoch_steps, make_optimizer, resolve_device,
                               train_epoch)

log = logging.getLogger("netadapt")


@dataclass(frozen=True)
class FineTuning:
    short_term_steps: int
    long_term_epochs: int
    lr: float
    batch_size: int
    eval_batch_size: int
    eval_batches: int
    seed: int
    device: torch.device


class NetAdaptV1:
    """One iteration at a time: `propose` starts iteration t from the network the last one kept;
    `candidates` proposes one width per dimension; `evaluate` fine-tunes and scores each proposal,
    whose network is kept by architecture until the next iteration starts from the one kept."""

    def __init__(self, network: nn.Module, resource: ResourceModel, train: Split, holdout: Split,
                 tuning: FineTuning):
        self.resource, self.train, self.holdout, self.tuning = resource, train, holdout, tuning
        self.current: Architecture | None = network.space()
        self.base: nn.Module = network.to(tuning.device)
        self.networks: dict[str, nn.Module] = {self.current.widths_json(): self.base}
        self.iteration = -1

    def propose(self, t: int, current: Architecture, current_resource: float, schedule: Schedule,
                generate: CandidateGenerator, settings: SearchSettings) -> Proposal:
        """Iteration t's proposals (a `search.ProposeIteration`): from the network kept at `current`
        (a clipped iteration proposed again keeps t, so its seeds), halving the cut while none makes it."""
        self.base = self.networks[current.widths_json()]
        self.networks = {current.widths_json(): self.base}
        self.current, self.iteration = current, t
        return propose_iteration(t, current, current_resource, schedule, generate, settings)

    def candidates(self, current: Architecture, current_resource: float, target: float,
                   rng: np.random.Generator) -> list[Candidate]:
        """For each dimension, the largest width that meets `target` by the resource model (a
        `search.CandidateGenerator`; deterministic, `rng` unused)."""
        proposals = []
        for d in current.dims:
            if d.width > d.min_width:
                arch, estimate, met = shrink(current, self.resource, d.name, target)
                if met:
                    proposals.append(Candidate(arch, estimate))
        return proposals

    def evaluate(self, archs: list[Architecture]) -> list[tuple[float, float]]:
        return [self._score(self.base, arch) if arch == self.current else self._propose(arch, j)
                for j, arch in enumerate(archs)]

    def _score(self, network: nn.Module, arch: Architecture, start: float | None = None) -> tuple[float, float]:
        start = time.perf_counter() if start is None else start
        acc = accuracy(extract(network, arch).to(self.tuning.device), self.holdout, self.tuning.eval_batch_size,
                       self.tuning.device, limit=self.tuning.eval_batches)[1]
        return acc, time.perf_counter() - start

    def _propose(self, arch: Architecture, index: int) -> tuple[float, float]:
        start = time.perf_counter()
        network = copy.deepcopy(self.base)
        (dim,) = [k for k, v in arch.widths.items() if v != self.current.widths[k]]
        if network.can_reorder(dim):
            network.keep_largest_filters(dim, self.current)
        self._fine_tune(network, arch, steps=self.tuning.short_term_steps, salt=index)
        self.networks[arch.widths_json()] = network
        return self._score(network, arch, start)

    def _fine_tune(self, network: nn.Module, arch: Architecture, steps: int = 0, epochs: int = 0,
                   salt: int = 0) -> None:
        t = self.tuning
        stream = t.seed * 1_000_003 + max(self.iteration, 0) * 10_007 + salt  # seeded from (seed, iteration)
        generator = torch.Generator().manual_seed(stream)
        torch.manual_seed(stream)
        optimizer = make_optimizer("sgd", network.parameters(), t.lr, 0.9, 0.0)
        widths = arch.widths
        if steps:
            train_epoch(network, self.train, optimizer, None, Loop(t.batch_size, max_steps=steps,
                        desc="short-term fine-tune"), generator, t.device, cross_entropy(widths=widths))
        steps_per_epoch = epoch_steps(len(self.train), t.batch_size)
        scheduler = cosine_schedule(optimizer, epochs * steps_per_epoch) if epochs else None  # one cosine
        for epoch in range(epochs):
            train_epoch(network, self.train, optimizer, scheduler, Loop(t.batch_size,
                        desc=f"long-term fine-tune {epoch + 1}/{epochs}"), generator, t.device,
                        cross_entropy(widths=widths))
        network.eval()

    def kept_state(self, arch: Architecture) -> dict:
        """What a killed search needs to go on after the iteration that kept `arch`: its network's
        weights and the iteration count (fine-tuning seeds derive from it)."""
        network = self.networks[arch.widths_json()]
        return {"iteration": self.iteration, "arch": arch.widths_json(),
                "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()}}

    def restore(self, state: dict) -> None:
        """Continue after the iteration `state` records (see `kept_state`): the next `propose` starts
        from its network, as it would have in the uninterrupted search."""
        network = copy.deepcopy(self.base)
        network.load_state_dict(state["state_dict"])
        self.networks = {state["arch"]: network}
        self.current = None  # no iteration under way: the next `propose` starts one from the restored network
        self.iteration = int(state["iteration"])

    def finish(self, arch: Architecture) -> nn.Module:
        """The kept network of `arch` after the long-term fine-tune (super-network form, masked)."""
        network = self.networks[arch.widths_json()]
        self._fine_tune(network, arch, epochs=self.tuning.long_term_epochs, salt=10_000)
        return network.cpu()


def start_network(start_checkpoint: str, supernet: Path, space: Architecture,
                  model_name: str, weights: str | None = None, pickled: bool = False) -> tuple[nn.Module, Path]:
    """The network V1 adapts and its file: `search.start_checkpoint` (a trained network of this
    space, as the paper starts from) when set, else the user's own trained weights (`model.checkpoint`,
    `weights`), else the supernet stage's network: trained plainly under `supernet.sampling: none`
    (what `search.preset: netadapt-reference` fills in, as the paper starts from a plainly trained
    network), with ordered dropout otherwise (`quick`). A checkpoint may name only the run's
    `model_name` or a built-in model."""
    if not start_checkpoint and weights:
        log.info("search: NetAdapt V1 starts from model.checkpoint %s", weights)
        return build_supernet(space.model, weights, pickled), Path(weights)
    path = Path(start_checkpoint) if start_checkpoint else supernet
    log.info("search: NetAdapt V1 starts from %s %s", "search.start_checkpoint" if start_checkpoint
             else "the supernet stage's network", path)
    if start_checkpoint and not path.is_file():
        raise NetAdaptError(f"search.start_checkpoint: {path} not found")
    try:
        network, _ = load_supernet(path, model_name)
    except Exception as exc:  # noqa: BLE001 - a text file, a truncated archive, another object: one line
        if not start_checkpoint:
            raise
        raise NetAdaptError(f"search.start_checkpoint: {path} is not a super-network checkpoint "
                            f"({describe(exc, 120, first_sentence=True)})") from None
    if not network.space().same_space(space):
        raise NetAdaptError(f"search.start_checkpoint: {path} is not a network of this search space")
    return network, path


@dataclass
class V1Progress:
    """V1 carries weights between iterations, so only its own interrupted run can be replayed, with
    the network its last finished iteration kept (stored after every iteration, `store`)."""

    v1: NetAdaptV1
    progress: Progress
    space: Architecture

    def resume(self, budget: float) -> SavedSearch:
        """The interrupted run's history and checks, with `v1` restored after its last iteration;
        nothing (start afresh) when there is none or it cannot be read."""
        saved = self.progress.load()
        try:
            checks = MeasuredCheck.from_records(saved.get("checks", [])) if saved is not None else []
        except ValueError as exc:  # as `Progress.load` treats a torn file: never trusted
            log.warning("%s: unreadable progress (%s): starting afresh", self.progress.path, exc)
            saved, checks = None, []
        if saved is None:
            return SavedSearch()
        self.v1.restore(saved["network"])
        log.info("search: continuing an interrupted NetAdapt V1 search after iteration %d", self.v1.iteration)
        return SavedSearch(pd.DataFrame(saved["rows"], columns=COLUMNS), budget, checks)

    def store(self, history: pd.DataFrame, checks: list[dict]) -> None:
        kept = history[history.kept.astype(bool)].iloc[-1]
        self.progress.store({"rows": plain_rows(history), "checks": checks,
                             "network": self.v1.kept_state(self.space.with_widths(json.loads(kept.arch)))})


def netadapt_v1_search(cfg: Config, paths: Paths, supernet_model: nn.Module, resource: ResourceModel,
                       identity: str, budget: float) -> V1Progress:
    """NetAdapt V1 from its start network, with its own progress file (keyed by the search's identity,
    the start network's contents and the budget)."""
    s = cfg.search
    space = supernet_model.space()
    network, start_path = start_network(s.start_checkpoint, paths.supernet, space, model_reference(cfg.model),
                                        cfg.model.checkpoint, cfg.model.checkpoint_pickle)
    v1 = NetAdaptV1(network, resource, load_split(paths.prepared, "train"), load_split(paths.prepared, "holdout"),
                    FineTuning(s.short_term_steps, s.long_term_epochs, s.lr, s.train_batch_size, s.batch_size,
                               s.eval_batches, cfg.seed, resolve_device(cfg.supernet.device)))
    key = hashlib.sha256(json.dumps([identity, content_digest([start_path]), budget]).encode()).hexdigest()
    return V1Progress(v1, Progress(paths.progress("search"), key[:16]), space)
