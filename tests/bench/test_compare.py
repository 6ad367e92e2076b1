"""--compare: regressions need both 20 % and 0.5 ms; throughput needs 20 %."""

from __future__ import annotations

from bench.harness.compare import compare, machine_differences
from bench.harness.results import Result


def doc(make_document, p50: float, *, throughput: float | None = None, acquire: float = 0.2, **machine):
    result = Result(id="warm.python.sequential", group="warm", label="", samples=[p50],
                    phases={"acquire": [acquire]}, phase_order=["acquire"], throughput=throughput)
    return make_document([result], **machine)


def test_small_absolute_changes_are_not_regressions(make_document):
    # +50 % but only +0.4 ms: jitter on a fast path.
    assert compare(doc(make_document, 0.8), doc(make_document, 1.2)) == []


def test_small_relative_changes_are_not_regressions(make_document):
    # +2 ms but only +10 %.
    assert compare(doc(make_document, 20.0), doc(make_document, 22.0)) == []


def test_a_real_regression_is_flagged(make_document):
    changes = compare(doc(make_document, 4.0), doc(make_document, 6.0))
    assert [(c.kind, c.key, c.metric) for c in changes] == [("regression", "warm.python.sequential", "p50")]
    assert changes[0].line() == "REGRESSION  warm.python.sequential p50 4.00 ms -> 6.00 ms (+50%)"


def test_improvements_and_phases(make_document):
    changes = compare(doc(make_document, 6.0, acquire=0.2), doc(make_document, 4.0, acquire=2.0))
    assert [(c.kind, c.key) for c in changes] == [("regression", "warm.python.sequential:acquire"),
                                                  ("improvement", "warm.python.sequential")]


def test_throughput_drop(make_document):
    changes = compare(doc(make_document, 4.0, throughput=200.0), doc(make_document, 4.0, throughput=150.0))
    assert [(c.kind, c.metric) for c in changes] == [("regression", "throughput")]
    assert compare(doc(make_document, 4.0, throughput=200.0), doc(make_document, 4.0, throughput=170.0)) == []


def test_results_missing_on_one_side_are_ignored(make_document):
    assert compare(make_document([]), doc(make_document, 4.0)) == []


def test_machine_differences(make_document):
    old, new = doc(make_document, 4.0), doc(make_document, 4.0, cores=8)
    assert machine_differences(old, new) == ["cores: 2 -> 8"]
