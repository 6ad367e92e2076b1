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
