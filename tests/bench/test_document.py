"""The JSON document: its schema, the targets and the ratios computed from it."""

from __future__ import annotations

import json

import pytest

from bench.harness.results import SCHEMA, Result, SchemaError, unavailable, validate_document
from bench.harness.targets import TARGETS, format_target


def warm(runtime: str, p50: float, spread: float = 1.0) -> Result:
    return Result(id=f"warm.{runtime}.sequential", group="warm", label=f"warm {runtime}",
                  samples=[p50 - spread, p50, p50 + spread], phases={"process": [1.0, 2.0, 3.0]},
                  phase_order=["process"])


def rate_result(result_id: str, throughput: float) -> Result:
    return Result(id=result_id, group="x", label=result_id, samples=[1.0, 2.0], throughput=throughput)


def test_document_round_trips_through_json_and_validates(make_document):
    document = make_document([warm("python", 4.0), unavailable("server.python.server", "server", "server",
                                                                 "no server here")])
    again = validate_document(json.loads(json.dumps(document)))
    assert again["schema"] == SCHEMA
    python, server = again["results"]
    assert python["latency"] == {"n": 3, "min": 3.0, "p50": 4.0, "p90": 4.8, "p95": 4.9, "p99": 4.98, "max": 5.0,
                                 "mean": 4.0}
    assert python["phases"]["process"]["p50"] == 2.0
    assert python["samples"] == [3.0, 4.0, 5.0]
    assert server["status"] == "not available" and server["latency"] == {"n": 0}
    assert len(again["targets"]) == len(TARGETS)


@pytest.mark.parametrize("breakage", [
    lambda d: d.update(schema="other/1"),
    lambda d: d.pop("machine"),
    lambda d: d["machine"].pop("git_commit"),
    lambda d: d["results"][0].update(status="fine"),
    lambda d: d["results"][0]["latency"].update(p50=99.0),
    lambda d: d["results"][0]["samples"].pop(),
    lambda d: d["results"].append(dict(d["results"][0])),
    lambda d: d["targets"][0].update(status="MAYBE"),
    lambda d: d["results"][0].update(throughput="fast"),
])
def test_validation_refuses_broken_documents(make_document, breakage):
    document = json.loads(json.dumps(make_document([warm("python", 4.0)])))
    breakage(document)
    with pytest.raises(SchemaError):
        validate_document(document)


def test_targets_pass_fail_and_not_measured(make_document):
    document = make_document([
        warm("python", 4.0),  # p50 4 <= 5: PASS; p99 4.98 <= 15: PASS
        warm("bash", 3.5),  # FAIL
        rate_result("sweep.python.c4", 149.9),  # FAIL
        Result(id="network.python.none", group="network", label="", samples=[4.0]),
        Result(id="network.python.filtered", group="network", label="", samples=[5.9]),  # +1.9: PASS
        unavailable("server.python.library", "server", "", "no server in this checkout"),
        unavailable("server.python.server", "server", "", "no server in this checkout"),
    ])
    status = {t["name"]: t["status"] for t in document["targets"]}
    assert status["warm python hello p50 (execute())"] == "PASS"
    assert status["warm python hello p99 (execute())"] == "PASS"
    assert status["warm bash hello p50"] == "FAIL"
    assert status["warm node hello p50"] == "N/A"
    assert status["python throughput, 4 concurrent callers, fast pool"] == "FAIL"
    assert status["filtered network adds to warm p50 (no request made)"] == "PASS"
    server = next(t for t in document["targets"] if t["name"] == "server adds to p50 over a library call")
    assert server["status"] == "N/A" and "no server in this checkout" in server["detail"]
    lines = [format_target(t) for t in document["targets"]]
    assert lines[0].startswith("PASS warm python hello p50 (execute()): 4.00 ms <= 5 ms")
    assert lines[2].startswith("FAIL warm bash hello p50: 3.50 ms <= 3 ms")
    assert lines[3].startswith("N/A  warm node hello p50 (target <= 15 ms): not measured")


def test_server_throughput_target_is_a_share(make_document):
    document = make_document([rate_result("server.python.library.c8", 100.0),
                              rate_result("server.python.server.c8", 84.0)])
    target = next(t for t in document["targets"] if t["name"].startswith("server throughput at concurrency 8"))
    assert (target["status"], target["value"]) == ("FAIL", 0.84)
    assert format_target(target).startswith("FAIL server throughput at concurrency 8, share of the library's: "
                                            "0.84x >= 0.85x")


def test_fork_targets_are_ratios_of_the_same_run(make_document):
    document = make_document([rate_result("fork.python.default.c4", 40.0), rate_result("fork.python.fork.c4", 110.0),
                              Result(id="fork.python.hello", group="fork", label="", samples=[5.0, 5.0]),
                              Result(id="fork.python.pandas.preload", group="fork", label="", samples=[30.0, 30.0])])
    targets = {t["name"]: t for t in document["targets"]}
    throughput = targets["python throughput, 4 callers, fork server over fresh interpreters"]
    pandas = targets["pandas workload p50 with preload, over warm python hello p50"]
    assert (throughput["status"], throughput["value"]) == ("PASS", 2.75)
    assert (pandas["status"], pandas["value"]) == ("FAIL", 6.0)


def test_ratios_against_the_baselines(make_document):
    document = make_document([
        warm("python", 4.0),
        Result(id="baseline.python.exec", group="baseline", label="", samples=[80.0]),
        Result(id="baseline.python.run", group="baseline", label="", samples=[300.0]),
        Result(id="cold.python", group="cold", label="", samples=[250.0]),
    ])
    ratios = {r["id"]: r["value"] for r in document["ratios"]}
    assert ratios == {"exec_over_warm.python": 20.0, "run_over_warm.python": 75.0, "run_over_cold.python": 1.2}


def test_record_keeps_good_runs_and_counts_bad_ones():
    result = Result(id="r", group="g", label="")
    assert result.record(None, 5.0, {"process": 4.0})
    assert result.record(None, 9.0, {"process": 8.0}, keep=False)  # a warm-up run: good, not kept
    assert not result.record("exit 1, stdout ''", 7.0, {"process": 6.0})
    result.fail(RuntimeError("boom"))
    assert (result.samples, result.phases, result.errors, result.note) == ([5.0], {"process": [4.0]}, 2,
                                                                           "RuntimeError: boom")
