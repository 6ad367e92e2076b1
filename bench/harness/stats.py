"""Statistics of latency samples: percentiles, summaries, CDF points. Pure functions, no I/O."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

#: The percentiles every summary carries (besides min and max).
PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (numpy's default):
    p0 is the minimum, p100 the maximum, p50 of an even count the mean of the middle two."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """``{"n", "min", "p50", "p90", "p95", "p99", "max", "mean"}`` of ``values`` (``{"n": 0}`` for none),
    rounded to microseconds when the values are milliseconds."""
    data = sorted(values)
    if not data:
        return {"n": 0}
    summary: dict[str, float | int] = {"n": len(data), "min": _round(data[0])}
    for q in PERCENTILES:
        summary[f"p{q}"] = _round(percentile(data, q))
    summary["max"] = _round(data[-1])
    summary["mean"] = _round(sum(data) / len(data))
    return summary


def cdf_points(values: Iterable[float], max_points: int = 200) -> list[tuple[float, float]]:
    """Points (value, fraction of samples <= value) of the empirical CDF, at most ``max_points`` of them
    (evenly spaced in rank; the minimum and the maximum are always kept)."""
    data = sorted(values)
    if not data:
        return []
    n = len(data)
    ranks: Sequence[int] = range(n)
    if n > max_points:
        ranks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [(data[i], (i + 1) / n) for i in ranks]


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


def _round(value: float) -> float:
    return round(float(value), 3)
