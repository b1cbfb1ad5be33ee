"""Bypassable residual branches: `add = skip + end` where `end` is computed from `skip` by nodes nothing
else reads, ending in a dense op's output passed through channel-local ops. Channel-level bypass on
a general graph: the branch's last dense op computes only its first w channels, and at w = 0 the
branch is gone."""

from __future__ import annotations

from dataclasses import dataclass

from torch import fx, nn

from netadapt.graph import ops
from netadapt.graph.spaces import Layout


@dataclass(frozen=True)
class Branch:
    """A residual branch `add = skip + end`, `end` computed from `skip` by nodes only the branch reads."""

    add: str
    skip: str
    end: str
    tail: tuple[str, ...]  # the branch's last dense op up to `end`: they compute the first w channels only
    body: frozenset[str]  # every node of the branch (gone at width 0)
    dim: str


def _common_prefix(names: list[str]) -> str:
    parts = [n.split(".") for n in names]
    prefix = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        prefix.append(level[0])
    return ".".join(prefix)


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen, stack = set(), list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def find_branch(add: fx.Node, modules: dict[str, nn.Module], layouts: dict[str, Layout]) -> Branch | None:
    """The bypassable residual branch an add closes, if it is one."""
    a, b = [n for n in add.all_input_nodes if n.name in layouts][:2]
    anc_a, anc_b = _ancestors(a), _ancestors(b)
    if a in anc_b:
        skip, end, anc_end = a, b, anc_b
    elif b in anc_a:
        skip, end, anc_end = b, a, anc_a
    else:
        return None
    body = {n for n in anc_end | {end} if skip in _ancestors(n)}
    if any(user not in body and user is not add for n in body for user in n.users):
        return None
    tail, n = [end], end
    while n.op != "call_module" or not ops.is_dense(modules[n.target]):
        target = ops.target_of(n, modules)
        local = (isinstance(target, ops.NORM_MODULES) or ops.is_free(target)) or ops.activation_name(n, modules) \
            or target in ops.CLAMP_OPS or target in ops.FREE_FUNCTIONS
        inputs = [i for i in n.all_input_nodes if i.name in layouts]
        if not local or len(inputs) != 1 or inputs[0] not in body:
            return None
        n = inputs[0]
        if len(n.users) != 1:
            return None
        tail.append(n)
    names = [m.target for m in body if m.op == "call_module"]
    prefix = _common_prefix(names) if names else ""
    dim = f"{prefix or add.name}.bypass"
    return Branch(add.name, skip.name, end.name, tuple(x.name for x in reversed(tail)),
                  frozenset(x.name for x in body), dim)
