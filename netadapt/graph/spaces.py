"""Channel spaces: sets of channels that shrink together, merged by union-find as the analysis
couples them (`channels.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

Layout = tuple[tuple[int, int], ...]  # (space id, channels) along the channel axis


@dataclass
class Space:
    """A set of channels that shrink together: the first `w` of them are kept."""

    channels: int
    producers: list[str] = field(default_factory=list)  # dense modules whose outputs make it
    pinned: list[str] = field(default_factory=list)  # why it keeps its full width
    residual: bool = False  # coupled by an add: a stage width shared by residual-linked blocks


class Spaces:
    """Union-find over channel spaces."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.info: list[Space] = []

    def new(self, channels: int, producer: str | None = None, pinned: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.info.append(Space(channels, [producer] if producer else [], [pinned] if pinned else []))
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int, residual: bool) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
        root = self.info[min(ra, rb)]
        if ra != rb:
            other = self.info[max(ra, rb)]
            root.producers += other.producers
            root.pinned += other.pinned
            root.residual |= other.residual
        root.residual |= residual

    def split(self, space: int, sizes: list[int], layouts: dict[str, Layout]) -> None:
        """Cut a space into consecutive parts of `sizes` channels (a dense op's output read as the
        segments of a concatenation): every layout holding it holds the parts instead."""
        root = self.find(space)
        info = self.info[root]
        parts = [self.new(c) for c in sizes]
        for part in parts:
            self.info[part].producers = list(info.producers)
            self.info[part].pinned = list(info.pinned)
            self.info[part].residual = info.residual
        info.producers, info.pinned = [], ["split into parts"]
        for name, layout in layouts.items():
            if any(self.find(s) == root for s, _ in layout):
                layouts[name] = tuple(seg for s, c in layout
                                      for seg in ([(p, n) for p, n in zip(parts, sizes)] if self.find(s) == root
                                                  else [(s, c)]))

    def pin(self, layout: Layout, reason: str) -> None:
        for space, _ in layout:
            self.info[self.find(space)].pinned.append(reason)
