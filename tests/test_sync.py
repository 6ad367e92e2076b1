"""The plain-sync face: isol8rt.Sandbox on real containers, and its cancellation promise: an interrupted
call (Ctrl-C, a signal handler's exception, cancel_after, leaving a stream) kills the run and frees the
container before the exception moves on."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import isol8rt
from isol8rt import EngineClosed, EngineUnavailable, ExecutionRequest, InvalidRequest, SessionError
from isol8rt.sync import Sandbox

from .conftest import needs_docker
from .test_faces import assert_freed, child_sleeper, new_marker, seconds_until_dead, sleeper, wait_running


@pytest.fixture(scope="module")
@needs_docker
def sb():
    with Sandbox(pool_size=1) as sandbox:
        yield sandbox


def interrupt_when_running(marker: str, signum: int | None = signal.SIGINT) -> dict[str, object]:
    """Send this process ``signum`` (what Ctrl-C does) once the marked program runs; a real signal, so it
    interrupts the main thread's blocking wait the way a terminal's would. Notes the program's container."""
    seen: dict[str, object] = {}

    def watch() -> None:
        seen["container"] = wait_running(marker)
        seen["at"] = time.monotonic()
        if signum is not None:
            os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    seen["thread"] = thread
    return seen


def test_execute_with_a_request_text_or_keywords(sb):
    assert sb.execute(ExecutionRequest(code="print(6 * 7)")).stdout == "42\n"
    assert sb.execute("print('text')").stdout == "text\n"
    result = sb.execute(code="echo $X; exit 3", runtime="bash", env={"X": "kw"})
    assert (result.stdout, result.exit_code) == ("kw\n", 3)
    assert isol8rt.Sandbox is Sandbox


def test_engine_errors_are_raised(sb):
    with pytest.raises(InvalidRequest):
        sb.execute(code="x", runtime="cobol")  # type: ignore[typeddict-item]
    with pytest.raises(SessionError):
        sb.get_file("nothing.txt")  # ephemeral engine, no session
    with pytest.raises(TypeError):
        sb.execute(ExecutionRequest(code="1"), runtime="node")


def test_stream_yields_events_in_order(sb):
    events = list(sb.execute_stream(code="echo one; echo two >&2; echo three", runtime="bash"))
    assert [(e.type, e.data) for e in events if e.type == "stdout"] == [("stdout", "one\n"), ("stdout", "three\n")] \
        or "".join(e.data for e in events if e.type == "stdout") == "one\nthree\n"
    assert "".join(e.data for e in events if e.type == "stderr") == "two\n"
    assert (events[-1].type, events[-1].data) == ("exit", "0")


def test_interactive_stream_takes_stdin(sb):
    code = "import sys\nfor line in sys.stdin:\n    print('got', line.strip(), flush=True)"
    with sb.execute_stream(code=code, interactive=True) as run:
        assert run.write_stdin("a\n")  # before the program is even reading: the pipe keeps it
        out = ""
        for event in run:
            out += event.data if event.type == "stdout" else ""
            if out == "got a\n":
                run.write_stdin(b"b\n")
            elif out == "got a\ngot b\n":
                run.close_stdin()
        assert event.type == "exit" and event.data == "0", out
    assert run.write_stdin("late") is False
    with pytest.raises(InvalidRequest):
        sb.execute_stream("print(1)").write_stdin("x")


def test_sessions_keep_files_and_state(sb):
    with sb.session() as session:
        session.put_file("data.csv", "a,b\n1,2\n")
        assert session.execute("rows = open('data.csv').read().splitlines()").exit_code == 0
        assert session.execute("print(len(rows))").stdout == "2\n"  # the interpreter lives on
        session.execute("open('out.txt', 'w').write('done')")
        assert session.get_file("/sandbox/out.txt") == b"done"
        assert session.id in [info.id for info in sb.sessions()]
    assert session.id not in [info.id for info in sb.sessions()]
    assert sb.close_session(session.id) is False


def test_calls_from_many_threads(sb):
    results: list[str] = []

    def run(n: int) -> None:
        results.append(sb.execute(f"print({n})").stdout)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [f"{n}\n" for n in range(4)]


def test_ctrl_c_kills_the_run_and_frees_the_container(sb):
    marker = new_marker()
    seen = interrupt_when_running(marker)
    with pytest.raises(KeyboardInterrupt):
        sb.execute(sleeper(marker))
    raised_after = time.monotonic() - seen["at"]  # type: ignore[operator]
    dead, removed = assert_freed(marker, seen["container"], sb.engine)  # type: ignore[arg-type]
    assert raised_after < 1.0, (raised_after, dead, removed)
    assert sb.execute("print('next')").stdout == "next\n"


class Interrupted(Exception):
    pass


def test_a_signal_handlers_exception_cancels_a_stream(sb):
    def handler(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        marker = new_marker()
        seen = interrupt_when_running(marker, signal.SIGUSR1)
        with pytest.raises(Interrupted):
            for _ in sb.execute_stream(sleeper(marker)):
                pass
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert_freed(marker, seen["container"], sb.engine)  # type: ignore[arg-type]


def test_cancel_after_raises_timeout_error(sb):
    marker = new_marker()
    seen = interrupt_when_running(marker, None)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        sb.execute(sleeper(marker), cancel_after=1.5)
    assert 1.4 < time.monotonic() - started < 5
    seen["thread"].join()  # type: ignore[attr-defined]
    assert_freed(marker, seen["container"], sb.engine)  # type: ignore[arg-type]


def test_a_cancelled_session_run_is_killed_and_the_session_lives_on(sb):
    with sb.session() as session:
        session.execute("x = 1")
        marker = new_marker()
        seen = interrupt_when_running(marker, None)
        with pytest.raises(TimeoutError):
            session.execute(child_sleeper(marker), cancel_after=1.5)
        seen["thread"].join()  # type: ignore[attr-defined]
        assert seconds_until_dead(marker) < 1.0  # already dead when the call returned, in practice
        assert session.execute("print(x)").stdout == "1\n"


def test_leaving_a_stream_early_kills_the_run(sb):
    marker = new_marker()
    code = f"print('ready', flush=True)\n{sleeper(marker)}"
    with sb.execute_stream(code) as run:
        for event in run:
            assert event.data.startswith("ready")
            container = wait_running(marker)
            break
    assert_freed(marker, container, sb.engine)


def test_no_docker_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailable, match="Docker is not running"):
        Sandbox().start()


@pytest.mark.docker
def test_stop_ends_calls_in_flight_and_removes_everything():
    sandbox = Sandbox(pool_size=0).start()
    marker = new_marker()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sandbox.execute(sleeper(marker))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    container = wait_running(marker)
    sandbox.stop()
    thread.join(5)
    assert errors and isinstance(errors[0], EngineClosed)
    assert_freed(marker, container, sandbox.engine)
    with pytest.raises(EngineClosed):
        sandbox.execute("print(1)")
