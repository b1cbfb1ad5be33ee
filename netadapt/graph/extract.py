"""The physically slim network of a traced graph at given widths.

Each tensor keeps the channels `ChannelGraph.live` names (the first w of each space it carries); convs,
linear layers and batch norms are rebuilt with those rows and columns of the super-network's weights;
a bypassed branch's add becomes a partial add (its first w channels), or the skip alone at w = 0, and
the branch's nodes are dropped. The result is an `fx.GraphModule` that computes, in eval mode, what
the masked super-network computes at those widths.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn

from netadapt.elastic_kernel import centre_crop, same_padding
from netadapt.graph import ops
from netadapt.graph.channels import ChannelGraph


def partial_add(skip: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """A residual add whose branch computes only the first `branch.shape[1]` channels."""
    n = branch.shape[1]
    return torch.cat([skip[:, :n] + branch, skip[:, n:]], dim=1)


def _index(idx: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(idx, dtype=torch.long, device=device)


def slim_conv(conv: nn.Conv2d, cin: list[int], cout: list[int], kernel: int | None = None) -> nn.Conv2d:
    """`conv` reading input channels `cin` and making output channels `cout` (a depthwise conv: with
    the centre `kernel` x `kernel` of its weights when `kernel` is given)."""
    out = _index(cout, conv.weight.device)
    size, padding = conv.kernel_size, conv.padding
    if ops.is_depthwise(conv):
        weight, groups, in_channels = conv.weight[out], len(cout), len(cout)
        if kernel is not None and kernel != size[0]:
            weight, size = centre_crop(weight, kernel), (kernel, kernel)
            padding = (same_padding(kernel, conv.dilation[0]),) * 2
    elif conv.groups == 1:
        weight, groups, in_channels = conv.weight[out][:, _index(cin, out.device)], 1, len(cin)
    else:  # grouped convs keep their full width (their spaces are pinned)
        return copy.deepcopy(conv)
    new = nn.Conv2d(in_channels, len(cout), size, conv.stride, padding, conv.dilation, groups,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode).to(conv.weight.device)
    new.weight.data.copy_(weight.detach())
    if conv.bias is not None:
        new.bias.data.copy_(conv.bias.detach()[out])
    return new


def slim_linear(linear: nn.Linear, cin: list[int], cout: list[int]) -> nn.Linear:
    out = _index(cout, linear.weight.device)
    new = nn.Linear(len(cin), len(cout), bias=linear.bias is not None).to(linear.weight.device)
    new.weight.data.copy_(linear.weight.detach()[out][:, _index(cin, out.device)])
    if linear.bias is not None:
        new.bias.data.copy_(linear.bias.detach()[out])
    return new


def slim_norm(bn: nn.modules.batchnorm._BatchNorm, channels: list[int]) -> nn.Module:
    """A plain batch norm (1d or 2d as `bn`) over `channels`."""
    kind = nn.BatchNorm1d if isinstance(bn, nn.BatchNorm1d) else nn.BatchNorm2d
    new = kind(len(channels), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    idx = _index(channels, bn.running_mean.device if bn.running_mean is not None else torch.device("cpu"))
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(bn, name)
        if value is not None:
            getattr(new, name).data.copy_(value.detach()[idx])
    if bn.num_batches_tracked is not None:
        new.num_batches_tracked.data.copy_(bn.num_batches_tracked)
    return new.to(idx.device)


def slim_network(graph: ChannelGraph, net: fx.GraphModule, widths: dict[str, int]) -> fx.GraphModule:
    """The network of `widths` with `net`'s weights (the masked super-network's), in eval mode."""
    g = copy.deepcopy(graph.graph)
    modules = dict(net.named_modules())
    live = {name: graph.live(name, widths) for name in graph.layouts}
    nodes = {n.name: n for n in g.nodes}
    for add, branch in graph.branches.items():  # in graph order: a skip may be an earlier, removed add
        node, skip, end = nodes[add], nodes[branch.skip], nodes[branch.end]
        kept, channels = len(live[branch.end]), len(live[branch.skip])
        if kept == 0:
            node.replace_all_uses_with(skip)
            g.erase_node(node)
            nodes[add] = skip
        elif kept < channels:
            node.op, node.target, node.args, node.kwargs = "call_function", partial_add, (skip, end), {}
    for node in reversed(list(g.nodes)):  # the nodes of removed branches (fx's own pass needs a module)
        if node.op not in ("placeholder", "output") and not node.users:
            g.erase_node(node)
    root: dict[str, object] = {}
    for node in g.nodes:
        if node.op == "get_attr":
            root[node.target] = copy.deepcopy(_attr(net, node.target))
        if node.op != "call_module":
            continue
        module = modules[node.target]
        source = node.args[0].name if node.args and isinstance(node.args[0], fx.Node) else None
        if isinstance(module, nn.Conv2d):
            kernel = widths.get(graph.kernels.get(node.name, ""))
            root[node.target] = slim_conv(module, live[source], live[node.name], kernel)
        elif isinstance(module, nn.Linear):
            root[node.target] = slim_linear(module, live[source], live[node.name])
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            root[node.target] = slim_norm(module, live[node.name])
        else:
            root[node.target] = copy.deepcopy(module)
    slim = fx.GraphModule(root, g)
    ops.out_of_place(slim)
    return slim.eval()


def _attr(module: nn.Module, target: str) -> object:
    for part in target.split("."):
        module = getattr(module, part)
    return module
