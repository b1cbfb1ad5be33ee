"""The calibration fit: what a network costs beyond the sum of its units timed alone.

A unit timed alone pays a per-call cost that a network pays less of, and a network runs code
outside its units. `fit_calibration` fits `measured = scale * table sum + n_units * offset +
constant` over measured calibration networks, leaving out any term the networks cannot determine
or that noise rather than the machine would set.
"""

from __future__ import annotations

import math

import numpy as np

CALIBRATION_MODELS = (("scale", "offset"), ("offset",), ("scale",), ())  # the fitted terms besides the constant


def fit_calibration(sums: list[float], units: list[int], measured: list[float]) -> tuple[float, float, float]:
    """`measured = scale * sum + units * offset + constant` over the calibration networks (`sums`:
    their table sums, `units`: their unit counts), by least squares; returns (scale, offset, constant).

    Of the models with some terms left out (scale 1, offset 0) the one with the smallest
    leave-one-out relative error is kept, so a term that noise rather than the machine would set is
    not fitted (on eager torch an offset alone does as well; on ONNX Runtime the scale matters). A
    model the networks cannot determine, or whose scale is not positive (a wider unit would make a
    network faster), is never used."""
    y, s, n = np.asarray(measured, float), np.asarray(sums, float), np.asarray(units, float)
    usable = [names for names in CALIBRATION_MODELS if _solve(names, s, n, y) is not None]
    if len(y) >= 5:
        usable.sort(key=lambda names: _leave_one_out_error(names, s, n, y))  # stable: ties keep the order
    return _solve(usable[0], s, n, y)  # () always solves


def _solve(names: tuple[str, ...], s: np.ndarray, n: np.ndarray, y: np.ndarray) -> tuple[float, float, float] | None:
    """Least squares of the model with terms `names` (plus the constant): (scale, offset, constant),
    or None when the networks cannot determine it or its scale is not positive."""
    x = np.column_stack([{"scale": s, "offset": n}[c] for c in names] + [np.ones_like(y)])
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return None
    coef = np.linalg.lstsq(x, y if "scale" in names else y - s, rcond=None)[0]
    fitted = dict(zip(names, (float(c) for c in coef)))
    scale = fitted.get("scale", 1.0)
    return (scale, fitted.get("offset", 0.0), float(coef[-1])) if scale > 0 else None


def _leave_one_out_error(names: tuple[str, ...], s: np.ndarray, n: np.ndarray, y: np.ndarray) -> float:
    """Mean relative error on each network of the model fitted without it (inf if some fit fails)."""
    errors = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        fit = _solve(names, s[keep], n[keep], y[keep])
        if fit is None:
            return math.inf
        scale, offset, constant = fit
        errors.append(abs(scale * s[i] + offset * n[i] + constant - y[i]) / y[i])
    return float(np.mean(errors))
