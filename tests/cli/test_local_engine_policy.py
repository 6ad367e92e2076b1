"""When `isol8rt run` uses the local engine, and when it starts one (no Docker, no engine: stand-ins)."""

from __future__ import annotations

import argparse

import pytest

from isol8rt.cli import engine as engine_command
from isol8rt.cli import local_engine, run
from isol8rt.local import client
from isol8rt.local.paths import NotPrivate
from isol8rt.types import ExecutionRequest, Isol8Options


def _args(*flags: str):
    parser = argparse.ArgumentParser()
    run.register(parser.add_subparsers())
    return parser.parse_args(["run", "-e", "1", *flags])


@pytest.fixture
def refused(monkeypatch):
    def stream(path, request, options):
        raise client.NoEngine("no engine")

    monkeypatch.setattr(client, "stream", stream)
    spawned = []
    monkeypatch.setattr(engine_command, "spawn", lambda path, **kw: spawned.append((path, kw)))
    return spawned


@pytest.mark.parametrize(("mode", "starts"), [("", False), ("on", False), ("auto", True)])
def test_no_engine_means_a_cold_run_and_auto_starts_one_for_next_time(monkeypatch, refused, mode, starts):
    monkeypatch.setenv("ISOL8RT_ENGINE", mode)
    assert local_engine.run_near(ExecutionRequest(code="1"), Isol8Options(), _args()) is None
    assert bool(refused) is starts
    if starts:
        assert refused[0][1]["idle_s"] == local_engine.AUTO_IDLE_S


def test_auto_starts_none_when_one_runs_but_refuses_the_run(monkeypatch, refused):
    def stream(path, request, options):
        raise client.Refused("the engine refused the run (403): Option not allowed: image")

    monkeypatch.setattr(client, "stream", stream)
    monkeypatch.setenv("ISOL8RT_ENGINE", "auto")
    assert local_engine.run_near(ExecutionRequest(code="1"), Isol8Options(), _args()) is None
    assert refused == []


def test_off_never_asks(monkeypatch):
    monkeypatch.setenv("ISOL8RT_ENGINE", "off")
    monkeypatch.setattr(client, "stream", lambda *a: pytest.fail("asked the engine"))
    assert local_engine.run_near(ExecutionRequest(code="1"), Isol8Options(), _args()) is None


def test_a_socket_that_is_not_private_is_said_in_one_line_and_the_run_is_cold(monkeypatch, capsys):
    def stream(path, request, options):
        raise NotPrivate("socket /x belongs to uid 5, not to you (uid 0): not used")

    monkeypatch.setattr(client, "stream", stream)
    assert local_engine.run_near(ExecutionRequest(code="1"), Isol8Options(), _args()) is None
    assert capsys.readouterr().err == "isol8rt: socket /x belongs to uid 5, not to you (uid 0): not used\n"


@pytest.mark.parametrize("flags", [["--persistent"], ["--session", "s"], ["--persist"], ["--debug"],
                                   ["--host", "http://h:1"]])
def test_runs_that_are_always_made_here_never_ask(monkeypatch, flags):
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(local_engine, "run_near", lambda *a: pytest.fail("asked the engine"))
    monkeypatch.setattr(run, "_run", lambda *a: pytest.fail("ran"))

    class Ran(Exception):
        pass

    def cold(*a):
        raise Ran()

    import trio

    monkeypatch.setattr(trio, "run", cold)
    with pytest.raises(Ran):
        run._handle(_args(*flags))


def test_auto_that_cannot_start_an_engine_says_so_and_runs_here(monkeypatch, capsys):
    def stream(path, request, options):
        raise client.NoEngine("no engine")

    def spawn(path, **kw):
        raise NotPrivate("directory /x has mode 0755, not 0700: not used")

    monkeypatch.setattr(client, "stream", stream)
    monkeypatch.setattr(engine_command, "spawn", spawn)
    monkeypatch.setenv("ISOL8RT_ENGINE", "auto")
    assert local_engine.run_near(ExecutionRequest(code="1"), Isol8Options(), _args()) is None
    assert capsys.readouterr().err.endswith("could not start a local engine at "
                                            f"{local_engine.default_socket()}: directory /x has mode 0755, not 0700: "
                                            "not used\n")
