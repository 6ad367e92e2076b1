"""Percentiles, summaries and CDF points."""

from __future__ import annotations

import pytest

from bench.harness.stats import cdf_points, percentile, rate, summarize


def test_percentile_interpolates_between_closest_ranks():
    values = [10, 20, 30, 40]
    assert percentile(values, 0) == 10
    assert percentile(values, 100) == 40
    assert percentile(values, 50) == 25  # mean of the middle two
    assert percentile(values, 90) == pytest.approx(37.0)  # rank 2.7: 30 + 0.7 * 10
    assert percentile([5.0], 99) == 5.0


def test_percentile_ignores_input_order():
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(100, 0, -1)), 99) == pytest.approx(99.01)


def test_percentile_refuses_nonsense():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summary_of_1_to_100():
    summary = summarize(float(i) for i in range(1, 101))
    assert summary == {"n": 100, "min": 1.0, "p50": 50.5, "p90": 90.1, "p95": 95.05, "p99": 99.01, "max": 100.0,
                       "mean": 50.5}


def test_summary_of_nothing_is_n_zero():
    assert summarize([]) == {"n": 0}


def test_summary_rounds_to_microseconds():
    assert summarize([1.23456789])["p50"] == 1.235


def test_cdf_points_keep_both_ends_and_are_capped():
    points = cdf_points(range(1000), max_points=50)
    assert len(points) == 50
    assert points[0] == (0, 1 / 1000)
    assert points[-1] == (999, 1.0)
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in zip(points, points[1:]))
    assert cdf_points([2, 1]) == [(1, 0.5), (2, 1.0)]
    assert cdf_points([]) == []


def test_rate():
    assert rate(150, 1.5) == 100
    assert rate(3, 0) == 0.0
