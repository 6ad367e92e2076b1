"""Persistent mode: one container per engine, live Python and Node interpreters, bash state, files."""

from __future__ import annotations

import pytest
import trio

from isol8rt import ExecutionRequest, SessionError


async def run(engine, code, runtime="python", **kwargs):
    return await engine.execute(ExecutionRequest(code=code, runtime=runtime, **kwargs))


async def test_python_variables_persist(make_engine):
    async with make_engine(mode="persistent") as engine:
        first = await run(engine, "x = 42\ndata = [1, 2, 3]")
        assert first.exit_code == 0, first.stderr
        second = await run(engine, "print(x, sum(data))")
        assert (second.stdout, second.exit_code) == ("42 6\n", 0), second.stderr
        assert first.container_id == second.container_id
        failing = await run(engine, "raise RuntimeError('kept going')")
        assert failing.exit_code == 1 and "RuntimeError: kept going" in failing.stderr
        assert (await run(engine, "print(x)")).stdout == "42\n"


async def test_node_variables_persist(make_engine):
    async with make_engine(mode="persistent") as engine:
        first = await run(engine, "let total = 40; const add = (n) => total + n;", "node")
        assert first.exit_code == 0, first.stderr
        second = await run(engine, "console.log(add(2))", "node")
        assert (second.stdout, second.exit_code) == ("42\n", 0), second.stderr


async def test_bash_keeps_cwd_and_exports(make_engine):
    async with make_engine(mode="persistent") as engine:
        first = await run(engine, "mkdir -p /sandbox/work && cd /sandbox/work && export GREETING=hi && LOCAL=no", "bash")
        assert first.exit_code == 0, first.stderr
        second = await run(engine, 'echo "$PWD $GREETING ${LOCAL:-unset}"', "bash")
        assert second.stdout == "/sandbox/work hi unset\n", second.stderr
        third = await run(engine, 'echo "$GREETING"', "bash", env={"GREETING": "from-request"})
        assert third.stdout == "from-request\n"


async def test_files_persist_and_runtime_switch_is_refused(make_engine):
    async with make_engine(mode="persistent") as engine:
        await run(engine, "open('/sandbox/note.txt', 'w').write('kept')")
        assert (await run(engine, "print(open('/sandbox/note.txt').read())")).stdout == "kept\n"
        with pytest.raises(SessionError, match="cannot switch to node"):
            await run(engine, "console.log(1)", "node")
        assert await engine.get_file("note.txt") == b"kept"


async def test_put_and_get_file_before_the_first_run(make_engine):
    async with make_engine(mode="persistent") as engine:
        payload = bytes(range(256)) * 100
        await engine.put_file("/sandbox/in.bin", payload)
        assert await engine.get_file("in.bin") == payload
        with pytest.raises(FileNotFoundError):
            await engine.get_file("missing.txt")
        result = await run(engine, "data = open('in.bin', 'rb').read()\nprint(len(data), data[:3])")
        assert result.stdout == "25600 b'\\x00\\x01\\x02'\n", result.stderr
        await engine.put_file("out.txt", "written later")
        assert (await run(engine, "print(open('out.txt').read())")).stdout == "written later\n"


async def test_file_methods_need_persistent_mode(engine):
    with pytest.raises(SessionError, match="persistent"):
        await engine.put_file("x", b"y")


async def test_named_sessions_in_an_ephemeral_engine(engine):
    await engine.execute(ExecutionRequest(code="who = 'a'"), session_id="a")
    await engine.execute(ExecutionRequest(code="who = 'b'"), session_id="b")
    assert (await engine.execute(ExecutionRequest(code="print(who)"), session_id="a")).stdout == "a\n"
    assert (await engine.execute(ExecutionRequest(code="print(who)"), session_id="b")).stdout == "b\n"
    ephemeral = await engine.execute(ExecutionRequest(code="print('who' in globals())"))
    assert ephemeral.stdout == "False\n"
    await engine.put_file("shared.txt", "for a", session_id="a")
    assert await engine.get_file("/sandbox/shared.txt", session_id="a") == b"for a"
    listed = {info.id: info for info in engine.sessions()}
    assert set(listed) == {"a", "b"} and listed["a"].is_active and listed["a"].runtime == "python"
    assert await engine.close_session("a") is True
    assert await engine.close_session("a") is False
    assert [info.id for info in engine.sessions()] == ["b"]


async def test_a_cancelled_session_run_keeps_the_session(engine):
    await engine.execute(ExecutionRequest(code="kept = 'still here'"), session_id="s")
    with trio.move_on_after(1):
        await engine.execute(ExecutionRequest(code="import time\ntime.sleep(60)"), session_id="s")
    result = await engine.execute(ExecutionRequest(code="print(kept)"), session_id="s")
    assert result.stdout == "still here\n", result.stderr
