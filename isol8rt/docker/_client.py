"""DockerClient: the Docker Engine API endpoints isol8rt uses, one method each.

Every ordinary request runs on a pooled keep-alive connection under the client's ``timeout``. The
long ones (build, import, wait) are not timed out; attach and exec take a fresh connection each, which
the daemon hijacks for good.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import msgspec
import trio

from ._errors import APIError, BuildError, DaemonTimeout, DockerError
from ..wire.http_client import Response, Upgraded
from ._api import JSONLines, api_error, error_message, quote_path, target
from ._models import (
    BuildEvent,
    ContainerInspect,
    ContainerSpec,
    ContainerSummary,
    Created,
    ExecInspect,
    ExecSpec,
    ExecStart,
    ImageInspect,
    ImageSummary,
    DaemonInfo,
    VersionInfo,
    WaitResult,
)
from ._endpoint import parse_docker_host
from ._transport import Connection, ConnectionPool, HijackedStream, RequestBody

T = TypeVar("T")

#: How many lines of build output a BuildError carries.
BUILD_LOG_LINES = 40
_FILE_CHUNK = 64 * 1024

_encode = msgspec.json.Encoder().encode
_ANY = msgspec.json.Decoder()
_VERSION = msgspec.json.Decoder(VersionInfo)
_INFO = msgspec.json.Decoder(DaemonInfo)
_CREATED = msgspec.json.Decoder(Created)
_CONTAINER = msgspec.json.Decoder(ContainerInspect)
_CONTAINERS = msgspec.json.Decoder(list[ContainerSummary])
_EXEC = msgspec.json.Decoder(ExecInspect)
_WAIT = msgspec.json.Decoder(WaitResult)
_IMAGE = msgspec.json.Decoder(ImageInspect)
_IMAGES = msgspec.json.Decoder(list[ImageSummary])
_PROGRESS = msgspec.json.Decoder(BuildEvent)

_JSON = "application/json"
_TAR = "application/x-tar"

# The classic builder paints a step's stderr red with ANSI codes; a log in an error message is plain.
_ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DockerError(f"unexpected answer from the Docker daemon to {what}: {exc}") from None


def _label_filters(labels: dict[str, str | None] | None) -> list[str]:
    return [key if value is None else f"{key}={value}" for key, value in (labels or {}).items()]


class DockerClient(trio.abc.AsyncResource):
    """A client of one Docker daemon.

    ``host`` is a ``unix:///path`` or ``tcp://host:port`` URL; None means ``$DOCKER_HOST``, then
    ``unix:///var/run/docker.sock``. ``timeout`` bounds each ordinary request, connecting included;
    it does not apply to builds, imports, waits or hijacked streams.

    Use it as ``async with DockerClient() as docker:``, or call :meth:`aclose` when done.
    """

    def __init__(self, host: str | None = None, *, api_version: str = "1.41", timeout: float = 60.0) -> None:
        self._endpoint = parse_docker_host(host)
        self._prefix = f"/v{api_version}"
        self._timeout = timeout
        self._pool = ConnectionPool(self._endpoint, connect_timeout=timeout)

    async def aclose(self) -> None:
        """Close the idle connections; the client cannot be used afterwards. Safe to call twice."""
        await self._pool.aclose()

    # ----------------------------------------------------------------------------------------------
    # daemon

    async def ping(self) -> None:
        """Check the daemon answers (``GET /_ping``, unversioned so that it works whatever API
        version the daemon speaks). Raises :class:`DaemonNotRunning` when it is not there."""
        await self._call("GET", "/_ping", versioned=False)

    async def version(self) -> VersionInfo:
        return _decode(_VERSION, await self._call("GET", "/version"), "GET /version")

    async def info(self) -> DaemonInfo:
        """``GET /info``, the parts the engine reads (the OCI runtimes the daemon knows)."""
        return _decode(_INFO, await self._call("GET", "/info"), "GET /info")

    # ----------------------------------------------------------------------------------------------
    # containers

    async def create_container(self, spec: ContainerSpec, *, name: str | None = None) -> str:
        """Create a container; returns its id. :class:`Conflict` when ``name`` is taken,
        :class:`NotFound` when the image is missing (it is not pulled)."""
        data = await self._call("POST", "/containers/create", params={"name": name}, json=spec)
        return _decode(_CREATED, data, "POST /containers/create").id

    async def start_container(self, container_id: str) -> None:
        """Start a container (a container already running is left alone)."""
        await self._call("POST", f"/containers/{quote_path(container_id)}/start")

    async def kill_container(self, container_id: str, *, signal: str = "KILL") -> None:
        """Send ``signal``; :class:`Conflict` when the container is not running."""
        await self._call("POST", f"/containers/{quote_path(container_id)}/kill", params={"signal": signal})

    async def remove_container(self, container_id: str, *, force: bool = True) -> None:
        """Remove a container and its anonymous volumes; ``force`` kills it first if it runs.
        :class:`Conflict` when a removal is already in progress."""
        await self._call("DELETE", f"/containers/{quote_path(container_id)}", params={"force": force, "v": True})

    async def wait_container(self, container_id: str, *, condition: str = "not-running") -> int:
        """Wait until the container meets ``condition`` (``not-running``, ``next-exit``,
        ``removed``) and return its exit code. Never timed out: bound it with a trio cancel scope."""
        path = f"/containers/{quote_path(container_id)}/wait"
        data = await self._call("POST", path, params={"condition": condition}, timed=False)
        result = _decode(_WAIT, data, f"POST {path}")
        if result.error is not None and result.error.message:
            raise DockerError(f"waiting for container {container_id} failed: {result.error.message}")
        return result.status_code

    async def inspect_container(self, container_id: str) -> ContainerInspect:
        path = f"/containers/{quote_path(container_id)}/json"
        return _decode(_CONTAINER, await self._call("GET", path), f"GET {path}")

    async def list_containers(
        self, *, all: bool = True, labels: dict[str, str | None] | None = None
    ) -> list[ContainerSummary]:
        """Containers, stopped ones too unless ``all`` is false. ``labels`` filters:
        ``{"k": "v"}`` matches label k=v, ``{"k": None}`` any container with label k."""
        filters = {"label": _label_filters(labels)} if labels else None
        params = {"all": all, "filters": _encode(filters).decode() if filters else None}
        data = await self._call("GET", "/containers/json", params=params)
        return _decode(_CONTAINERS, data, "GET /containers/json")

    async def attach_container(
        self, container_id: str, *, stdin: bool = True, stdout: bool = True, stderr: bool = True
    ) -> HijackedStream:
        """Attach to a container's stdio, on a connection of its own.

        Attach *before* ``start_container``: output written between start and attach is lost, and an
        attach to a container that has already exited is answered (101) and then never ends. For
        :meth:`HijackedStream.send_eof` to close the container's stdin, create it with
        ``open_stdin=True, stdin_once=True``.
        """
        params = {"stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr}
        return await self._hijack(f"/containers/{quote_path(container_id)}/attach", params=params)

    async def exec_create(
        self,
        container_id: str,
        cmd: list[str],
        *,
        user: str | None = None,
        env: dict[str, str] | None = None,
        workdir: str | None = None,
        stdin: bool = False,
    ) -> str:
        """Prepare a process in a running container; returns the exec id for :meth:`exec_start`.
        ``user`` as ``"uid:gid"`` (a bare uid runs with group 0)."""
        spec = ExecSpec(
            cmd=cmd,
            attach_stdin=stdin,
            attach_stdout=True,
            attach_stderr=True,
            tty=False,
            user=user,
            env=[f"{key}={value}" for key, value in env.items()] if env is not None else None,
            working_dir=workdir,
        )
        path = f"/containers/{quote_path(container_id)}/exec"
        return _decode(_CREATED, await self._call("POST", path, json=spec), f"POST {path}").id

    async def exec_start(self, exec_id: str) -> HijackedStream:
        """Start an exec and return its stdio, on a connection of its own."""
        body = _encode(ExecStart(detach=False, tty=False))
        return await self._hijack(f"/exec/{quote_path(exec_id)}/start", body=body)

    async def exec_inspect(self, exec_id: str) -> ExecInspect:
        path = f"/exec/{quote_path(exec_id)}/json"
        return _decode(_EXEC, await self._call("GET", path), f"GET {path}")

    async def container_stats(self, container_id: str, *, one_shot: bool = False) -> dict[str, Any]:
        """One sample of the container's resource usage (the raw JSON of ``stats?stream=false``).

        The daemon takes about a second to answer a running container: it samples CPU twice to fill
        ``precpu_stats``. ``one_shot`` skips the second sample (``precpu_stats`` is then empty) and
        answers in milliseconds.
        """
        path = f"/containers/{quote_path(container_id)}/stats"
        params = {"stream": False, "one-shot": one_shot or None}
        return _decode(_ANY, await self._call("GET", path, params=params), f"GET {path}")

    # ----------------------------------------------------------------------------------------------
    # images

    async def inspect_image(self, name: str) -> ImageInspect:
        path = f"/images/{quote_path(name)}/json"
        return _decode(_IMAGE, await self._call("GET", path), f"GET {path}")

    async def list_images(
        self, *, labels: dict[str, str | None] | None = None, reference: str | None = None
    ) -> list[ImageSummary]:
        """Images, filtered by ``labels`` (as in :meth:`list_containers`) and by ``reference``
        (``repo``, ``repo:tag``, with ``*`` wildcards)."""
        filters: dict[str, list[str]] = {}
        if labels:
            filters["label"] = _label_filters(labels)
        if reference is not None:
            filters["reference"] = [reference]
        params = {"filters": _encode(filters).decode() if filters else None}
        return _decode(_IMAGES, await self._call("GET", "/images/json", params=params), "GET /images/json")

    async def remove_image(self, name: str, *, force: bool = False) -> None:
        """Untag and remove an image. :class:`Conflict` when a container uses it (unless ``force``)."""
        await self._call("DELETE", f"/images/{quote_path(name)}", params={"force": force})

    async def tag_image(self, source: str, repo: str, tag: str) -> None:
        await self._call("POST", f"/images/{quote_path(source)}/tag", params={"repo": repo, "tag": tag})

    def build_image(
        self,
        context: bytes | AsyncIterable[bytes] | Iterable[bytes],
        *,
        tag: str,
        dockerfile: str = "Dockerfile",
        buildargs: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        nocache: bool = False,
        pull: bool = False,
        network_mode: str | None = None,
    ) -> BuildStream:
        """Build an image with the daemon's classic builder from a tar ``context`` (see
        :func:`tar_stream`), streamed to the daemon as it is produced.

        Returns a :class:`BuildStream` to iterate: the build starts with the first iteration. Not
        timed out. Intermediate containers are removed, even after a failed step.
        """
        params = {
            "t": tag,
            "dockerfile": dockerfile,
            "buildargs": _encode(buildargs).decode() if buildargs else None,
            "labels": _encode(labels).decode() if labels else None,
            "nocache": nocache or None,
            "pull": pull or None,
            "networkmode": network_mode,
            "rm": True,
            "forcerm": True,
            # 1 is the classic builder; BuildKit ("2") needs a session this client does not speak.
            "version": "1",
        }
        return BuildStream(self._pool, target(self._prefix, "/build", params), context)

    async def import_image(
        self,
        source: bytes | AsyncIterable[bytes] | Iterable[bytes] | os.PathLike[str],
        *,
        repo: str,
        tag: str,
        changes: Iterable[str] = (),
    ) -> str:
        """Create an image from a tar of a root filesystem (``docker import``); returns its id.

        ``changes`` are Dockerfile instructions applied to it (``"CMD [\\"/bin/sh\\"]"``,
        ``"ENV A=b"``). A path is read in chunks while it is sent. Not timed out.
        """
        params = {"fromSrc": "-", "repo": repo, "tag": tag, "changes": list(changes) or None}
        if isinstance(source, os.PathLike):
            async with await trio.open_file(source, "rb") as file:
                events = await self._progress("/images/create", params, body=_FileChunks(file))
        else:
            events = await self._progress("/images/create", params, body=source)
        for event in reversed(events):
            if event.status and event.status.startswith("sha256:"):
                return event.status
        raise DockerError("the Docker daemon imported an image but did not report its id")

    async def pull_image(self, name: str, tag: str) -> None:
        """Pull ``name:tag`` from its registry. Only the daemon's first answer is timed out; an
        unreachable registry fails fast with :class:`APIError`."""
        await self._progress("/images/create", {"fromImage": name, "tag": tag}, timed_head=True)

    # ----------------------------------------------------------------------------------------------
    # plumbing

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, object] | None = None,
        json: msgspec.Struct | None = None,
        versioned: bool = True,
        timed: bool = True,
    ) -> bytes:
        """One request with a small answer: the answer's body, or the APIError for its status."""
        url = target(self._prefix if versioned else "", path, params)
        body = _encode(json) if json is not None else None
        with self._deadline(method, path) if timed else nullcontext():
            async with self._pool.connection() as conn:
                head = await conn.request(method, url, body=body, content_type=_JSON if body is not None else None)
                head = _final(head, method, path)
                data = await conn.body()
        if head.status >= 400:
            raise api_error(head.status, head.reason, data, method, path)
        return data

    async def _progress(
        self, path: str, params: dict[str, object], *, body: RequestBody = None, timed_head: bool = False
    ) -> list[BuildEvent]:
        """A POST answered by a stream of progress messages (import, pull): all its messages, or the
        APIError for the first one that reports an error."""
        url = target(self._prefix, path, params)
        async with self._pool.connection() as conn:
            with self._deadline("POST", path) if timed_head else nullcontext():
                head = await conn.request("POST", url, body=body, content_type=_TAR if body is not None else None)
            head = _final(head, "POST", path)
            if head.status >= 400:
                raise api_error(head.status, head.reason, await conn.body(), "POST", path)
            events = [_decode(_PROGRESS, line, f"POST {path}") for line in await _read_lines(conn)]
        for event in events:
            if (message := event.error_message) is not None:
                raise APIError(head.status, message, "POST", path)
        return events

    async def _hijack(
        self, path: str, *, params: dict[str, object] | None = None, body: bytes | None = None
    ) -> HijackedStream:
        conn = await self._pool.open()
        try:
            with self._deadline("POST", path):
                head = await conn.request(
                    "POST",
                    target(self._prefix, path, params),
                    body=body,
                    content_type=_JSON if body is not None else None,
                    upgrade=True,
                )
                if isinstance(head, Upgraded):
                    return HijackedStream(conn.link, head.trailing)
                data = await conn.body()
        except BaseException:
            conn.close()
            raise
        conn.close()
        if head.status >= 400:
            raise api_error(head.status, head.reason, data, "POST", path)
        raise DockerError(f"the Docker daemon answered POST {path} with {head.status} instead of a raw stream")

    @contextmanager
    def _deadline(self, method: str, path: str) -> Iterator[None]:
        try:
            with trio.fail_after(self._timeout):
                yield
        except trio.TooSlowError:
            raise DaemonTimeout(
                f"the Docker daemon did not answer {method} {path} within {self._timeout:g} s"
            ) from None


