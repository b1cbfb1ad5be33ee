"""How sure a measured latency is: a bootstrap 95% interval of its median, over timing rounds.

Whole networks are timed in rounds (`timing.network_timings`): in each round every network gets one
burst, in shuffled order. A network's `Rounds` keeps those bursts; its latency is the median of all
their runs, and its interval the 2.5th-97.5th percentiles of that median over `RESAMPLES` resamples
that draw rounds with replacement, then runs with replacement within each drawn round (a two-level
bootstrap: the machine's drift between rounds and the jitter inside a burst both widen it). A ratio
of two networks timed side by side (the final network over the base) resamples the *same* rounds for
both, so drift that slows both alike cancels out of it, as it does out of the ratio itself.

The resampling is seeded: the same timings give the same interval. A burst of one figure (a batch
runner's median, the `command` backend) makes the inner draw a no-op; a single figure in all (a
point) has a zero-width interval.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95  # the interval's coverage: keys and messages say `ci95`


@dataclass(frozen=True)
class Interval:
    """A measured figure and its bootstrap 95% interval (low <= value <= high)."""

    value: float
    low: float
    high: float

    @classmethod
    def point(cls, value: float) -> "Interval":
        """A figure measured exactly (or by a device that reports no spread)."""
        return cls(value, value, value)

    def __str__(self) -> str:
        """`0.412 [0.405, 0.42]`, or the value alone for a point."""
        if self.low == self.high == self.value:
            return f"{self.value:.4g}"
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True)
class Rounds:
    """One network's timed runs (ms), burst by burst: `bursts[r]` is its burst of round r."""

    bursts: tuple[tuple[float, ...], ...]

    @classmethod
    def point(cls, ms: float) -> "Rounds":
        return cls(((float(ms),),))

    @property
    def median(self) -> float:
        return statistics.median(t for burst in self.bursts for t in burst)

    def __add__(self, other: "Rounds") -> "Rounds":
        """Both timings' rounds: the same network timed again, pooled."""
        return Rounds(self.bursts + other.bursts)


def _resampled_medians(rounds: Rounds, picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The median of each resample: rounds `picks[b]` (with replacement), runs redrawn within each."""
    width = max(len(b) for b in rounds.bursts)
    if any(len(b) != width for b in rounds.bursts):  # bursts of unequal length: draw from each round's own runs
        grid = np.array([[b[i % len(b)] for i in range(width)] for b in rounds.bursts], dtype=float)
    else:
        grid = np.array(rounds.bursts, dtype=float)
    runs = rng.integers(width, size=picks.shape + (width,))
    return np.median(grid[picks[..., None], runs].reshape(len(picks), -1), axis=1)


def _interval(value: float, resampled: np.ndarray) -> Interval:
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(value, min(float(low), value), max(float(high), value))


def median_interval(rounds: Rounds, seed: int = 0) -> Interval:
    """The median latency of `rounds` and its bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(rounds.bursts), size=(RESAMPLES, len(rounds.bursts)))
    return _interval(rounds.median, _resampled_medians(rounds, picks, rng))


def ratio_interval(numerator: Rounds, denominator: Rounds, seed: int = 0) -> Interval:
    """median(numerator) / median(denominator), timed side by side, and its bootstrap 95% interval:
    both resample the same rounds (paired), so what slowed a round for both cancels out."""
    rng = np.random.default_rng(seed)
    paired = len(numerator.bursts) == len(denominator.bursts)
    picks = rng.integers(len(numerator.bursts), size=(RESAMPLES, len(numerator.bursts)))
    other = picks if paired else rng.integers(len(denominator.bursts), size=(RESAMPLES, len(denominator.bursts)))
    ratios = _resampled_medians(numerator, picks, rng) / _resampled_medians(denominator, other, rng)
    return _interval(numerator.median / denominator.median, ratios)
