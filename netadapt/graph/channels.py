"""The channel-dependency graph of a traced network: which channels must shrink together.

Every tensor of the traced graph has a *layout*: its channel axis (dim 1) as segments, each a part of
one *channel space*. A dense op (conv, linear) makes a new space; a channel-local op passes its input's
spaces on; an element-wise op couples its operands' spaces (union-find: a residual add makes one
stage width, a squeeze-excite multiply ties the gate to the features, a depthwise conv's input and
output are one space); a concatenation lines its inputs' segments up. Each space a dense op produces
and nothing pins is one searchable dimension. A space is pinned (kept at full width) when it is the
input image, the network's output, or touches an op the analysis cannot follow (with a warning naming
that node).

A residual branch `y = x + f(x)` whose nodes nothing else reads is *bypassable* (channel-level
bypass on a general graph): its output channels >= w are dropped, and at w = 0 the branch is gone.
A depthwise conv with an odd square kernel over 3 and "same" padding gets a kernel-size dimension
(`<module>.kernel`: odd sizes down to 3, `netadapt.elastic_kernel`).

This is the same idea as Torch-Pruning's dependency graph (coupled groups by propagation over the
traced graph) and NNI's mask propagation, kept to the rules the masked forward needs as well.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from netadapt.arch import Dimension
from netadapt.graph import ops
from netadapt.graph.branches import Branch, find_branch
from netadapt.graph.errors import GraphError
from netadapt.graph.spaces import Layout, Space, Spaces

@dataclass
class ChannelGraph:
    """A traced network with its channel spaces, dimensions and bypassable branches."""

    graph: fx.Graph  # the traced network's graph, unmasked (node names are the keys below)
    shapes: dict[str, tuple[int, ...]]  # node name -> output shape at the example input (batch 2)
    layouts: dict[str, Layout]  # node name -> layout (tensors with a channel axis only)
    spaces: dict[int, Space]  # space id (union-find root) -> space
    space_dims: dict[int, str]  # space id -> dimension name (unpinned spaces with a choice)
    branches: dict[str, Branch]  # add node name -> branch
    dims: tuple[Dimension, ...]
    warnings: list[str]
    kernels: dict[str, str] = field(default_factory=dict)  # depthwise conv node name -> kernel dimension

    def __post_init__(self) -> None:
        # node name -> the bypass dimension that caps its width (a branch's tail)
        self.caps = {n: b.dim for b in self.branches.values() for n in b.tail}

    def live(self, name: str, widths: dict[str, int]) -> list[int]:
        """The channel indices of node `name`'s output that the network of `widths` keeps."""
        cap = self.caps.get(name)
        index, offset = [], 0
        for space, channels in self.layouts[name]:
            width = widths.get(self.space_dims.get(space, ""), channels)
            if cap is not None:
                width = min(width, widths.get(cap, width))
            index.extend(range(offset, offset + width))
            offset += channels
        return index


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    target = ops.target_of(node, modules)
    what = type(target).__name__ if isinstance(target, nn.Module) else getattr(target, "__name__", str(target))
    return f"node {node.name!r} ({node.op} {what})"


def _tensor_args(node: fx.Node, layouts: dict[str, Layout]) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda a: found.append(a) if a.name in layouts else None)
    return found


