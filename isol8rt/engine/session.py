"""Persistent mode: one container that keeps its files, and for Python and Node a live interpreter, from
run to run.

The container is made by the first run, whose runtime the session then keeps. Files put before that run
are staged here and written into the container before anything else happens in it, so ``put_file`` works
from the start without guessing which runtime's image to start.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import AsyncIterator, Awaitable, Callable

import trio

from ..agent import files as agent_files
from ..agent import protocol
from ..errors import InvalidRequest, SessionError
from ..runtimes import SANDBOX_DIR, Runtime, RuntimeInfo
from ..types import SessionInfo
from .container import Container

#: Staged files are held in memory until the session's container exists.
MAX_STAGED_BYTES = 64 * 1024 * 1024


class PersistentSession:
    """One persistent session inside the engine: its container (once made), its staged files, and the lock
    that lets one operation at a time into it.

    ``find_container``, when given, makes the session *detached*: its container outlives this process
    (the CLI's ``--session``), so it is looked for before one is made, and left running at close."""

    def __init__(self, session_id: str, make_container: Callable[[RuntimeInfo, str], Awaitable[Container]],
                 find_container: Callable[[], Awaitable[tuple[Container, Runtime] | None]] | None = None,
                 file_limit: int = 512 * 1024 * 1024) -> None:
        self.id = session_id
        #: The largest file put_file takes and get_file brings back (the sandbox's size, within memory).
        self.file_limit = file_limit
        self._make_container = make_container
        self._find_container = find_container
        self.detached = find_container is not None
        self.last_used = time.time()
        self.runtime: Runtime | None = None
        self.container: Container | None = None
        # Operations in one session are serialized: one container, one agent conversation at a time.
        self.lock = trio.Lock()
        self._staged: dict[str, bytes] = {}

    @contextlib.asynccontextmanager
    async def lease(self, runtime: RuntimeInfo, image: str) -> AsyncIterator[Container]:
        """The session's container, for one run of ``runtime``; made from ``image`` on first use."""
        async with self.lock:
            self.last_used = time.time()
            await self._adopt()
            if self.runtime is not None and self.runtime != runtime.name:
                raise SessionError(
                    f"this persistent session runs {self.runtime}; it cannot switch to {runtime.name}. "
                    "Use another engine (or session) for another runtime."
                )
            if self.container is not None and self.container.broken:
                raise SessionError("the persistent session's container failed; its state is lost. Stop this "
                                   "engine and start a new one.")
            if self.container is None:
                self.container = await self._make_container(runtime, image)
                self.runtime = runtime.name
                await self._write_staged()
            try:
                yield self.container
            finally:
                container = self.container
                if container is not None and container.broken and container.pending_op is not None:
                    # The caller walked away mid-run (cancelled, disconnected): end that run rather than
                    # the session, whose state is what the session is for.
                    await container.interrupt(container.pending_op, gentle=True)

    async def _adopt(self) -> None:
        """A detached session's container from an earlier process, if one is still running."""
        if self.container is None and self._find_container is not None:
            found = await self._find_container()
            if found is not None:
                self.container, self.runtime = found
                await self._write_staged()

    async def _write_staged(self) -> None:
        for path, data in list(self._staged.items()):
            await self._put(path, data)
        self._staged.clear()

    async def put_file(self, path: str, data: bytes) -> None:
        if len(data) > self.file_limit:
            raise InvalidRequest(f"{path}: {len(data)} bytes, more than fit in this sandbox ({self.file_limit} bytes)")
        async with self.lock:
            self.last_used = time.time()
            await self._adopt()
            if self.container is None:
                _check_path(path)
                if sum(map(len, self._staged.values())) + len(data) > MAX_STAGED_BYTES:
                    raise SessionError(f"more than {MAX_STAGED_BYTES} bytes of files put before the session's "
                                       "first run; run something first so the files go straight to its container")
                self._staged[path] = data
                return
            await self._put(path, data)

    async def _put(self, path: str, data: bytes) -> None:
        container = self.container
        assert container is not None  # callers put files only into a session whose container exists
        op_id = container.next_id()
        messages = [protocol.PutFile(id=op_id, path=path, data=chunk, offset=offset, last=last, ack=last)
                    for offset, chunk, last in protocol.chunks(data)]
        async for message in container.operate(messages, op_id, None):
            if isinstance(message, protocol.Failed):
                raise InvalidRequest(message.message)

    async def get_file(self, path: str) -> bytes:
        data: bytes | bytearray  # a staged file's bytes, or the container's file as it arrives
        async with self.lock:
            self.last_used = time.time()
            await self._adopt()
            if self.container is None:
                parts = _check_path(path)
                for staged_path, data in self._staged.items():
                    if agent_files.split_path(SANDBOX_DIR, staged_path) == parts:
                        return data
                raise FileNotFoundError(f"{path}: no such file")
            data = bytearray()
            op_id = self.container.next_id()
            request = protocol.GetFile(id=op_id, path=path, max_bytes=self.file_limit)
            async for message in self.container.operate([request], op_id, None):
                if isinstance(message, protocol.FileData):
                    data += message.data
                elif isinstance(message, protocol.Failed):
                    if message.kind == "not_found":
                        raise FileNotFoundError(message.message)
                    raise InvalidRequest(message.message)
            return bytes(data)

    def info(self) -> SessionInfo:
        stamp = datetime.datetime.fromtimestamp(self.last_used, datetime.timezone.utc)
        return SessionInfo(
            id=self.id,
            is_active=self.container is not None and not self.container.broken,
            last_accessed_at=stamp.isoformat(timespec="milliseconds"),
            runtime=self.runtime,
            container_id=self.container.container_id if self.container is not None else None,
        )

    async def close(self, keep: bool = False) -> None:
        """Remove the container (unless ``keep``: the persist option leaves it for inspection; a detached
        session's is left for its next process, and ends by itself when idle)."""
        if self.container is not None:
            if keep or self.detached:
                await self.container.channel.aclose()
            else:
                await self.container.discard()
        self.container = None

    async def end(self) -> None:
        """End the session for good, detached or not: its container is removed."""
        await self._adopt()
        if self.container is not None:
            await self.container.discard()
        self.container = None


def _check_path(path: str) -> list[str]:
    try:
        return agent_files.split_path(SANDBOX_DIR, path)
    except agent_files.PathRefused as exc:
        raise InvalidRequest(str(exc)) from None
