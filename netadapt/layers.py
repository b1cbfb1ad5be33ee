"""Layer specifications: what an extracted network executes, unit by unit, computed from an architecture.

A `LayerSpec` is the key of the latency lookup table and the unit of analytic MAC and parameter
counts. Models list them for an architecture without building it (`model.layers(arch)`), and the
list mirrors what `extract(arch)` runs (tests check this against the built network).

A conv unit is conv -> optional BN -> optional activation, as the slim network runs it (and as
inference engines fuse it); the other units are the element-wise and pooling ops around convs:
residual adds, partial adds and concatenations of channel-level bypass, global pooling, the
classifier, and for traced models (`netadapt.graph`) standalone activations and batch norms, windowed
pooling, element-wise products (`mode`: `mul`, or `scale` for a [B, C, 1, 1] gate as squeeze-excite
applies), concatenations (`groups`: the number of parts) and resizing (`mode`: the interpolation,
`stride`: the scale factor). Every op that costs time belongs to some unit; reshapes and dropout
cost nothing and have none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Op = Literal["conv", "add", "partial_add", "bypass_cat", "avgpool", "linear",
             "act", "norm", "pool", "eltwise", "cat", "resize"]




@dataclass(frozen=True)
class LayerSpec:
    op: Op
    cin: int
    cout: int
    h: int  # input height
    w: int  # input width
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    norm: bool = False  # conv: followed by batch norm
    act: str = ""  # conv, act: a name of netadapt.activations.ACTIVATIONS, or "" (none)
    padding: int = -1  # conv, pool: -1 is "same" (kernel // 2 * dilation)
    dilation: int = 1
    mode: str = ""  # pool: "max"/"avg"; eltwise: "mul"/"scale"/"sub"/"div"/"add"; resize: interpolation

    @property
    def pad(self) -> int:
        return self.padding if self.padding >= 0 else self.kernel // 2 * self.dilation

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.op in ("conv", "pool"):
            span = self.dilation * (self.kernel - 1) + 1
            return ((self.h + 2 * self.pad - span) // self.stride + 1,
                    (self.w + 2 * self.pad - span) // self.stride + 1)
        if self.op in ("avgpool", "linear"):
            return 1, 1
        if self.op == "resize":
            return self.h * self.stride, self.w * self.stride
        return self.h, self.w

    @property
    def params(self) -> int:
        if self.op == "conv":
            return (self.cout * (self.cin // self.groups) * self.kernel ** 2 + (self.cout if self.bias else 0)
                    + (2 * self.cout if self.norm else 0))
        if self.op == "norm":
            return 2 * self.cout
        if self.op == "linear":
            return self.cin * self.cout + (self.cout if self.bias else 0)
        return 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates of convolutions and linear layers (element-wise ops count 0)."""
        if self.op == "conv":
            oh, ow = self.out_hw
            return self.cout * (self.cin // self.groups) * self.kernel ** 2 * oh * ow
        if self.op == "linear":
            return self.cin * self.cout
        return 0

    def key(self) -> tuple:
        """Identity of the measurement: two layers with equal keys cost the same."""
        return tuple(asdict(self).values())


def conv_bn_act(cin: int, cout: int, height: int, width: int, kernel: int = 1, stride: int = 1,
                groups: int = 1, act: str | None = "relu6") -> tuple[list[LayerSpec], int, int]:
    """The spec of a conv -> BN -> activation unit, and its output spatial size."""
    conv = LayerSpec("conv", cin, cout, height, width, kernel, stride, groups, norm=True, act=act or "")
    oh, ow = conv.out_hw
    return [conv], oh, ow


def total_params(layers: list[LayerSpec]) -> int:
    return sum(layer.params for layer in layers)


def total_macs(layers: list[LayerSpec]) -> int:
    return sum(layer.macs for layer in layers)