def _channel_axis_kept(before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    """A reshape that leaves batch and channel axes alone (e.g. flatten of [B, C, 1, 1])."""
    return len(before) >= 2 and len(after) >= 2 and before[:2] == after[:2] and \
        math.prod(before[2:]) == math.prod(after[2:])


def _reduces_spatial_only(node: fx.Node, ndim: int) -> bool:
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if dims is None:
        return False
    dims = [dims] if isinstance(dims, int) else list(dims)
    return all(isinstance(d, int) and d % ndim >= 2 for d in dims)


def shape_of(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if isinstance(meta, fx.passes.shape_prop.TensorMetadata) else None


def analyse(module: fx.GraphModule, example: torch.Tensor, granularity: int) -> ChannelGraph:
    """Channel spaces, dimensions and bypassable branches of a traced network (shapes from `example`)."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        fx.passes.shape_prop.ShapeProp(module).propagate(example)
    module.train(was_training)
    modules = dict(module.named_modules())
    spaces, layouts, shapes, warnings = Spaces(), {}, {}, []
    adds: list[fx.Node] = []
    inputs = 0
    for node in module.graph.nodes:
        shape = shape_of(node)
        if shape is not None:
            shapes[node.name] = shape
        channels = shape[1] if shape is not None and len(shape) >= 2 else None
        if node.op == "output":
            for arg in _tensor_args(node, layouts):
                spaces.pin(layouts[arg.name], "the network's output")
            continue
        if node.op == "placeholder":
            inputs += 1
            if inputs > 1:
                raise GraphError(f"{node.name}: the model's forward takes more than one input; "
                                 f"netadapt searches models of one image tensor")
            layouts[node.name] = ((spaces.new(channels, pinned="the input image"), channels),)
            continue
        if channels is None:
            continue  # sizes, shapes, scalars: widths never change them
        if node.op == "get_attr":
            layouts[node.name] = ((spaces.new(channels, pinned=f"{node.name}: a tensor attribute"), channels),)
            continue
        layout = _visit(node, modules, layouts, shapes, spaces, adds)
        if layout is None:  # opaque: pin what it reads and what it makes
            reason = f"{_describe(node, modules)}: the channel analysis cannot follow this op"
            for arg in _tensor_args(node, layouts):
                spaces.pin(layouts[arg.name], reason)
            layout = ((spaces.new(channels, pinned=reason), channels),)
            warnings.append(f"{reason}; the channels around it keep their full width")
        layouts[node.name] = layout
    layouts = {k: tuple((spaces.find(s), c) for s, c in v) for k, v in layouts.items()}
    roots = {spaces.find(i) for i in range(len(spaces.parent))}
    found = {r: spaces.info[r] for r in roots}
    return _dimensions(module, modules, shapes, layouts, found, adds, granularity, warnings)


def _visit(node: fx.Node, modules: dict[str, nn.Module], layouts: dict[str, Layout],
           shapes: dict[str, tuple[int, ...]], spaces: Spaces, adds: list[fx.Node]) -> Layout | None:
    """The layout of `node`'s output, or None when the op is opaque."""
    args = _tensor_args(node, layouts)
    target = ops.target_of(node, modules)
    shape = shapes[node.name]
    first = layouts[args[0].name] if args else None
    if isinstance(target, nn.Module):
        if ops.is_dense(target):
            if isinstance(target, nn.Linear) and len(shapes[args[0].name]) != 2:
                return None
            return ((spaces.new(shape[1], producer=node.target), shape[1]),)
        if ops.is_depthwise(target):
            return first
        if isinstance(target, nn.Flatten):
            return first if _channel_axis_kept(shapes[args[0].name], shape) else None
        local = ops.NORM_MODULES + ops.POOL_MODULES + ops.RESIZE_MODULES
        if isinstance(target, local) or ops.is_free(target) or type(target) in ops.ACTIVATION_MODULES:
            return first
        return None
    if first is None:
        return None
    if target in ops.FREE_METHODS or target in ops.FREE_FUNCTIONS:
        return first if _channel_axis_kept(shapes[args[0].name], shape) else None
    if ops.activation_name(node, modules) or target in ops.CLAMP_OPS or target in ops.POOL_FUNCTIONS \
            or target in ops.RESIZE_FUNCTIONS:
        return first
    if target is operator.getitem:  # x[:, :, None, None] and the like: batch and channel axes untouched
        index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
        full = slice(None, None, None)
        return first if index[:2] == (full, full) and shape[:2] == shapes[args[0].name][:2] else None
    if target in ops.MEAN_OPS:
        return first if _reduces_spatial_only(node, len(shapes[args[0].name])) else None
    if target in ops.CAT_OPS:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        if dim % len(shape) != 1:
            return None
        return tuple(seg for arg in node.args[0] for seg in layouts[arg.name])
    if target in ops.BINARY_OPS:
        return _binary(node, args, layouts, shapes, spaces, adds, residual=target in ops.ADD_OPS)
    return None


def _binary(node: fx.Node, args: list[fx.Node], layouts: dict[str, Layout], shapes: dict[str, tuple[int, ...]],
            spaces: Spaces, adds: list[fx.Node], residual: bool) -> Layout | None:
    if len(args) == 1:
        return layouts[args[0].name]  # with a scalar
    if len(args) != 2:
        return None
    (a, b), shape = args, shapes[node.name]
    sa, sb = shapes[a.name], shapes[b.name]
    if len(sa) != len(sb):
        return None
    if sa[1] != sb[1]:
        if 1 not in (sa[1], sb[1]):
            return None
        narrow, wide = (a, b) if sa[1] == 1 else (b, a)
        spaces.pin(layouts[narrow.name], f"node {node.name!r}: broadcast over channels")
        return layouts[wide.name]
    la, lb = layouts[a.name], layouts[b.name]
    if [c for _, c in la] != [c for _, c in lb]:
        if len(la) == 1 or len(lb) == 1:  # e.g. a squeeze-excite gate over a concatenation
            whole, parts = (la, lb) if len(la) == 1 else (lb, la)
            spaces.split(whole[0][0], [c for _, c in parts], layouts)
            la, lb = layouts[a.name], layouts[b.name]
        if [c for _, c in la] != [c for _, c in lb]:
            return None
    for (x, _), (y, _) in zip(la, lb):
        spaces.union(x, y, residual)
    if residual and sa == sb == shape:
        adds.append(node)
    return la


def _dimensions(module: fx.GraphModule, modules: dict[str, nn.Module], shapes: dict[str, tuple[int, ...]],
                layouts: dict[str, Layout], spaces: dict[int, Space], adds: list[fx.Node], granularity: int,
                warnings: list[str]) -> ChannelGraph:
    ordered: list[tuple[int, Dimension]] = []  # (graph position, dimension)
    position = {n.name: i for i, n in enumerate(module.graph.nodes)}
    space_dims: dict[int, str] = {}
    first_producer = {}
    for node in module.graph.nodes:
        for space, _ in layouts.get(node.name, ()):
            if node.op == "call_module" and node.target in spaces[space].producers:
                first_producer.setdefault(space, node)
    for space, info in spaces.items():
        if info.pinned or space not in first_producer:
            continue
        g = math.gcd(info.channels, granularity)
        if info.channels // g < 2:
            continue
        node = first_producer[space]
        name = f"{node.target}.{'stage' if info.residual else 'out'}"
        if name in space_dims.values():  # the parts of a split space
            name = f"{name}.{sum(n.startswith(name) for n in space_dims.values())}"
        space_dims[space] = name
        ordered.append((position[node.name], Dimension(name, info.channels, info.channels, g, g)))
    branches: dict[str, Branch] = {}
    taken = {d.name for _, d in ordered}
    for add in adds:
        branch = find_branch(add, modules, layouts)
        if branch is None:
            continue
        if branch.dim in taken:
            branch = dataclasses.replace(branch, dim=f"{branch.dim}.{add.name}")
        taken.add(branch.dim)
        channels = shapes[add.name][1]
        g = math.gcd(channels, granularity)
        branches[add.name] = branch
        ordered.append((position[add.name], Dimension(branch.dim, channels, channels, g, 0)))
    kernels: dict[str, str] = {}
    for node in module.graph.nodes:
        kernel = elastic_kernel(modules[node.target]) if node.op == "call_module" else None
        if kernel is not None:
            kernels[node.name] = f"{node.target}.kernel"
            ordered.append((position[node.name], Dimension(kernels[node.name], kernel, kernel, 2, 3, kind="kernel")))
    dims = tuple(d for _, d in sorted(ordered, key=lambda t: t[0]))
    return ChannelGraph(module.graph, shapes, layouts, spaces, space_dims, branches, dims, warnings, kernels)


def elastic_kernel(module: nn.Module) -> int | None:
    """The kernel size of a depthwise conv whose kernel the search may shrink (odd, square, over 3,
    "same" zero padding, equal strides and dilations), else None."""
    if not ops.is_depthwise(module) or module.padding_mode != "zeros":
        return None
    (kh, kw), (dh, dw), (sh, sw) = module.kernel_size, module.dilation, module.stride
    padding = module.padding
    if kh != kw or dh != dw or sh != sw or kh <= 3 or kh % 2 == 0:
        return None
    if isinstance(padding, str) and padding != "same":
        return None
    if not isinstance(padding, str) and tuple(padding) != (kh // 2 * dh,) * 2:
        return None
    return kh
