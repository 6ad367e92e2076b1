"""The terminal table and the SVG chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from bench.harness.chart import chart_svg
from bench.harness.compare import compare
from bench.harness.results import COLD_PHASES, WARM_PHASES, Result, unavailable
from bench.harness.report import report_text

SVG = "{http://www.w3.org/2000/svg}"


def sample_results() -> list[Result]:
    warm = Result(id="warm.python.sequential", group="warm", label="warm python", samples=[3.0, 4.0, 9.0],
                  phase_order=list(WARM_PHASES), phases={name: [0.5, 0.6, 0.7] for name in WARM_PHASES})
    cold = Result(id="cold.python", group="cold", label="cold <python> & co", samples=[250.0, 260.0],
                  phase_order=list(COLD_PHASES), phases={**{name: [10.0, 20.0] for name in COLD_PHASES},
                                                          "remove": [50.0, 60.0]})
    base = Result(id="baseline.python.exec", group="baseline", label="exec", samples=[70.0, 80.0])
    sweep = Result(id="sweep.python.c4", group="sweep", label="4 callers", samples=[5.0, 6.0], throughput=160.0)
    return [warm, cold, base, sweep, unavailable("server.python.server", "server", "server", "not in this checkout")]


def test_report_has_the_table_phases_ratios_and_targets(make_document):
    text = report_text(make_document(sample_results()))
    assert "machine: 2 cores (test cpu), 24.0 GiB, kernel 6.1, docker 20.10" in text
    assert "WARNING" not in text
    row = next(line for line in text.splitlines() if line.startswith("warm.python.sequential"))
    assert row.split()[:8] == ["warm.python.sequential", "3", "3.00", "4.00", "8.00", "8.50", "8.90", "9.00"]
    assert "160.0" in next(line for line in text.splitlines() if line.startswith("sweep.python.c4"))
    assert "server.python.server" in text and "not available: not in this checkout" in text
    assert "cold.python: prepare 15.00 | create 15.00" in text and "(apart: remove 55.00)" in text
    assert "docker exec / isol8rt warm (python p50): 18.75x" in text
    assert "  PASS warm python hello p50 (execute()): 4.00 ms <= 5 ms" in text
    assert "  PASS python throughput, 4 concurrent callers, fast pool: 160.00 runs/s >= 150 runs/s" in text


def test_report_warns_about_a_busy_machine_and_shows_the_comparison(make_document):
    document = make_document(sample_results(), load_end=[3.0, 2.0, 1.0])
    slower = make_document([Result(id="warm.python.sequential", group="warm", label="", samples=[8.0])])
    text = report_text(slower, compare(document, slower), [])
    assert "compared with the earlier run" in text and "REGRESSION  warm.python.sequential p50 4.00 ms -> 8.00 ms" in text
    busy = report_text(document)
    assert "WARNING: the machine was busy (load 3.0 on 2 cores)" in busy


def test_chart_is_well_formed_svg_with_bars_and_curves(make_document):
    svg = chart_svg(make_document(sample_results()))
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    texts = [el.text for el in root.iter(f"{SVG}text")]
    assert "Latency CDF (log scale)" in texts
    assert "cold.python" in texts and "warm.python.sequential" in texts
    bars = [el for el in root.iter(f"{SVG}rect") if el.find(f"{SVG}title") is not None]
    assert len(bars) == len(WARM_PHASES) + len(COLD_PHASES)
    curves = list(root.iter(f"{SVG}polyline"))
    # warm, cold and the baseline (the sweep is not drawn; the server was not available).
    assert [c.find(f"{SVG}title").text for c in curves] == ["warm.python.sequential", "cold.python",
                                                              "baseline.python.exec"]


def test_chart_of_an_empty_run(make_document):
    root = ET.fromstring(chart_svg(make_document([])))
    assert [el.text for el in root.iter(f"{SVG}text")].count("not measured") == 3
