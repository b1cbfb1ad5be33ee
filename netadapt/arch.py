"""Architecture description: a super-network's identity plus the width of each searchable dimension.

A *dimension* is something the search may shrink: a channel space (an expansion or stage width, ordered
dropout, never 0), a block's output width under channel-level bypass (may reach 0: the block
disappears), or a depthwise conv's kernel size (`kind="kernel"`: odd sizes from the built one down to
3, the centre of the larger kernel). Values move on a grid of `granularity` (2 for kernels) from the
minimum; the maximum is what the super-network was built with. Every dimension's value is called its
*width* in code (`Architecture.widths`), whatever it counts.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Mapping

from netadapt.errors import NetAdaptError


class ArchitectureError(NetAdaptError):
    """A width off the grid, over the maximum or under the minimum; names the dimension."""


KINDS = ("width", "kernel")


@dataclass(frozen=True)
class Dimension:
    name: str
    max_width: int
    width: int
    granularity: int = 8
    min_width: int = 8  # 0 where the block is bypassable (CBC)
    kind: str = "width"  # "kernel": a depthwise conv's kernel size, odd, down to `min_width` (3)

    def __post_init__(self) -> None:
        g = self.granularity
        if g < 1:
            raise ArchitectureError(f"{self.name}: granularity must be >= 1, got {g}")
        if self.kind not in KINDS:
            raise ArchitectureError(f"{self.name}: unknown dimension kind {self.kind!r} (known: {', '.join(KINDS)})")
        if self.kind == "kernel":
            self._check_kernel_grid()
        elif self.max_width < 1 or self.max_width % g:
            raise ArchitectureError(f"{self.name}: maximum width {self.max_width} is not a positive "
                                    f"multiple of the granularity {g}")
        elif self.min_width < 0 or self.min_width % g or self.min_width > self.max_width:
            raise ArchitectureError(f"{self.name}: minimum width {self.min_width} must be a multiple of "
                                    f"{g} between 0 and {self.max_width}")
        self.check(self.width)

    def _check_kernel_grid(self) -> None:
        if self.granularity != 2 or self.min_width < 1 or self.min_width % 2 == 0 or self.max_width % 2 == 0 \
                or self.min_width > self.max_width:
            raise ArchitectureError(f"{self.name}: a kernel dimension takes odd sizes on a grid of 2 (got "
                                    f"{self.min_width}..{self.max_width} by {self.granularity})")

    @property
    def bypassable(self) -> bool:
        return self.min_width == 0

    @property
    def fixed(self) -> bool:
        """Whether the search may not move it (`model.fixed`): its one width is the maximum."""
        return self.min_width == self.max_width

    def check(self, width: int) -> None:
        if isinstance(width, bool) or not isinstance(width, int):
            raise ArchitectureError(f"{self.name}: width must be an integer, got {width!r}")
        if self.kind == "kernel":
            if width % 2 == 0 or not self.min_width <= width <= self.max_width:
                raise ArchitectureError(f"{self.name}: kernel size {width} is not an odd size between "
                                        f"{self.min_width} and {self.max_width}")
            return
        if width > self.max_width:
            raise ArchitectureError(f"{self.name}: width {width} is over the maximum {self.max_width}")
        if width % self.granularity:
            raise ArchitectureError(f"{self.name}: width {width} is not a multiple of the granularity "
                                    f"{self.granularity}")
        if width < self.min_width:
            reason = "0 is allowed only for bypassable blocks" if width == 0 else f"minimum {self.min_width}"
            raise ArchitectureError(f"{self.name}: width {width} is below the minimum ({reason})")

    @property
    def narrowest_width(self) -> int:
        """The smallest width that keeps the dimension (a bypassable block's first non-zero width)."""
        return self.min_width or self.granularity

    def choices(self) -> list[int]:
        """Every allowed width, ascending."""
        return list(range(self.min_width, self.max_width + 1, self.granularity))


def _frozen(value: Any) -> Any:
    """JSON-like data as hashable tuples (lists become tuples, mappings sorted pairs)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _frozen_kwargs(kwargs: Any) -> tuple[tuple[str, Any], ...]:
    pairs = kwargs.items() if isinstance(kwargs, Mapping) else kwargs
    return tuple(sorted((str(k), _frozen(v)) for k, v in pairs))


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the super-network: registered name and construction arguments."""

    name: str
    input_shape: tuple[int, int, int]  # C, H, W
    num_classes: int
    width_mult: float = 1.0
    granularity: int = 8
    kwargs: tuple[tuple[str, Any], ...] = ()  # a user's model: its construction arguments (model.kwargs)
    path: str | None = None  # a user's model: the folder of its module (model.path), relative to the project
    fixed: tuple[str, ...] = ()  # patterns of dimension names held at their built size (model.fixed)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kwargs", _frozen_kwargs(self.kwargs))
        object.__setattr__(self, "fixed", tuple(self.fixed))


def pinned(dims: Iterable[Dimension], patterns: Iterable[str]) -> tuple[Dimension, ...]:
    """`dims` with every dimension whose name matches one of `patterns` (shell-style: `*.stage`,
    `*.kernel`, `head.conv.out`) fixed at its maximum, so no search moves it (`model.fixed`). A
    pattern that matches no dimension is an error naming it: a typo must not search the full space."""
    dims, patterns = tuple(dims), tuple(patterns)
    for i, pattern in enumerate(patterns):
        if not any(fnmatch.fnmatchcase(d.name, pattern) for d in dims):
            names = [d.name for d in dims]
            shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
            raise ArchitectureError(f"model.fixed[{i}]: {pattern!r} matches no dimension of the model "
                                    f"(its dimensions: {shown})")
    return tuple(replace(d, min_width=d.max_width, width=d.max_width)
                 if any(fnmatch.fnmatchcase(d.name, p) for p in patterns) else d for d in dims)


def _dimension_dict(d: Dimension) -> dict[str, Any]:
    raw = asdict(d)
    if d.kind == "width":  # width-only spaces are described as they always were
        del raw["kind"]
    return raw


@dataclass(frozen=True)
class Architecture:
    model: ModelSpec
    dims: tuple[Dimension, ...]

    def __post_init__(self) -> None:
        names = [d.name for d in self.dims]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ArchitectureError(f"{dupes[0]}: dimension named twice")

    @property
    def widths(self) -> dict[str, int]:
        return {d.name: d.width for d in self.dims}

    def dim(self, name: str) -> Dimension:
        for d in self.dims:
            if d.name == name:
                return d
        raise ArchitectureError(f"{name}: no such dimension (known: {', '.join(d.name for d in self.dims)})")

    def with_widths(self, widths: Mapping[str, int]) -> "Architecture":
        """A copy with some widths changed; each is validated against its dimension."""
        unknown = set(widths) - {d.name for d in self.dims}
        if unknown:
            self.dim(sorted(unknown)[0])  # raises, naming it
        return replace(self, dims=tuple(replace(d, width=widths.get(d.name, d.width)) for d in self.dims))

    def largest(self) -> "Architecture":
        return self.with_widths({d.name: d.max_width for d in self.dims})

    def smallest(self) -> "Architecture":
        return self.with_widths({d.name: d.min_width for d in self.dims})

    def narrowest(self) -> "Architecture":
        """Every dimension at its narrowest non-zero width: as narrow as width alone goes, no block removed."""
        return self.with_widths({d.name: d.narrowest_width for d in self.dims})

    def widths_json(self) -> str:
        """The widths as canonical JSON: a key for histories, caches and measurement tables."""
        return json.dumps(self.widths, sort_keys=True)

    def same_space(self, other: "Architecture") -> bool:
        return self.model == other.model and self.largest() == other.largest()

    def widths_of(self, arch: "Architecture") -> dict[str, int]:
        """The widths of `arch`, an architecture of this space (else an error naming both models)."""
        if not self.same_space(arch):
            raise ArchitectureError(f"architecture: it belongs to another search space than this "
                                    f"{self.model.name} super-network ({arch.model} vs {self.model})")
        return arch.widths

    # -- JSON ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        model = {**asdict(self.model), "input_shape": list(self.model.input_shape),
                 "kwargs": {k: v for k, v in self.model.kwargs}}
        model["fixed"] = list(self.model.fixed)
        for key in ("kwargs", "path", "fixed"):  # the built-in models' descriptions stay as they were
            if not model[key]:
                del model[key]
        return {"model": model,
                "dimensions": [_dimension_dict(d) for d in self.dims]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Architecture":
        try:
            model = dict(raw["model"])
            model["input_shape"] = tuple(model["input_shape"])
            dims: Iterable[Mapping[str, Any]] = raw["dimensions"]
            return cls(ModelSpec(**model), tuple(Dimension(**d) for d in dims))
        except (KeyError, TypeError) as exc:
            raise ArchitectureError(f"architecture: malformed description ({exc})") from None

    @classmethod
    def from_json(cls, text: str) -> "Architecture":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture: not valid JSON ({exc})") from None
