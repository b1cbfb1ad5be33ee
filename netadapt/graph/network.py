"""`TracedNetwork`: any `nn.Module` as a searchable super-network, through its traced graph.

One graph, three views (as the built-in blocks have): the masked forward with per-sample widths
(`masked.py`), the physically slim extraction (`extract.py`) and the layer specs (`specs.py`). It
implements the `SearchableModel` protocol (`netadapt.models`), and NetAdapt V1's filter reordering
through coupled channel groups.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import fx, nn

from netadapt.arch import Architecture, ArchitectureError, ModelSpec, pinned
from netadapt.errors import describe
from netadapt.graph import ops
from netadapt.graph.channels import ChannelGraph, analyse
from netadapt.graph.errors import GraphError
from netadapt.graph.extract import slim_network
from netadapt.graph.masked import masked_network
from netadapt.graph.specs import UnitPlan
from netadapt.layers import LayerSpec
from netadapt.ordered_dropout import Widths

log = logging.getLogger(__name__)


class _LeafTracer(fx.Tracer):
    """torch.fx's tracer that keeps the given submodules whole (calls of opaque modules) and remembers
    which submodule it was inside when tracing failed."""

    def __init__(self, leaves: set[str]):
        super().__init__()
        self.leaves, self.inside = leaves, []

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        # a per-sample branch drop stays a call of its module: traced through, its `if self.training`
        # would be fixed at tracing time (dropping branches in eval mode too)
        return qualified_name in self.leaves or type(m).__name__ in ops.FREE_MODULE_NAMES \
            or super().is_leaf_module(m, qualified_name)

    def call_module(self, m, forward, args, kwargs):
        self.inside.append(self.path_of_module(m))
        result = super().call_module(m, forward, args, kwargs)
        self.inside.pop()
        return result


MAX_OPAQUE_MODULES = 32


def _trace_once(module: nn.Module, name: str, leaves: set[str]) -> fx.GraphModule:
    """One fx trace, adding to `leaves` each submodule it cannot trace and trying again."""
    while True:
        tracer = _LeafTracer(leaves)
        try:
            graph = tracer.trace(module)
            return _dropout_modules(fx.GraphModule(module, graph, type(module).__name__))
        except Exception as exc:  # noqa: BLE001 - fx raises many kinds; all mean the same to the user
            culprit = tracer.inside[-1] if tracer.inside else ""
            if not culprit or culprit in leaves or len(leaves) >= MAX_OPAQUE_MODULES:
                raise GraphError(f"model.name: {name}: torch.fx cannot trace the model ({describe(exc)}); "
                                 f"data-dependent control flow in forward() is the usual cause") from None
            leaves.add(culprit)


DROPOUT_FUNCTIONS = {F.dropout: nn.Dropout, F.dropout2d: nn.Dropout2d, F.alpha_dropout: nn.AlphaDropout}


def _dropout_modules(traced: fx.GraphModule) -> fx.GraphModule:
    """`F.dropout(x, p, training=self.training)` as an `nn.Dropout(p)` call: fx records the flag's
    value at tracing time, which would drop channels in eval mode too (or never in training)."""
    for i, node in enumerate(list(traced.graph.nodes)):
        kind = DROPOUT_FUNCTIONS.get(node.target) if node.op == "call_function" else None
        p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
        given = len(node.args) > 2 or "training" in node.kwargs
        if kind is None or not given or not isinstance(p, (int, float)):
            continue  # without a `training` argument the function drops in eval mode too, as in PyTorch
        name = f"netadapt_dropout_{i}"
        traced.add_submodule(name, kind(float(p)))
        node.op, node.target, node.args, node.kwargs = "call_module", name, node.args[:1], {}
    traced.recompile()
    return traced


def _signature(traced: fx.GraphModule) -> list[str]:
    return [f"{n.name} {n.op} {n.target} {n.args} {n.kwargs}" for n in traced.graph.nodes]


def trace(module: nn.Module, name: str) -> tuple[fx.GraphModule, list[str]]:
    """The module's graph (torch.fx symbolic tracing) and the submodules kept whole. A submodule fx
    cannot trace (data-dependent control flow in its forward, say) is kept as one opaque op, which
    the channel analysis then leaves at full width with a warning naming it; a model whose own
    forward cannot be traced is refused naming why. fx fixes `if self.training` at tracing time, so
    the model is traced in both modes: one graph must serve training and evaluation, else it is refused
    naming the first node that differs."""
    leaves: set[str] = set()
    mode = module.training
    try:
        traced = _trace_once(module.train(True), name, leaves)
        other = _signature(_trace_once(module.train(False), name, leaves))
    finally:
        module.train(mode)
    if leaves and _signature(traced) != other:  # a leaf found in eval mode only: both traced with it
        traced = _trace_once(module.train(True), name, leaves)
        module.train(mode)
    mine = _signature(traced)
    if mine != other:
        index = next((i for i, (a, b) in enumerate(zip(mine, other)) if a != b), min(len(mine), len(other)))
        node = (mine + ["(its end)"])[index].split(" ")[0]
        raise GraphError(f"model.name: {name}: forward() takes another path in training than in evaluation "
                         f"(from node {node!r} on; `if self.training` in forward, say): netadapt trains and "
                         f"evaluates one traced graph; keep such a branch inside a module (nn.Dropout) or drop it")
    traced.train(mode)
    return traced, sorted(leaves)


class TracedNetwork(nn.Module):
    """A user's network as a super-network: its coupled channel groups are the search dimensions."""

    def __init__(self, spec: ModelSpec, module: nn.Module):
        super().__init__()
        self.spec = spec
        traced, opaque = trace(module, spec.name)
        device = next(iter(module.parameters()), torch.empty(0)).device
        example = torch.zeros(2, *spec.input_shape, device=device)
        try:
            graph = analyse(traced, example, spec.granularity)
        except GraphError as exc:
            raise GraphError(f"model.name: {spec.name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - shape propagation runs the user's code
            raise GraphError(f"model.name: {spec.name}: the model fails on an input of shape "
                             f"{tuple(example.shape)} ({describe(exc)})") from None
        if not graph.dims:
            raise GraphError(f"model.name: {spec.name}: no channel the search can shrink (no conv or linear "
                             f"layer whose outputs are free to narrow)")
        output = next(n for n in traced.graph.nodes if n.op == "output").args[0]
        shape = graph.shapes.get(getattr(output, "name", ""))
        if shape != (2, spec.num_classes):
            raise GraphError(f"model.name: {spec.name}: its output has shape {shape} for a batch of 2, not "
                             f"(batch, classes) = (2, {spec.num_classes})")
        self.net = masked_network(traced, graph)
        self.graph: ChannelGraph = graph  # not a module: `net` holds every weight
        self.plan = UnitPlan(graph, dict(self.net.named_modules()))
        self._space = Architecture(spec, pinned(graph.dims, spec.fixed))
        for path in opaque:
            log.warning("model.name %s: submodule %r cannot be traced by torch.fx (its forward has data-dependent "
                        "control flow, say): kept whole, as one opaque op", spec.name, path)
        for warning in graph.warnings:
            log.warning("model.name %s: %s", spec.name, warning)
        if self.plan.unmeasured:
            log.warning("model.name %s: no latency unit for %s: their cost is left to the table's per-network "
                        "constant", spec.name, ", ".join(self.plan.unmeasured))

    def space(self) -> Architecture:
        return self._space

    def forward(self, x: torch.Tensor, widths: Widths | None = None) -> torch.Tensor:
        return self.net(x, widths)

    def _check(self, arch: Architecture) -> dict[str, int]:
        return self._space.widths_of(arch)

    def extract(self, arch: Architecture) -> fx.GraphModule:
        return slim_network(self.graph, self.net, self._check(arch))

    def layers(self, arch: Architecture) -> list[LayerSpec]:
        self._check(arch)
        return self.plan.specs(arch)

    def units(self) -> set[LayerSpec]:
        """Every unit some architecture of the space runs: what profiling times."""
        return self.plan.all_specs(self._space)

    # -- NetAdapt V1: keep the filters of largest L2 norm by moving them first --------------------

    def _space_id(self, dim: str) -> int | None:
        return next((s for s, name in self.graph.space_dims.items() if name == dim), None)

    def can_reorder(self, dim: str) -> bool:
        """Every space dimension can: all the ops touching an unpinned space follow a permutation."""
        return self._space_id(dim) is not None

    def keep_largest_filters(self, dim: str, arch: Architecture) -> None:
        """Permute the channel space `dim` so that, of the channels `arch` keeps, those whose filters
        have the largest L2 norm come first. Every module reading or writing the space is permuted
        together and no channel crosses a bypass width, so the function at `arch` is unchanged."""
        widths = self._check(arch)
        space = self._space_id(dim)
        if space is None:
            raise ArchitectureError(f"{dim}: not a reorderable dimension of {self.spec.name}")
        modules = dict(self.net.named_modules())
        channels, width = self.graph.spaces[space].channels, widths[dim]
        norms = torch.zeros(channels)
        for node, offset in self._touching(space):
            module = modules[node.target]
            if ops.is_dense(module) and self._produces(node, space):
                norms += module.weight.detach().flatten(1).pow(2).sum(1).cpu()
        bounds = sorted({0, width, *(widths[b.dim] for b in self.graph.branches.values()
                                     if self._branch_space(b) == space and widths[b.dim] < width)})
        order = torch.arange(channels)
        for start, stop in zip(bounds, bounds[1:]):
            order[start:stop] = start + torch.argsort(norms[start:stop], descending=True, stable=True)
        with torch.no_grad():
            for node, offset in self._touching(space):
                _permute(modules[node.target], order, offset, self._produces(node, space))

    def _branch_space(self, branch) -> int:
        return self.graph.layouts[branch.add][0][0]

    def _produces(self, node: fx.Node, space: int) -> bool:
        """Whether the module of `node` is a dense op writing `space` (its filters make the channels)."""
        return self.graph.layouts[node.name][0][0] == space and ops.is_dense(self.net.get_submodule(node.target))

    def _touching(self, space: int) -> list[tuple[fx.Node, int | None]]:
        """Modules with weights on the space: (node, offset of the space in its input, or None)."""
        found = []
        for node in self.graph.graph.nodes:
            if node.op != "call_module":
                continue
            source = next((a for a in node.all_input_nodes if a.name in self.graph.layouts), None)
            offsets, offset = [], 0
            for s, c in self.graph.layouts[source.name] if source is not None else ():
                if s == space:
                    offsets.append(offset)
                offset += c
            produced = self.graph.layouts.get(node.name, ((None, 0),))[0][0] == space
            if offsets or produced:
                found.append((node, offsets[0] if offsets else None))
        return found


def _take(t: torch.Tensor | None, order: torch.Tensor, axis: int, offset: int = 0) -> None:
    if t is None:
        return
    index = torch.arange(t.shape[axis])
    index[offset:offset + len(order)] = offset + order
    t.data.copy_(t.data.index_select(axis, index.to(t.device)))


def _permute(module: nn.Module, order: torch.Tensor, offset: int | None, produces: bool) -> None:
    """Apply a permutation of one space to a module reading it at `offset` and/or producing it."""
    if ops.is_dense(module):
        if produces:
            _take(module.weight, order, 0)
            _take(module.bias, order, 0)
        if offset is not None:
            _take(module.weight, order, 1, offset)
        return
    offset = offset or 0  # channel-local: the same channels in and out
    if isinstance(module, nn.Conv2d):
        _take(module.weight, order, 0, offset)
        _take(module.bias, order, 0, offset)
    elif isinstance(module, ops.NORM_MODULES):
        for name in ("weight", "bias", "running_mean", "running_var"):
            _take(getattr(module, name), order, 0, offset)
