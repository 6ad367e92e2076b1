"""The realistic section's pieces, without Docker: its workloads' data and checks, the rows it gives without a
data image."""

from __future__ import annotations

import csv
import io

from bench.harness import realistic
from bench.harness.results import Result, unavailable
from bench.harness.settings import SECTIONS, Settings, quick
from isol8rt import ExecutionResult

PNG = b"\x89PNG\r\n\x1a\n..."


def _result(stdout: str = "", images=None, exit_code: int = 0) -> ExecutionResult:
    return ExecutionResult(stdout=stdout, stderr="", exit_code=exit_code, duration_ms=1, truncated=False,
                           execution_id="x", runtime="python", timestamp="t", images=images)


def test_the_csv_has_100k_rows_in_20_groups():
    rows = list(csv.DictReader(io.StringIO(realistic.csv_data().decode())))
    assert len(rows) == realistic.CSV_ROWS and len({row["group"] for row in rows}) == 20


def test_each_workload_checks_its_answer():
    checks = {name: check for name, _, _, check in realistic.workloads()}
    assert checks["pandas"](_result("20\n")) is None and checks["pandas"](_result("19\n"))
    assert checks["matplotlib"](_result(images=[PNG])) is None
    assert checks["matplotlib"](_result(images=None)) and checks["matplotlib"](_result(images=[PNG, PNG]))
    assert checks["text"](_result("5000 300\n")) is None and checks["text"](_result("5000 300\n", exit_code=1))
    assert [request.runtime for _, _, request, _ in realistic.workloads()] == ["python"] * 3 + ["node"]


def test_the_section_is_in_a_full_run_and_only_asked_for_in_a_quick_one():
    assert "realistic" in SECTIONS and "realistic" in Settings().sections
    assert "realistic" not in quick().sections


async def test_without_a_data_image_the_python_rows_say_how_to_get_one():
    class Client:
        async def inspect_image(self, name):
            from isol8rt.docker import NotFound

            raise NotFound(404, "no such image", "GET", "/images/x/json")

    assert await realistic.data_image(Client(), Settings()) is None
    assert await realistic.data_image(Client(), Settings(data_image="mine:data")) == "mine:data"
