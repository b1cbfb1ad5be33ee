"""bench/stats.py: paired differences with a 95% t-interval on known numbers, and the plateau check."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import stats  # noqa: E402  (bench/)


def test_the_interval_of_five_values_uses_t_with_four_degrees_of_freedom() -> None:
    got = stats.interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776 * (2.5 ** 0.5) / 5 ** 0.5  # std sqrt(2.5), t(0.975, 4) = 2.776
    assert got["mean"] == 3.0 and got["std"] == pytest.approx(2.5 ** 0.5)
    assert got["ci95"] == pytest.approx([3.0 - half, 3.0 + half])
    assert stats.interval([2.0])["ci95"] is None


def test_the_paired_difference_uses_the_seeds_both_methods_have() -> None:
    acc = {("v2", 0): 91.0, ("v2", 1): 92.0, ("v2", 2): 90.5, ("u", 0): 90.0, ("u", 1): 90.0, ("u", 3): 80.0}
    got = stats.paired(acc, "v2", "u")
    assert got["seeds"] == [0, 1] and got["values"] == [1.0, 2.0] and got["mean"] == 1.5
    assert got["ci95"] == pytest.approx([1.5 - 12.706 * 0.5, 1.5 + 12.706 * 0.5])  # std 1/sqrt(2), n 2
    assert stats.paired(acc, "v2", "missing") is None


@pytest.mark.parametrize(("df", "quantile"), [(4, 2.776), (25, 2.060), (40, 2.021), (60, 2.000), (120, 1.980)])
def test_t_quantiles_beyond_the_table_follow_the_series(df: int, quantile: float) -> None:
    assert stats.t975(df) == pytest.approx(quantile, abs=0.001)


def test_a_curve_has_plateaued_when_its_last_fifth_gains_under_three_tenths_of_a_point() -> None:
    rising = [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.89, 0.895, 0.898, 0.905]  # last 2 of 10 epochs: +1.0 point
    flat = [0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.89, 0.900, 0.901, 0.902]  # +0.2 point
    assert stats.plateau(rising) == {"epochs": 10, "last_epochs": 2, "gain_pts": 1.0, "plateaued": False}
    assert stats.plateau(flat)["plateaued"] is True and stats.plateau(flat)["gain_pts"] == pytest.approx(0.2)
    assert stats.plateau([0.5, 0.9])["last_epochs"] == 1  # at least one epoch
    assert stats.plateau([0.9])["plateaued"] is False  # one epoch cannot show it
    assert stats.plateau_record(flat) == {"plateau": stats.plateau(flat), "plateaued": True}
