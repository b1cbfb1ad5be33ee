"""What the channel analysis knows about each op of a traced graph.

An op is *channel-local* when output channel k depends on input channel k alone (batch norm,
activations, pooling, dropout, resizing): it passes its input's channel spaces on. A *dense* op
(a conv with groups=1, a linear layer) reads every input channel and makes a new space. Element-wise
binary ops couple the channel spaces of their operands (a residual add makes a stage width, a
squeeze-excite multiply ties the gate to the features). Any other op that touches channels is
*opaque*: its neighbours keep their full width, with a warning naming the node.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from netadapt.activations import ACTIVATIONS

# Activation modules and functions by the name layer specs and units use (`LayerSpec.act`).
ACTIVATION_MODULES: dict[type, str] = {cls: name for name, cls in ACTIVATIONS.items()}
ACTIVATION_FUNCTIONS: dict[object, str] = {
    F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid", F.silu: "silu", F.gelu: "gelu", torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid", torch.tanh: "tanh", F.tanh: "tanh",
}
ACTIVATION_METHODS: dict[str, str] = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}

# Channel-local ops that cost (next to) nothing: no unit of their own.
FREE_MODULES: tuple[type, ...] = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.Flatten)
# Per-sample drop of a residual branch (torchvision's `StochasticDepth`, timm's `DropPath`): the
# identity in eval mode, a per-sample scale in training; known by name, as neither library is needed.
FREE_MODULE_NAMES: frozenset = frozenset({"StochasticDepth", "DropPath"})
FREE_FUNCTIONS: frozenset = frozenset({F.dropout, F.dropout2d, torch.flatten})
FREE_METHODS: frozenset = frozenset({"contiguous", "clone", "detach", "float", "flatten", "view", "reshape",
                                     "to", "type_as"})

NORM_MODULES: tuple[type, ...] = (nn.BatchNorm2d, nn.BatchNorm1d)
POOL_MODULES: tuple[type, ...] = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
POOL_FUNCTIONS: frozenset = frozenset({F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d})
RESIZE_MODULES: tuple[type, ...] = (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d)
RESIZE_FUNCTIONS: frozenset = frozenset({F.interpolate})

# Element-wise binary ops by the name element-wise units use (`LayerSpec.mode`).
BINARY_OPS: dict[object, str] = {
    operator.add: "add", operator.iadd: "add", torch.add: "add", "add": "add", "add_": "add",
    operator.mul: "mul", operator.imul: "mul", torch.mul: "mul", "mul": "mul", "mul_": "mul",
    operator.sub: "sub", operator.isub: "sub", torch.sub: "sub", "sub": "sub",
    operator.truediv: "div", operator.itruediv: "div", torch.div: "div", "div": "div",
}
ADD_OPS: frozenset = frozenset(t for t, name in BINARY_OPS.items() if name == "add")
CAT_OPS: frozenset = frozenset({torch.cat, torch.concat})
MEAN_OPS: frozenset = frozenset({torch.mean, "mean"})
CLAMP_OPS: frozenset = frozenset({torch.clamp, "clamp", "clamp_min", "clamp_max", F.hardtanh})
# Non-tensor results (sizes, shapes) that channel widths never change.
SHAPE_OPS: frozenset = frozenset({"size", "dim", getattr, operator.getitem})


def target_of(node: torch.fx.Node, modules: dict[str, nn.Module]) -> object:
    """The module instance, function or method name a node calls."""
    if node.op == "call_module":
        return modules[node.target]
    return node.target


def activation_name(node: torch.fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The activation a node applies (as `LayerSpec.act` names it), or None."""
    if node.op == "call_module":
        return ACTIVATION_MODULES.get(type(modules[node.target]))
    if node.op == "call_function":
        return ACTIVATION_FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return ACTIVATION_METHODS.get(node.target)
    return None


def is_free(module: object) -> bool:
    """A module that costs (next to) nothing and keeps channels where they are (dropout and the like)."""
    return isinstance(module, FREE_MODULES) or type(module).__name__ in FREE_MODULE_NAMES


def is_dense(module: nn.Module) -> bool:
    """A conv with groups=1 or a linear layer: reads every input channel, makes a new channel space."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def is_depthwise(module: nn.Module) -> bool:
    """A conv whose output channel k reads input channel k alone."""
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


OUT_OF_PLACE = {operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
                operator.itruediv: operator.truediv}


def out_of_place(module: torch.fx.GraphModule) -> None:
    """Make every op of a traced network write a new tensor: once masks are inserted and branches
    removed, an in-place op (`out += x`, `ReLU(inplace=True)`) may overwrite a tensor another op saved
    for its backward pass (a removed branch leaves `relu_(x)` on the previous block's ReLU output)."""
    for m in module.modules():
        if isinstance(getattr(m, "inplace", None), bool):
            m.inplace = False
    for node in module.graph.nodes:
        if node.op == "call_function" and node.target in OUT_OF_PLACE:
            node.target = OUT_OF_PLACE[node.target]
        if node.op in ("call_function", "call_method") and node.kwargs.get("inplace") is True:
            node.kwargs = {**node.kwargs, "inplace": False}
        if node.op == "call_method" and isinstance(node.target, str) and node.target.endswith("_") \
                and node.target.rstrip("_") in ("add", "mul", "sub", "div", "relu", "clamp", "sigmoid"):
            node.target = node.target.rstrip("_")
    module.recompile()
