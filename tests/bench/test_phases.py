"""Timestamps to phases: the phases of a run add up to its latency."""

from __future__ import annotations

import pytest

from bench.harness.phases import cold_phases, warm_phases
from bench.harness.results import COLD_PHASES, WARM_PHASES


def test_warm_phases_add_up_to_the_latency():
    marks = {"call": 10.000, "lease": 10.0001, "acquired": 10.0003, "result": 10.0043, "released": 10.0045,
             "return": 10.0046}
    phases = warm_phases(marks, inject_ms=0.5, process_ms=3.0)
    assert tuple(phases) == WARM_PHASES
    assert phases["acquire"] == pytest.approx(0.2)
    assert phases["collect"] == pytest.approx(4.0 - 0.5 - 3.0)
    assert sum(phases.values()) == pytest.approx(4.6)


def test_cold_phases_add_up_to_the_latency():
    marks = {"call": 0.0, "create0": 0.001, "create1": 0.021, "attach1": 0.022, "start1": 0.252, "ready": 0.262,
             "acquired": 0.2622, "result": 0.2702, "released": 0.2703, "return": 0.2704}
    phases = cold_phases(marks, inject_ms=1.0, process_ms=5.0)
    assert tuple(phases) == COLD_PHASES
    assert phases["start"] == pytest.approx(230.0)
    assert phases["ready"] == pytest.approx(10.0)
    assert phases["collect"] == pytest.approx(2.0)
    assert sum(phases.values()) == pytest.approx(270.4)


def test_missing_marks_or_exit_give_no_phases():
    assert warm_phases({"call": 0.0, "return": 1.0}, 0.1, 0.2) is None
    full = {name: 0.0 for name in ("call", "lease", "acquired", "result", "released", "return")}
    assert warm_phases(full, None, 0.2) is None
