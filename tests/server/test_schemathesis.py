"""schemathesis against GET /openapi.json: generated requests, valid and invalid, never get a 5xx.

The server runs with a tight ceiling (2 s runs) so generated programs end quickly. Two things are kept
out of the generated data on purpose: ``POST /cleanup`` (``images: true`` would delete the sandbox images
this machine's other tests use) and ``installPackages`` (a package install with no network waits on pip's
retries: slow, and not the server's path).

``options`` are generated from Isol8Options' schema like everything else, and a second pass sends
generated options alone (with a plain program), so every option field meets random values: below its
floor, above the ceiling, absurd sizes, unknown runtimes and profiles. Those must be 4xx, never 5xx,
and some must get through (a 200) or the pass proves nothing.
"""

from __future__ import annotations

import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import HealthCheck, Phase

from .conftest import MASTER

POSITIVE_EXAMPLES = 30
NEGATIVE_EXAMPLES = 10
OPTIONS_EXAMPLES = 120


def _tame(case):
    """Keep generated runs short and mostly valid enough to reach the engine: no package installs, and
    (for valid data) one program (code, or cmd) rather than a random mix the engine refuses at once."""
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
    request = case.body.get("request") if isinstance(case.body, dict) else None
    if isinstance(request, dict):
        request.pop("installPackages", None)
        request.pop("codeUrl", None)
        if isinstance(request.get("code"), str) or "cmd" not in request:
            request.pop("cmd", None)
            request.setdefault("code", "print(1)")
    return case


def test_generated_requests_get_no_server_error(spawn_server):
    server = spawn_server("--timeout", "2000", "--max-output", "65536", "--pool-size", "1", "--prewarm", "python",
                          "--key-concurrency", "0")
    document = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    failures: list[str] = []
    exercised = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) == ("POST", "/cleanup"):
            continue
        for mode, examples in ((schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
                               (schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)):
            try:
                strategy = operation.as_strategy(generation_mode=mode).map(_tame)
            except Exception:  # noqa: BLE001 - some operations have nothing to make invalid
                continue

            @hypothesis.settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=strategy)
            def probe(case) -> None:
                nonlocal exercised
                headers = {**(case.headers or {}), "Authorization": f"Bearer {MASTER}"}
                response = case.call(base_url=server.url, session=session, headers=headers, timeout=60)
                exercised += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {case.body!r:.300} -> "
                                    f"{response.status_code} {response.text[:300]}")

            try:
                probe()
            except hypothesis.errors.Unsatisfiable:
                assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing in it can be made invalid
    options_statuses = _options_pass(schema, server.url, session, failures)
    print(f"options pass: {options_statuses}")
    assert exercised > 100
    assert failures == [], "\n".join(failures[:10])
    # The options pass reached the engine with generated options, and was refused with 4xx otherwise.
    assert options_statuses.get(200, 0) >= 5, options_statuses
    assert sum(n for status, n in options_statuses.items() if 400 <= status < 500) >= 20, options_statuses
    assert server.stop() == 0


def _options_pass(schema, url: str, session, failures: list[str]) -> dict[int, int]:
    """POST /execute with a plain program and the options schemathesis generates for it (valid per
    Isol8Options' schema, so they get past decoding and meet the policy and the engine)."""
    operation = next(result.ok() for result in schema.get_all_operations()
                     if (result.ok().method.upper(), result.ok().path) == ("POST", "/execute"))
    statuses: dict[int, int] = {}

    def options_only(case):
        options = case.body.get("options") if isinstance(case.body, dict) else None
        runtime = "bash" if len(str(options)) % 2 else "python"
        case.body = {"request": {"code": "echo 1" if runtime == "bash" else "print(1)", "runtime": runtime},
                     "options": options}
        return case

    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE).map(options_only).filter(
        lambda case: isinstance(case.body["options"], dict) and case.body["options"])

    @hypothesis.settings(max_examples=OPTIONS_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=strategy)
    def probe(case) -> None:
        response = session.post(f"{url}/execute", json=case.body, headers={"Authorization": f"Bearer {MASTER}"},
                                timeout=60)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            failures.append(f"options {case.body['options']!r:.300} -> {response.status_code} {response.text[:300]}")

    probe()
    return statuses
