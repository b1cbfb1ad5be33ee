"""Layer specs of a traced network: the units its slim network runs at given widths.

Units follow the graph: a conv absorbs the batch norm and activation it alone feeds (as inference
engines fuse them); every other op that costs time is a unit of its own (standalone activations and
norms, pooling, element-wise ops, concatenations, resizing, linear layers, residual and partial adds).
Each unit depends on the widths of a few dimensions only (its input's and output's spaces, a bypass),
so the units of the whole space are enumerated unit by unit, not architecture by architecture.
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import fx, nn

from netadapt.arch import Architecture
from netadapt.graph import ops
from netadapt.graph.channels import ChannelGraph
from netadapt.graph.errors import GraphError
from netadapt.layers import LayerSpec


@dataclass(frozen=True)
class Unit:
    """One unit of the graph: what it reads (`source`), where its output channels are read (`out`),
    its kind (a `LayerSpec.op` or `branch_add`) and the spec fields widths do not change."""

    node: str
    source: str
    out: str
    kind: str
    fixed: dict = field(default_factory=dict, hash=False)
    depthwise: bool = False
    kernel: str = ""  # the kernel-size dimension of a depthwise conv, if it has one


def _square(node: fx.Node, value, what: str) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise GraphError(f"node {node.name!r}: a non-square {what} {tuple(value)} is not supported")
    return value[0]


def _conv_fields(node: fx.Node, conv: nn.Conv2d) -> dict:
    kernel, stride = _square(node, conv.kernel_size, "kernel"), _square(node, conv.stride, "stride")
    dilation = _square(node, conv.dilation, "dilation")
    if isinstance(conv.padding, str):
        padding = 0 if conv.padding == "valid" else -1
    else:
        padding = _square(node, conv.padding, "padding")
        padding = -1 if padding == kernel // 2 * dilation else padding
    return dict(kernel=kernel, stride=stride, dilation=dilation, padding=padding, bias=conv.bias is not None)


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _pool_fields(node: fx.Node, target) -> tuple[str, dict]:
    """(kind, fields) of a pooling op."""
    if isinstance(target, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) or target in (
            F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
        size = target.output_size if isinstance(target, nn.Module) else _arg(node, 1, "output_size")
        size = _square(node, size, "pooling output")
        is_avg = isinstance(target, nn.AdaptiveAvgPool2d) or target is F.adaptive_avg_pool2d
        if size == 1 and is_avg:
            return "avgpool", {}
        return "pool", dict(mode="adaptive_avg" if is_avg else "adaptive_max", kernel=size)
    is_max = isinstance(target, nn.MaxPool2d) or target is F.max_pool2d
    if isinstance(target, nn.Module):
        kernel, stride, padding = target.kernel_size, target.stride, target.padding
    else:
        kernel = _arg(node, 1, "kernel_size")
        stride, padding = _arg(node, 2, "stride") or kernel, _arg(node, 3, "padding", 0)
    kernel = _square(node, kernel, "pooling kernel")
    return "pool", dict(mode="max" if is_max else "avg", kernel=kernel, stride=_square(node, stride, "stride"),
                        padding=_square(node, padding, "padding"))


class UnitPlan:
    """The units of a traced network, in graph order, and the dimensions each depends on."""

    def __init__(self, graph: ChannelGraph, modules: dict[str, nn.Module]):
        self.graph = graph
        self.units: list[Unit] = []
        self.unmeasured: list[str] = []  # ops with a cost but no unit (opaque ops)
        absorbed: set[str] = set()
        for node in graph.graph.nodes:
            if node.name in absorbed or node.op in ("placeholder", "output", "get_attr") \
                    or node.name not in graph.layouts:
                continue
            unit = self._unit(node, modules, absorbed)
            if unit is not None:
                self.units.append(unit)

    def _unit(self, node: fx.Node, modules: dict[str, nn.Module], absorbed: set[str]) -> Unit | None:
        target = ops.target_of(node, modules)
        args = [a for a in node.all_input_nodes if a.name in self.graph.layouts]
        source = args[0].name if args else node.name
        if node.name in self.graph.branches:
            return Unit(node.name, source, node.name, "branch_add")
        if isinstance(target, nn.Conv2d):
            out, fields = node, _conv_fields(node, target)
            users = list(out.users)
            if len(users) == 1 and users[0].op == "call_module" and isinstance(modules[users[0].target], ops.NORM_MODULES):
                out = users[0]
                absorbed.add(out.name)
                fields["norm"] = True
            users = list(out.users)
            if len(users) == 1 and ops.activation_name(users[0], modules):
                out = users[0]
                absorbed.add(out.name)
                fields["act"] = ops.activation_name(out, modules)
            if not ops.is_depthwise(target) and target.groups > 1:
                fields["groups"] = target.groups
            return Unit(node.name, source, out.name, "conv", fields, ops.is_depthwise(target),
                        self.graph.kernels.get(node.name, ""))
        if isinstance(target, nn.Linear):
            return Unit(node.name, source, node.name, "linear", dict(bias=target.bias is not None))
        if isinstance(target, ops.NORM_MODULES):
            return Unit(node.name, source, node.name, "norm")
        if ops.activation_name(node, modules):
            return Unit(node.name, source, node.name, "act", dict(act=ops.activation_name(node, modules)))
        if target in ops.CLAMP_OPS:
            return Unit(node.name, source, node.name, "act", dict(act="hardtanh"))
        if isinstance(target, ops.POOL_MODULES) or target in ops.POOL_FUNCTIONS:
            kind, fields = _pool_fields(node, target)
            return Unit(node.name, source, node.name, kind, fields)
        if target in ops.MEAN_OPS:
            return Unit(node.name, source, node.name, "avgpool")
        if isinstance(target, ops.RESIZE_MODULES) or target in ops.RESIZE_FUNCTIONS:
            scale = self.graph.shapes[node.name][2] // max(self.graph.shapes[source][2], 1)
            mode = getattr(target, "mode", None) or _arg(node, 3, "mode", "nearest")
            return Unit(node.name, source, node.name, "resize", dict(stride=scale, mode=str(mode)))
        if target in ops.CAT_OPS:
            return Unit(node.name, source, node.name, "cat", dict(groups=len(node.args[0])))
        if target in ops.BINARY_OPS:
            name = ops.BINARY_OPS[target]
            if len(args) == 1:
                return Unit(node.name, source, node.name, "eltwise", dict(mode=f"{name}_scalar"))
            shapes = [self.graph.shapes[a.name] for a in args]
            if shapes[0] != shapes[1]:
                big = max(range(2), key=lambda i: shapes[i][2:] if len(shapes[i]) > 2 else ())
                return Unit(node.name, args[big].name, node.name, "eltwise", dict(mode="scale"))
            if name == "add":
                return Unit(node.name, source, node.name, "add")
            return Unit(node.name, source, node.name, "eltwise", dict(mode=name))
        if ops.is_free(target) or target in ops.FREE_FUNCTIONS or target in ops.FREE_METHODS \
                or target is operator.getitem:
            return None
        self.unmeasured.append(node.name)
        return None

    # -- specs -------------------------------------------------------------------------------------

    def alive(self, widths: dict[str, int]) -> set[str]:
        """Nodes the slim network of `widths` runs (a branch at width 0 is gone)."""
        graph, seen = self.graph, set()
        stack = [n for n in graph.graph.nodes if n.op == "output"]
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            branch = graph.branches.get(n.name)
            if branch is not None and not graph.live(branch.end, widths):
                stack.extend(a for a in n.all_input_nodes if a.name == branch.skip)
                continue
            seen.add(n.name)
            stack.extend(n.all_input_nodes)
        return seen

    def spec(self, unit: Unit, widths: dict[str, int]) -> LayerSpec | None:
        live, shapes = self.graph.live, self.graph.shapes
        shape = shapes[unit.source]
        h, w = (shape[2], shape[3]) if len(shape) == 4 else (1, 1)
        cin, cout = len(live(unit.source, widths)), len(live(unit.out, widths))
        if unit.kind == "branch_add":
            branch = self.graph.branches[unit.node]
            kept, channels = len(live(branch.end, widths)), len(live(branch.skip, widths))
            if kept == 0:
                return None
            return LayerSpec("add" if kept == channels else "partial_add", channels, kept, h, w)
        if cin == 0 or cout == 0:
            return None
        fields = dict(unit.fixed)
        if unit.kind == "conv" and unit.depthwise:
            fields["groups"] = cout
        if unit.kernel:
            fields["kernel"] = widths[unit.kernel]
        if unit.kind not in ("conv", "linear"):
            cin = cout
        return LayerSpec(unit.kind, cin, cout, h, w, **fields)

    def specs(self, arch: Architecture) -> list[LayerSpec]:
        widths = arch.widths
        alive = self.alive(widths)
        found = (self.spec(u, widths) for u in self.units if u.node in alive)
        return [s for s in found if s is not None]

    def dims_of(self, unit: Unit) -> list[str]:
        """The dimensions a unit's spec depends on."""
        graph = self.graph
        names = {unit.source, unit.out, unit.node}
        branch = graph.branches.get(unit.node)
        if branch is not None:
            names |= {branch.skip, branch.end}
        found = {graph.space_dims[s] for n in names for s, _ in graph.layouts[n] if s in graph.space_dims}
        found |= {graph.caps[n] for n in names if n in graph.caps}
        if unit.kernel:
            found.add(unit.kernel)
        return sorted(found)

    def all_specs(self, space: Architecture) -> set[LayerSpec]:
        """Every unit some architecture of the space runs (a superset: units at every width)."""
        found: set[LayerSpec] = set()
        full = space.widths
        for unit in self.units:
            dims = self.dims_of(unit)
            for combo in itertools.product(*(space.dim(d).choices() for d in dims)):
                spec = self.spec(unit, {**full, **dict(zip(dims, combo))})
                if spec is not None:
                    found.add(spec)
        return found

