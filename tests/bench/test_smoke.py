"""`isol8rt bench` end to end, tiny: every section with a handful of runs, on real containers (~30 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from bench.harness.results import validate_document
from bench.harness.targets import TARGETS

pytestmark = pytest.mark.docker


def test_tiny_bench_runs_every_section(tmp_path):
    out, svg = tmp_path / "bench.json", tmp_path / "bench.svg"
    done = subprocess.run(
        [sys.executable, "-m", "isol8rt", "bench", "--quick", "-n", "3", "--warmup", "1", "--cold-runs", "1",
         "--runtimes", "python,bash", "--concurrency", "1,2", "--seconds", "0.3", "--sizes", "1KiB",
         "--file-sizes", "1KiB", "--pool-size", "2", "--json", str(out), "--svg", str(svg)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = validate_document(json.loads(out.read_text()))
    results = {r["id"]: r for r in document["results"]}
    expected = ["warm.python.sequential", "warm.bash.sequential", "mode.python.staggered", "mode.python.burst8",
                "sweep.python.c1", "sweep.python.c2", "session.python", "network.python.none",
                "network.python.filtered", "output.python.1KiB", "files.in.python.1KiB", "files.out.python.1KiB",
                "cold.python", "baseline.python.exec", "baseline.python.run", "tenants.python.one_key",
                "tenants.python.four_keys", "tenants.python.one_key.c4", "tenants.python.four_keys.c4",
                "cli.run.engine", "cli.run.cold", "cli.version", "cli.floor.interpreter", "cli.floor.import"]
    for result_id in expected:
        assert results[result_id]["status"] == "ok", results[result_id]
        assert results[result_id]["latency"]["n"] >= 1, result_id
    # The server variant is measured, or says why it could not be.
    server = results["server.python.server"]
    assert server["status"] == "ok" or server["note"], server
    cold = results["cold.python"]
    assert {"create", "start", "ready", "inject", "process", "remove", "engine_start"} <= set(cold["phases"])
    assert {"acquire", "inject", "process", "release"} <= set(results["warm.python.sequential"]["phases"])
    assert results["sweep.python.c2"]["throughput"] > 0
    m = document["machine"]
    assert m["cores"] and m["memory_bytes"] and m["docker_version"] and m["git_commit"]
    # Table, targets (one line each) and the outputs' paths on stdout.
    assert "warm.python.sequential" in done.stdout
    for target in TARGETS:
        assert target.name in done.stdout
    assert ET.fromstring(svg.read_text()).tag.endswith("svg")