class BuildStream(trio.abc.AsyncResource, AsyncIterator[BuildEvent]):
    """The output of one image build, as an async iterator of :class:`BuildEvent`.

    The request is sent on the first iteration. A failed step (an ``error`` message in the stream),
    or a build the daemon refuses outright, raises :class:`BuildError` with the last lines of output.

    To stop early, close it: ``async with docker.build_image(...) as events: async for event in
    events: ...`` or ``await events.aclose()``. Closing drops the connection, which makes the daemon
    cancel the build.
    """

    def __init__(self, pool: ConnectionPool, url: str, context: RequestBody) -> None:
        self._pool = pool
        self._url = url
        self._context = context
        self._conn: Connection | None = None
        self._lines = JSONLines()
        self._pending: deque[BuildEvent] = deque()
        self._log: deque[str] = deque(maxlen=BUILD_LOG_LINES)
        self._partial_line = ""
        self._done = False

    def __aiter__(self) -> BuildStream:
        return self

    async def __anext__(self) -> BuildEvent:
        while not self._pending:
            if self._done:
                raise StopAsyncIteration
            try:
                await self._advance()
            except BaseException:
                await self.aclose()
                raise
        event = self._pending.popleft()
        if (message := event.error_message) is not None:
            await self.aclose()
            raise BuildError(message, self.log)
        return event

    @property
    def log(self) -> list[str]:
        """The last lines of output so far."""
        return [*self._log, self._partial_line] if self._partial_line else list(self._log)

    async def aclose(self) -> None:
        """Stop reading; if the build is still running, the daemon cancels it. Safe to call twice."""
        self._done = True
        self._pending.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        await trio.lowlevel.checkpoint()

    async def _advance(self) -> None:
        if self._conn is None:
            self._conn = await self._pool.acquire()
            head = await self._conn.request("POST", self._url, body=self._context, content_type=_TAR)
            head = _final(head, "POST", "/build")
            if head.status >= 400:
                body = await self._conn.body()
                raise BuildError(error_message(body, f"the build was refused (HTTP {head.status})"), [])
            return
        piece = await self._conn.receive_body()
        if piece is None:
            lines = self._lines.close()
            self._pool.release(self._conn)
            self._conn = None
            self._done = True
        else:
            lines = self._lines.feed(piece)
        for line in lines:
            event = _decode(_PROGRESS, line, "POST /build")
            self._record(event)
            self._pending.append(event)

    def _record(self, event: BuildEvent) -> None:
        if event.stream:
            text = event.stream
        elif event.status:
            text = event.status + "\n"
        else:
            return
        lines = (self._partial_line + _ANSI_COLOUR.sub("", text)).split("\n")
        self._partial_line = lines.pop()
        self._log.extend(line.rstrip("\r") for line in lines)


def _final(head: Response | Upgraded, method: str, path: str) -> Response:
    if isinstance(head, Upgraded):
        raise DockerError(f"the Docker daemon switched protocols on {method} {path}")
    return head


async def _read_lines(conn: Connection) -> list[bytes]:
    lines = JSONLines()
    out: list[bytes] = []
    while (piece := await conn.receive_body()) is not None:
        out.extend(lines.feed(piece))
    out.extend(lines.close())
    return out


class _FileChunks:
    """An open trio file as an async iterable of chunks (a class, not an async generator, so an
    interrupted upload leaves nothing for the garbage collector to finalize)."""

    def __init__(self, file: Any) -> None:  # trio's async file wrapper
        self._file = file

    def __aiter__(self) -> _FileChunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._file.read(_FILE_CHUNK)
        if not chunk:
            raise StopAsyncIteration
        return chunk
