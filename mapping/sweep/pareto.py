"""Pareto front (non-dominated set) of a table of objective values."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["pareto_front"]


def pareto_front(values: Sequence[Sequence[float]], goals: Sequence[str]) -> list[int]:
    """Indices of the non-dominated rows, in row order.

    Row ``a`` dominates row ``b`` when it is at least as good in every
    objective and strictly better in one ("min": smaller is better, "max":
    larger is better). Rows with a NaN objective are never on the front. Equal
    rows are all kept. O(n²) comparisons (a sweep has at most thousands of points).

    Parameters
    ----------
    values : (n, m) sequence of float
    goals : m strings, "min" or "max"
    """
    sign = [1.0 if g == "min" else -1.0 for g in goals]
    rows = [None if any(math.isnan(float(v)) for v in r) else [s * float(v) for s, v in zip(sign, r, strict=True)]
            for r in values]
    front = []
    for i, a in enumerate(rows):
        if a is None:
            continue
        dominated = any(b is not None and all(y <= x for x, y in zip(a, b, strict=True)) and any(
            y < x for x, y in zip(a, b, strict=True)) for j, b in enumerate(rows) if j != i)
        if not dominated:
            front.append(i)
    return front
