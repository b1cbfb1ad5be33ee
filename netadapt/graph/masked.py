"""The masked super-network of a traced graph: ordered dropout and channel-level bypass on any model.

The traced network gets a second input, `widths` (dimension name -> int, or a [B] tensor of per-sample
widths). Masks are placed where the built-in blocks place them: a channel >= w of a space may hold a
value (batch norm's shift, an activation of it) as long as nothing mixes it into a kept channel, so
the mask goes on the input of every dense op (conv with groups=1, linear) and on a bypassable branch's
output before its add. Channel-local ops (batch norm, depthwise convs, pooling) then see every
sample's own channels, and batch norm keeps per-sample-group statistics (`GroupStatsBatchNorm2d`
replaces `nn.BatchNorm2d`). A depthwise conv with a kernel-size dimension becomes an
`ElasticKernelConv2d` (same weights) that reads its kernel size from `widths`.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from netadapt.elastic_kernel import ElasticKernelConv2d
from netadapt.graph import ops
from netadapt.graph.channels import ChannelGraph
from netadapt.ordered_dropout import GroupStatsBatchNorm2d, Widths, channel_mask, prefix_mask

Segments = tuple[tuple[str, int], ...]  # (dimension name or "" for a fixed part, channels)


def mask_segments(x: torch.Tensor, widths: Widths | None, segments: Segments) -> torch.Tensor:
    """Zero the channels each segment's width drops (per sample where a width is a tensor)."""
    if not widths:
        return x
    if len(segments) == 1:
        name = segments[0][0]
        return channel_mask(x, widths.get(name)) if name else x
    trailing = [1] * (x.dim() - 2)
    parts, masked = [], False
    for name, channels in segments:
        keep = prefix_mask(widths[name], channels, x) if name and name in widths else None
        masked |= keep is not None
        parts.append(torch.ones(1, channels, *trailing, dtype=torch.bool, device=x.device) if keep is None else keep)
    if not masked:
        return x
    batch = max(p.shape[0] for p in parts)
    return x * torch.cat([p.expand(batch, *p.shape[1:]) for p in parts], dim=1).to(x.dtype)


def _segments(graph: ChannelGraph, name: str) -> Segments:
    return tuple((graph.space_dims.get(space, ""), channels) for space, channels in graph.layouts[name])


def _group_stats(bn: nn.BatchNorm2d) -> GroupStatsBatchNorm2d:
    new = GroupStatsBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.load_state_dict(bn.state_dict())
    return new.to(bn.weight.device)


def masked_network(traced: fx.GraphModule, graph: ChannelGraph) -> fx.GraphModule:
    """The super-network: `net(x, widths=None)`, channels >= each dimension's width zeroed."""
    net = fx.GraphModule(copy.deepcopy(traced), copy.deepcopy(traced.graph))
    for name, module in list(net.named_modules()):
        if type(module) is nn.BatchNorm2d and module.affine and module.track_running_stats:
            parent, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, _group_stats(module))
    g = net.graph
    image = next(n for n in g.nodes if n.op == "placeholder")
    with g.inserting_after(image):
        widths = g.placeholder("widths", default_value=None)
    for node in g.nodes:
        if node.name in graph.kernels:
            parent, _, attr = node.target.rpartition(".")
            conv = net.get_submodule(node.target)
            setattr(net.get_submodule(parent) if parent else net, attr,
                    ElasticKernelConv2d.from_conv(conv, graph.kernels[node.name]))
            node.kwargs = {**node.kwargs, "widths": widths}
    modules = dict(net.named_modules())
    masks: dict[tuple[str, Segments], fx.Node] = {}

    def masked(arg: fx.Node, before: fx.Node, segments: Segments) -> fx.Node:
        if not any(name for name, _ in segments):
            return arg
        if (arg.name, segments) not in masks:
            with g.inserting_before(before):
                masks[(arg.name, segments)] = g.call_function(mask_segments, (arg, widths, segments))
        return masks[(arg.name, segments)]

    for node in list(g.nodes):
        if node.op == "call_module" and ops.is_dense(modules[node.target]):
            source = node.args[0]
            node.replace_input_with(source, masked(source, node, _segments(graph, source.name)))
        elif node.name in graph.branches:
            branch = graph.branches[node.name]
            end = next(a for a in node.all_input_nodes if a.name == branch.end)
            channels = graph.shapes[end.name][1]
            node.replace_input_with(end, masked(end, node, ((branch.dim, channels),)))
    g.lint()
    ops.out_of_place(net)
    return net
