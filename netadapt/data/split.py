"""Seeded, class-stratified splits: every class keeps its share in both parts."""

from __future__ import annotations

import numpy as np

from netadapt.errors import DataError


def stratified_split(labels: np.ndarray, fraction: float, seed: int | list[int],
                     key: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, carved), each sorted: round(fraction * n_c) samples of each class c are carved.

    `key` names the params key of `fraction` in errors (a class too small to split).
    """
    rng = np.random.default_rng(seed)
    kept, carved = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_carve = int(round(fraction * len(members)))
        if n_carve < 1 or n_carve >= len(members):
            raise DataError(f"{key}: class {int(c)} has {len(members)} samples, too few to carve "
                            f"a fraction of {fraction:g} with at least one sample on each side")
        members = rng.permutation(members)
        carved.append(members[:n_carve])
        kept.append(members[n_carve:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(carved))


def class_mixed_order(labels: np.ndarray, seed: int | list[int]) -> np.ndarray:
    """A seeded permutation in which every prefix holds each class in its share (within one sample).

    Each class is shuffled and its members spread evenly over [0, 1) (member i at (i + u) / n_c, u
    uniform), then all samples are sorted by position. Any "first N" of a split in this order (BN
    recalibration batches, a scoring subset, a monitor) sees every class, never just the first ones
    of a class-sorted folder listing.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    position = np.empty(len(labels))
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        position[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return np.argsort(position, kind="stable")
