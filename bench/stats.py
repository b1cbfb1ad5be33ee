"""The benches' statistics: mean paired differences over seeds with a 95% t-interval, and the plateau
check of a training curve. Standard library only (no scipy here)."""

from __future__ import annotations

import math
import statistics

# two-sided 95% quantiles of Student's t (0.975), by degrees of freedom
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042}
Z975 = 1.959964
PLATEAU_FRACTION = 0.2  # the last 20% of a curve's epochs...
PLATEAU_POINTS = 0.3  # ...gain less than this many points: the training has plateaued


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom: the table, else the
    Cornish-Fisher series around the normal quantile (within 0.001 beyond 20)."""
    if df < 1:
        raise ValueError("t975: at least one degree of freedom")
    if df in T975:
        return T975[df]
    z = Z975
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


def interval(values: list[float]) -> dict:
    """Mean, std and the 95% t-interval of the mean (None with one value)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return {"values": values, "mean": mean, "std": 0.0, "ci95": None}
    std = statistics.stdev(values)
    half = t975(len(values) - 1) * std / math.sqrt(len(values))
    return {"values": values, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def paired(acc: dict[tuple[str, int], float], a: str, b: str) -> dict | None:
    """Method a minus method b over the seeds both have (`acc`: (method, seed) -> value): the seeds
    and `interval` of the per-seed differences; None when they share no seed."""
    seeds = sorted({s for m, s in acc if m == a} & {s for m, s in acc if m == b})
    if not seeds:
        return None
    return {"seeds": seeds, **interval([acc[(a, s)] - acc[(b, s)] for s in seeds])}


def plateau(curve: list[float]) -> dict:
    """Has a training curve (per-epoch accuracy, fractions) plateaued: what it gained, in points,
    over its last `PLATEAU_FRACTION` of epochs (at least one) is below `PLATEAU_POINTS`. Fewer than
    two epochs cannot show it (plateaued: false)."""
    if len(curve) < 2:
        return {"epochs": len(curve), "gain_pts": None, "plateaued": False}
    last = max(1, math.ceil(PLATEAU_FRACTION * len(curve)))
    last = min(last, len(curve) - 1)
    gain = 100 * (curve[-1] - curve[-1 - last])
    return {"epochs": len(curve), "last_epochs": last, "gain_pts": round(gain, 3), "plateaued": gain < PLATEAU_POINTS}


def plateau_record(curve: list[float]) -> dict:
    """What a cell keeps of `plateau`: the check under `plateau`, its verdict as `plateaued`."""
    check = plateau(curve)
    return {"plateau": check, "plateaued": check["plateaued"]}
