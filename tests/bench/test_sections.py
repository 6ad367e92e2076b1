"""Pieces of the runner that need no Docker: the engine hooks exist, and a missing server is reported."""

from __future__ import annotations

from bench.harness import runner, server
from bench.harness.instrument import HOOKS, TimedIsol8
from bench.harness.settings import quick
from isol8rt import DockerIsol8


def test_the_engine_still_has_the_methods_the_timing_hooks_wrap():
    # If this fails, DockerIsol8 changed: update bench/harness/instrument.py, or phases go missing.
    assert HOOKS
    assert TimedIsol8._pool_lease is not DockerIsol8._pool_lease
    assert TimedIsol8._result is not DockerIsol8._result


async def test_server_variant_without_a_server_is_not_available(monkeypatch):
    monkeypatch.setattr(server, "available", lambda: "isol8rt.server cannot be imported (ImportError: nope)")
    ctx = runner.Context(quick(), client=None, nursery=None, progress=lambda message: None)
    results = await runner.section_server(ctx)
    assert [r.id for r in results] == ["server.python.library", "server.python.server",
                                       "server.python.library.staggered", "server.python.server.staggered",
                                       "server.python.library.c8", "server.python.server.c8"]
    assert {r.status for r in results} == {"not available"}
    assert "cannot be imported" in results[0].note


async def test_a_cli_row_times_a_process_and_checks_its_output():
    import os
    import sys

    from bench.harness.cli_runs import Row
    from bench.harness.results import Result

    good = Row(Result(id="cli.x", group="cli", label="x"), [sys.executable, "-c", "print('hello')"], dict(os.environ),
               "hello\n")
    await good.once(keep=False)  # a warm-up: checked, not kept
    await good.once(keep=True)
    assert len(good.result.samples) == 1 and good.result.samples[0] > 0 and good.result.errors == 0
    bad = Row(Result(id="cli.y", group="cli", label="y"), [sys.executable, "-c", "print('no'); raise SystemExit(2)"],
              dict(os.environ), "hello\n")
    await bad.once(keep=True)
    assert bad.result.samples == [] and bad.result.errors == 1 and "exit 2" in bad.result.note
