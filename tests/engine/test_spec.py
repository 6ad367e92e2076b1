"""The container spec's conversions of client numbers: every value is a number Docker takes, or an
InvalidRequest (a 4xx on the server), never another exception (which the server would answer with a 500)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isol8rt.engine.spec import MIN_NANO_CPUS, nano_cpus_of, parse_size
from isol8rt.errors import InvalidRequest


@pytest.mark.parametrize("cores", [-1.7976931348623157e308, -3.9e307, -1e6, -1.0, 0, 0.001, 1025, 1e6, 1e308,
                                   math.inf, -math.inf, math.nan])
def test_a_cpu_limit_out_of_range_is_refused_whatever_its_size(cores):
    with pytest.raises(InvalidRequest, match="cpuLimit"):
        nano_cpus_of(cores)


@pytest.mark.parametrize(("cores", "nano"), [(0.01, MIN_NANO_CPUS), (1, 10**9), (1.5, 1_500_000_000), (1024, 1024 * 10**9)])
def test_a_cpu_limit_in_range_is_in_nano_cpus(cores, nano):
    assert nano_cpus_of(cores) == nano


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers()))
def test_any_cpu_limit_is_nano_cpus_in_range_or_refused(cores):
    try:
        nano = nano_cpus_of(cores)
    except InvalidRequest:
        return
    assert MIN_NANO_CPUS <= nano <= 1024 * 10**9


@pytest.mark.parametrize("size", ["9" * 400 + "g", "9" * 400, 10**400, "99999999999t", 1 << 63])
def test_a_size_too_large_for_docker_is_refused(size):
    with pytest.raises(InvalidRequest, match="more than Docker can take"):
        parse_size("memoryLimit", size)


@given(st.one_of(st.integers(), st.text(max_size=500),
                 st.from_regex(r"\A[0-9]{1,400}(\.[0-9]{1,20})?[kmgtKMGT]?i?[bB]?\Z")))
def test_any_size_is_bytes_docker_takes_or_refused(size):
    try:
        value = parse_size("memoryLimit", size)
    except InvalidRequest:
        return
    assert 0 < value <= (1 << 63) - 1
