"""Persistent sessions as the server sees them: owned, bounded, and pruned when idle.

A client names its session (``sessionId``); the server keys it by (owner, that name), so two keys can
both call theirs "main" and neither can see, use or delete the other's: to anyone but its owner a
session does not exist (404). Inside the engine each session has an id of its own (random), so names
never meet there either.

A session lives in the engine of the options its first request had; a later request with other
options is refused (409) rather than silently run with the first ones. Runs in one session are
serialized by the engine. A session unused for ``ttl_s`` (and not running anything) is closed.

Sessions hold containers for as long as they live, so they have quotas: per owner (a key, or a tenant's
keys together) a number of sessions and the memory their containers may hold (the sum of their memory
limits), and a number for the whole server. A new session past any of them is refused (409).
"""

from __future__ import annotations

import builtins
import contextlib
import uuid
from typing import AsyncIterator

import msgspec
import trio

from ..engine import DockerIsol8
from ..engine.spec import parse_size
from ..errors import InvalidRequest, Isol8Error, SessionError
from ..types import SessionInfo
from ..wire.api import utc_z
from .engines import EngineSet

MAX_ID_CHARS = 256


class SessionConflict(SessionError):
    pass


class TooManySessions(SessionError):
    pass


class Record:
    __slots__ = ("owner", "id", "engine_sid", "engine", "options_key", "last_used", "busy", "running", "memory")

    def __init__(self, owner: str, session_id: str, engine: DockerIsol8, options_key: bytes) -> None:
        self.owner = owner
        self.id = session_id
        self.engine_sid = uuid.uuid4().hex
        self.engine = engine
        self.options_key = options_key
        self.last_used = trio.current_time()
        #: Requests using it now (runs and file transfers): it is not pruned meanwhile.
        self.busy = 0
        #: Runs executing in it now: what ``isActive`` says, as the reference means it.
        self.running = 0
        #: What its container may hold: its memory limit (its /sandbox is a tmpfs charged to it).
        self.memory = parse_size("memoryLimit", engine.options.memory_limit)


def check_id(session_id: object) -> str:
    if not isinstance(session_id, str) or not session_id or len(session_id) > MAX_ID_CHARS:
        raise InvalidRequest(f"sessionId: must be a non-empty string of at most {MAX_ID_CHARS} characters")
    return session_id


class SessionRegistry:
    """``max_per_owner`` sessions and ``memory_per_owner`` bytes of their containers' memory limits per
    owner; ``max_total`` sessions on the server (0: no limit, for each)."""

    def __init__(self, engines: EngineSet, *, ttl_s: float = 1800.0, max_per_owner: int = 16,
                 memory_per_owner: int = 0, max_total: int = 0) -> None:
        self._engines = engines
        self.ttl_s = ttl_s
        self.max_per_owner = max_per_owner
        self.memory_per_owner = memory_per_owner
        self.max_total = max_total
        self._records: dict[tuple[str, str], Record] = {}

    def find(self, owner: str, session_id: str) -> Record | None:
        return self._records.get((owner, session_id))

    def get_or_create(self, owner: str, session_id: str, engine: DockerIsol8, options_key: bytes) -> Record:
        """The session, made in ``engine`` if it is new. No await inside: two requests racing to make
        the same session get the same record."""
        record = self._records.get((owner, session_id))
        if record is not None:
            if record.options_key != options_key:
                raise SessionConflict(f"session {session_id!r} was started with other options; send the same "
                                      "options with every request of a session, or use a new session")
            return record
        record = Record(owner, session_id, engine, options_key)
        mine = [r for (owner_, _), r in self._records.items() if owner_ == owner]
        if self.max_per_owner and len(mine) >= self.max_per_owner:
            raise TooManySessions(f"too many sessions for this key (limit {self.max_per_owner}); delete one first")
        held = sum(r.memory for r in mine)
        if self.memory_per_owner and held + record.memory > self.memory_per_owner:
            raise TooManySessions(f"this key's sessions may hold {self.memory_per_owner} bytes of memory "
                                  f"({held} held, {record.memory} more asked); delete one first, or ask for a "
                                  "smaller memoryLimit")
        if self.max_total and len(self._records) >= self.max_total:
            raise TooManySessions(f"too many sessions on this server (limit {self.max_total}); retry later")
        self._records[(owner, session_id)] = record
        self._engines.hold_session(engine, +1, owner)
        return record

    @contextlib.asynccontextmanager
    async def use(self, record: Record, *, run: bool = False) -> AsyncIterator[Record]:
        """Mark ``record`` in use (it is not pruned meanwhile) for the body of the ``with``; ``run``: by a
        run (the session is active meanwhile)."""
        record.busy += 1
        record.running += run
        record.last_used = trio.current_time()
        try:
            yield record
        finally:
            record.busy -= 1
            record.running -= run
            record.last_used = trio.current_time()

    def list(self, owner: str) -> list[SessionInfo]:
        records = [r for (owner_, _), r in self._records.items() if owner_ == owner]
        infos: dict[str, SessionInfo] = {}
        for engine in {id(r.engine): r.engine for r in records}.values():
            infos.update((info.id, info) for info in engine.sessions())
        out = []
        for record in records:
            info = infos.get(record.engine_sid)
            if info is not None:
                # isActive: a run is executing in it now (the engine's own says its container is up).
                # The time in the reference's form, UTC with a Z.
                out.append(msgspec.structs.replace(info, id=record.id, is_active=record.running > 0,
                                                   last_accessed_at=utc_z(info.last_accessed_at)))
        return out

    async def close(self, owner: str, session_id: str) -> bool:
        record = self._records.pop((owner, session_id), None)
        if record is None:
            return False
        await self._close(record)
        return True

    async def _close(self, record: Record) -> None:
        try:
            await record.engine.close_session(record.engine_sid)
        finally:
            self._engines.hold_session(record.engine, -1, record.owner)

    async def prune(self) -> int:
        """Close every session idle for longer than the TTL; how many were closed."""
        cutoff = trio.current_time() - self.ttl_s
        stale = [key for key, r in self._records.items() if r.busy == 0 and r.last_used < cutoff]
        for key in stale:
            record = self._records.pop(key, None)
            if record is not None:
                await self._close(record)
        return len(stale)

    async def close_all(self) -> tuple[int, builtins.list[str]]:  # (list: the method above)
        """Close every session: how many were closed, and why each one that failed did."""
        records = list(self._records.values())
        self._records.clear()
        closed, errors = 0, []
        for record in records:
            try:
                await self._close(record)
                closed += 1
            except Isol8Error as exc:  # reported; the others are still closed
                errors.append(f"{record.id}: {exc}")
        return closed, errors

    def __len__(self) -> int:
        return len(self._records)
