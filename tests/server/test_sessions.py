"""The server's session registry on trio's mock clock: sessions are owned, bounded, and closed once
idle for their TTL (never while in use)."""

from __future__ import annotations

from typing import cast

import pytest
import trio

from isol8rt.engine import DockerIsol8
from isol8rt import Isol8Options
from isol8rt.server.engines import EngineSet
from isol8rt.server.sessions import SessionConflict, SessionRegistry, TooManySessions

TTL = 1800.0


class Engine:
    """What the registry asks of an engine: closing its side of a session."""

    def __init__(self) -> None:
        self.closed: list[str] = []
        self.options = Isol8Options()  # its memory limit counts against the owner's session memory

    async def close_session(self, session_id: str) -> bool:
        self.closed.append(session_id)
        return True


class Engines:
    """What the registry asks of the engine set: counting the sessions an engine holds."""

    def __init__(self) -> None:
        self.held = 0

    def hold_session(self, engine: object, delta: int, owner: str | None = None) -> None:
        self.held += delta


def registry(**fields) -> tuple[SessionRegistry, Engine, Engines]:
    engine, engines = Engine(), Engines()
    return SessionRegistry(cast(EngineSet, engines), ttl_s=TTL, **fields), engine, engines


def make(sessions: SessionRegistry, engine: Engine, owner: str, name: str, key: bytes = b"k"):
    return sessions.get_or_create(owner, name, cast(DockerIsol8, engine), key)


async def test_an_idle_session_is_closed_after_its_ttl_and_not_before(autojump_clock):
    sessions, engine, engines = registry()
    record = make(sessions, engine, "alice", "main")
    assert engines.held == 1
    await trio.sleep(TTL - 1)
    assert await sessions.prune() == 0 and sessions.find("alice", "main") is record
    await trio.sleep(2)
    assert await sessions.prune() == 1
    assert sessions.find("alice", "main") is None and engine.closed == [record.engine_sid] and engines.held == 0


async def test_use_keeps_a_session_alive_and_its_ttl_counts_from_the_end_of_the_use(autojump_clock):
    sessions, engine, _ = registry()
    record = make(sessions, engine, "alice", "main")
    async with sessions.use(record):
        await trio.sleep(2 * TTL)  # a long run: never pruned while busy
        assert await sessions.prune() == 0
    await trio.sleep(TTL - 1)
    assert await sessions.prune() == 0
    await trio.sleep(2)
    assert await sessions.prune() == 1


async def test_only_the_idle_ones_go(autojump_clock):
    sessions, engine, _ = registry()
    old = make(sessions, engine, "alice", "old")
    await trio.sleep(TTL)
    fresh = make(sessions, engine, "alice", "fresh")
    await trio.sleep(1)
    assert await sessions.prune() == 1
    assert sessions.find("alice", "old") is None and sessions.find("alice", "fresh") is fresh
    assert engine.closed == [old.engine_sid]


async def test_sessions_are_per_owner_bounded_and_keep_their_options():
    sessions, engine, _ = registry(max_per_owner=2)
    first = make(sessions, engine, "alice", "main")
    assert make(sessions, engine, "alice", "main") is first  # the same name is the same session
    assert make(sessions, engine, "bob", "main") is not first  # names never meet across owners
    make(sessions, engine, "alice", "second")
    with pytest.raises(TooManySessions):
        make(sessions, engine, "alice", "third")
    with pytest.raises(SessionConflict):
        make(sessions, engine, "alice", "main", key=b"other options")
    assert await sessions.close("alice", "main") and not await sessions.close("alice", "main")
    assert await sessions.close_all() == (2, []) and len(sessions) == 0
