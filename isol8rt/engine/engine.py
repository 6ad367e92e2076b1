"""DockerIsol8: the engine an agent loop embeds.

A run is: validate and plan (no I/O) -> take a ready container (warm pool, or the session's) -> one round
trip to its agent -> shape the output. Containers are made, recycled and removed by the engine's own
service task, which owns a nursery for the engine's lifetime: in the caller's nursery
(``nursery.start(engine.run)``), or as a trio system task (``start()``, for callers without one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import logging
import time
import uuid
from typing import Any, AsyncGenerator, AsyncIterator, Union, cast

import msgspec
import trio

from ..agent import protocol
from ..audit import AuditLog, Caller, current_caller, record_for
from ..errors import EngineClosed, InvalidRequest, Isol8Error, SandboxError, SessionError
from .. import node
from ..runtimes import LABEL_RUNTIME, LABEL_SESSION, PROXY_PORT, RUNTIME_NAMES, RUNTIMES, Runtime, RuntimeInfo
from ..remote_code import fetch_code
from ..security import seccomp
from ..types import (
    DisplayData,
    ExecutionRequest,
    ExecutionResult,
    Isol8Options,
    Phase,
    PoolSize,
    ResourceUsage,
    SessionInfo,
    StreamEvent,
    StreamEventType,
)
from .backend import ContainerBackend, DockerBackend, SandboxSpec
from .spec import network_policy, sandbox_spec
from .netlog import network_logs
from .output import StreamText, mask
from .rich import RICH_MAX_RECORDS, RICH_OUTPUTS, parse_rich, rich_events
from .plan import ExecutionPlan, RunPlan, output_file_budget, plan_execution, prestart_spec, upload_limit_bytes
from .pool import POOL_MAX_AGE_S, Pool
from .container import Container
from .control import RunControl
from .session import PersistentSession

#: The session persistent mode uses when a call names none.
DEFAULT_SESSION = "default"

log = logging.getLogger("isol8rt.engine")

#: Audit records waiting for the writer; beyond this many, records are dropped (and that is logged).
_AUDIT_BACKLOG = 10_000

_ACQUIRE_ATTEMPTS = 3

#: What a run hands the audit writer: the request, its result, its session's id (None: ephemeral), and who
#: asked for it (as the caller's task knew it: a server sets it per request; None in plain library use).
_AuditItem = tuple[ExecutionRequest, ExecutionResult, Union[str, None], Union[Caller, None]]
#: ``start(prewarm=...)``: True, a list of runtimes, or ``{"runtimes": [...]}``.
_Prewarm = Union[bool, dict[str, list[str]], list[str]]


def _pool_size(size: int | PoolSize) -> int:
    return size.clean if isinstance(size, PoolSize) else int(size)


class _Outcome:
    """What a finished run adds up to, while its events are being streamed."""

    __slots__ = ("stdout", "stderr", "exit", "files", "failure", "truncated")

    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.exit: protocol.Exit | None = None
        self.files: dict[str, bytearray] = {}
        self.failure: str | None = None
        self.truncated = (False, False)


class DockerIsol8:
    """Runs untrusted code in Docker containers. Use as ``async with DockerIsol8(options) as engine``, or
    call :meth:`start` and :meth:`stop` (each safe to call twice).

    Raises only :mod:`isol8rt.errors` exceptions; a program's own failure (non-zero exit, timeout, OOM) is
    reported in its :class:`~isol8rt.types.ExecutionResult`.
    """

    def __init__(self, options: Isol8Options | None = None, *, backend: ContainerBackend | None = None,
                 detached_sessions: bool = False, session_idle_timeout_s: float = 1800.0,
                 max_container_age_s: float | None = None, node_id: str | None = None,
                 **option_fields: Any) -> None:
        """``detached_sessions``: persistent sessions outlive this engine (and this process): their
        containers are found again by name by the next engine, and end by themselves after
        ``session_idle_timeout_s`` without use. That is what the CLI's ``--persistent`` needs.

        ``max_container_age_s``: no pooled container is handed out older than this (the config file's
        ``cleanup.maxContainerAgeMs``); the pool's own limit, :data:`POOL_MAX_AGE_S`, applies if lower.

        ``node_id``: the node this engine's containers say they belong to (label ``isol8rt.node``; the
        host name unless given, see :mod:`isol8rt.node`): clean-up on a shared daemon touches only its own
        node's containers."""
        if options is not None and option_fields:
            raise TypeError("pass either an Isol8Options or option keywords, not both")
        self.options = options if options is not None else Isol8Options(**option_fields)
        if self.options.mode not in ("ephemeral", "persistent"):
            raise InvalidRequest(f"mode: {self.options.mode!r} must be 'ephemeral' or 'persistent'")
        if self.options.pool_strategy not in ("fast", "secure"):
            raise InvalidRequest(f"poolStrategy: {self.options.pool_strategy!r} must be 'fast' or 'secure'")
        if self.options.max_concurrent < 1:
            raise InvalidRequest("maxConcurrent: must be at least 1")
        self.engine_id = uuid.uuid4().hex[:12]
        try:
            self.node_id = node.check(node_id) if node_id is not None else node.local()
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        self._detached = detached_sessions
        self._session_idle_timeout_s = session_idle_timeout_s
        self._pool_max_age_s = min(POOL_MAX_AGE_S, max_container_age_s or POOL_MAX_AGE_S)
        self._backend = backend
        self._owns_backend = backend is None
        self._limiter = trio.Semaphore(self.options.max_concurrent)
        self._start_lock = trio.Lock()
        self._pool: Pool | None = None
        self._sessions: dict[str, PersistentSession] = {}
        self._state = "new"
        self._started = trio.Event()
        self._stop_requested = trio.Event()
        self._stopped = trio.Event()
        self._specs: dict[tuple[str, str], SandboxSpec] = {}
        #: What each image's fork server preloads (its isol8rt.preload label; None: it declares nothing).
        self._preloads: dict[str, list[str] | None] = {}
        self._filter: bytes | None = None
        self._audit_send: trio.MemorySendChannel[_AuditItem] | None = None
        self._baked: dict[tuple[str, tuple[str, ...]], str | None] = {}

    # ------------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DockerIsol8:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self, prewarm: _Prewarm = False) -> None:
        """Connect to Docker and start the engine's service task; with ``prewarm`` (True, a list of
        runtimes, or ``{"runtimes": [...]}``) fill the warm pool before returning.

        For callers without a nursery (the faces, ``async with``): the service task is a trio system task,
        which :meth:`stop` ends (as does the end of ``trio.run``). A caller with a nursery can use
        :meth:`run` instead. Raises :class:`~isol8rt.errors.EngineUnavailable` when Docker does not
        answer, :class:`~isol8rt.errors.EngineClosed` once the engine was stopped."""
        if self._state == "stopped":
            raise EngineClosed("this engine was stopped; make a new one")
        async with self._start_lock:  # a second caller waits for the first start's outcome, whatever it is
            if self._state == "new":
                await self._connect()
                trio.lowlevel.spawn_system_task(self._serve_system, name=f"isol8rt-engine-{self.engine_id}")
                await self._started.wait()  # set once the service task is ready, or failed at once (logged)
            self._check_started()
        if prewarm:
            await self._prewarm(prewarm)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the engine in the caller's nursery, as trio's structured concurrency would have it::

            async with trio.open_nursery() as nursery:
                engine = DockerIsol8(options)
                await nursery.start(engine.run)     # returns once the engine is ready, as start() does
                ...
                await engine.stop()                  # or cancel the nursery

        It serves until :meth:`stop` is called or it is cancelled, then removes every container it made.
        It raises what :meth:`start` raises before the engine is ready, and whatever stops its service
        task afterwards (nothing is only logged, as it is for :meth:`start`). ``RuntimeError`` if the
        engine was started already."""
        if self._state != "new":
            if self._state == "stopped":
                raise EngineClosed("this engine was stopped; make a new one")
            raise RuntimeError("this engine was started already (start(), or another run())")
        await self._connect()
        await self._serve(task_status)

    async def _connect(self) -> None:
        """The platform, checked: from state new to starting (back to new if it does not answer)."""
        seccomp.require_libseccomp()  # first: without it no sandbox can be made, whatever Docker says
        self._state = "starting"
        try:
            if self._backend is None:
                self._backend = DockerBackend()
            await _check_backend(self._backend)
        except BaseException:
            self._state = "new"
            raise

    async def stop(self) -> None:
        """Remove every container this engine made (pooled, checked out, persistent) and end its tasks."""
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopped"
        self._stop_requested.set()
        with trio.CancelScope(shield=True):
            await self._stopped.wait()

    async def _serve_system(self) -> None:
        # A system task must never raise: what ends it is logged (start() then reports the engine stopped).
        try:
            await self._serve()
        except BaseException as exc:  # noqa: BLE001
            if not isinstance(exc, trio.Cancelled):
                log.exception("engine service task failed")

    async def _serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The service task: it owns the engine's nursery (the pool's tasks, the audit writer) and, on the
        way out (stop(), its cancellation, or the end of trio.run), removes everything the engine made."""
        try:
            async with trio.open_nursery() as nursery:
                self._pool = Pool(self._started_backend, nursery, strategy=self.options.pool_strategy,
                                  size=_pool_size(self.options.pool_size),
                                  max_idle=max(_pool_size(self.options.pool_size), self.options.max_concurrent),
                                  max_age_s=self._pool_max_age_s)
                audit_done = trio.Event()
                if self.options.audit is not None and self.options.audit.enabled:
                    self._audit_send, receive = trio.open_memory_channel(_AUDIT_BACKLOG)
                    nursery.start_soon(self._write_audit, receive, audit_done)
                else:
                    audit_done.set()
                if self._state == "starting":  # not stopped meanwhile
                    self._state = "started"
                self._started.set()
                task_status.started()
                await self._stop_requested.wait()
                if self._audit_send is not None:
                    self._audit_send.close()  # the writer finishes what is queued, then stops
                    with trio.move_on_after(5):
                        await audit_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._state = "stopped"
            self._started.set()
            with trio.CancelScope(shield=True):
                try:
                    if self._pool is not None:
                        await self._pool.close()
                    for session in self._sessions.values():
                        await session.close(keep=self.options.persist)
                    if self._owns_backend and self._backend is not None:
                        await self._backend.aclose()
                except BaseException:  # noqa: BLE001 - the clean-up of every part is tried; a failure is logged
                    log.exception("engine clean-up failed")
            self._stopped.set()

    async def _write_audit(self, receive: trio.MemoryReceiveChannel[_AuditItem], done: trio.Event) -> None:
        assert self.options.audit is not None  # _serve starts the writer only when auditing is enabled
        audit_log = AuditLog(self.options.audit)
        try:
            async with receive:
                async for request, result, session_id, caller in receive:
                    try:
                        audit_log.write(record_for(request, result, self.options.audit, engine_id=self.engine_id,
                                                   session_id=session_id, caller=caller))
                    except OSError as exc:
                        log.error("cannot write the audit log in %s: %s", audit_log.directory, exc)
        finally:
            done.set()

    def _audit(self, request: ExecutionRequest, result: ExecutionResult, session: PersistentSession | None) -> None:
        if self._audit_send is None:
            return
        try:
            self._audit_send.send_nowait((request, result, session.id if session is not None else None,
                                          current_caller()))
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.error("audit backlog full or closed: execution %s not recorded", result.execution_id)

    def _check_started(self) -> None:
        if self._state != "started":
            if self._state == "stopped":
                raise EngineClosed("this engine was stopped")
            raise EngineClosed("call `await engine.start()` (or use `async with`) before running code")

    @property
    def _started_pool(self) -> Pool:
        """The warm pool; made by the service task before start() returns, so there once _check_started() passed."""
        assert self._pool is not None
        return self._pool

    @property
    def _started_backend(self) -> ContainerBackend:
        """The container backend (given, or made by start()); there once start() has got as far as the service task."""
        assert self._backend is not None
        return self._backend

    async def _prewarm(self, prewarm: _Prewarm) -> None:
        self._check_started()
        if self.options.mode == "persistent":
            return
        if isinstance(prewarm, dict):
            runtimes = prewarm.get("runtimes") or list(RUNTIME_NAMES)
        elif isinstance(prewarm, (list, tuple)):
            runtimes = list(prewarm)
        else:
            runtimes = list(RUNTIME_NAMES) if self.options.image is None else ["python"]
        async with trio.open_nursery() as nursery:
            for name in runtimes:
                runtime = RUNTIMES.get(name)
                if runtime is None:
                    raise InvalidRequest(f"prewarm: unknown runtime {name!r}")
                await self._learn_preload(self.options.image or runtime.image)
                spec, configure = self._container_for(runtime, self.options.image or runtime.image)
                nursery.start_soon(self._started_pool.prewarm, spec, configure)

    # ------------------------------------------------------------------------------------ running

    def _container_for(self, runtime: RuntimeInfo, image: str) -> tuple[SandboxSpec, protocol.Configure]:
        key = (runtime.name, image)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = sandbox_spec(self.options, runtime, image, self.engine_id,
                                                             self.node_id)
        prestart = prestart_spec(runtime, self.options)
        preload = self._preloads.get(image)
        if preload is None and self.options.fork_server:
            preload = []
        configure = protocol.Configure(prestart=[prestart] if prestart else [], user_filter=self._user_filter(),
                                       network=self._network_config(),
                                       shared_network=self.options.network == "host",
                                       preload=preload if runtime.name == "python" else None)
        return spec, configure

    async def _learn_preload(self, image: str) -> None:
        """Read ``image``'s preload label once (before its first container is configured)."""
        if image not in self._preloads:
            self._preloads[image] = await self._started_backend.image_preload(image)

    def _network_config(self) -> protocol.NetworkConfig | None:
        if self.options.network != "filtered":
            return None
        return protocol.NetworkConfig(proxy_port=PROXY_PORT, policy=network_policy(self.options.network_filter))

    def _user_filter(self) -> bytes:
        """The per-run seccomp filter, compiled once. Every seccomp mode keeps it, ``unconfined`` included:
        that mode lifts the container's profile, not the guard on user code (profiles/README.md)."""
        if self._filter is None:
            self._filter = seccomp.user_filter_bpf(seccomp.host_arch())
        return self._filter

    def check_request(self, request: ExecutionRequest) -> None:
        """Raise InvalidRequest if ``request`` would be refused, without running anything (a server answers
        400 before it starts streaming)."""
        if not isinstance(request, ExecutionRequest):
            raise InvalidRequest(f"expected an ExecutionRequest, got {type(request).__name__}")
        if request.code_url is None:
            plan_execution(request, self.options, session=self.options.mode == "persistent")

    async def execute(self, request: ExecutionRequest, *, session_id: str | None = None,
                      tenant: str | None = None) -> ExecutionResult:
        """Run ``request`` to its end and return everything it produced.

        With ``session_id`` the run happens in that persistent session (made on first use) whatever the
        engine's mode; in persistent mode, runs without one share the session "default".

        ``tenant`` names whose code this is, when one engine serves several callers who must never share
        a container (a server passes its caller's API key or tenant): a pooled container that ran one
        tenant's code is reused only for that tenant, or removed. Runs that leave it None are one tenant.
        """
        async with contextlib.aclosing(self._run(request, stream=False, session_id=session_id,
                                                 tenant=tenant)) as events:
            async for item in events:
                if isinstance(item, ExecutionResult):
                    return item
        raise SandboxError("the run ended without a result")  # pragma: no cover

    async def execute_stream(self, request: ExecutionRequest, *, session_id: str | None = None,
                             control: RunControl | None = None,
                             tenant: str | None = None) -> AsyncGenerator[StreamEvent, None]:
        """Run ``request``, yielding stdout/stderr text as it comes, then one ``exit`` (or ``error``) event.

        With ``control``, another task can write to the program's stdin and signal it while it runs.
        Leaving the loop early kills the run and frees its container. ``session_id`` and ``tenant`` as
        for :meth:`execute`.
        """
        async with contextlib.aclosing(self._run(request, stream=True, session_id=session_id,
                                                 control=control, tenant=tenant)) as events:
            async for item in events:
                if isinstance(item, StreamEvent):
                    yield item

    async def _run(self, request: ExecutionRequest, *, stream: bool, session_id: str | None = None,
                   control: RunControl | None = None,
                   tenant: str | None = None) -> AsyncGenerator[StreamEvent | ExecutionResult, None]:
        """The one path every run takes; yields StreamEvents (when streaming) and finally the result."""
        self._check_started()
        if not isinstance(request, ExecutionRequest):
            raise InvalidRequest(f"expected an ExecutionRequest, got {type(request).__name__}")
        session = self._session_for(session_id)
        if request.code_url is not None:
            request = await self._fetch_code(request)
        started = time.perf_counter()
        execution_id = str(uuid.uuid4())
        timestamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        persistent = session is not None
        plan = plan_execution(request, self.options, session=persistent)
        runtime = plan.runtime
        image = self.options.image or runtime.image
        session_started = persistent and cast(PersistentSession, session).container is not None  # persistent: session is set
        if plan.packages and self.options.image is None and not session_started:
            baked = await self._baked_image(runtime.name, plan.packages)
            if baked is not None:
                # Everything asked for is in that image already: nothing to install, no network needed.
                image = baked
                plan = plan_execution(request, self.options, session=persistent, baked=True)
        if plan.packages and plan.setup and self.options.network == "none":
            # pip and npm would only retry until they give up: say now what would work.
            raise InvalidRequest(
                f"installPackages: installing needs network access and this engine's network is 'none': use "
                f"network 'filtered' (or 'host'), or bake them into an image with "
                f"`isol8rt setup --{runtime.name} {','.join(plan.packages)}`")
        secrets = tuple(self.options.secrets.values())
        async with self._limiter:
            if session is not None:
                lease = session.lease(runtime, image)
            else:
                lease = self._pool_lease(runtime, image, tenant)
            async with lease as container:
                # One timeout for the whole run: setup steps (installs) spend it, the program gets the rest.
                deadline = trio.current_time() + plan.code.timeout_ms / 1000
                for setup in plan.setup:
                    setup = _within(setup, deadline)
                    outcome = _Outcome()
                    async for event in self._phase(container, setup, "setup", outcome, secrets, stream):
                        yield event
                    if outcome.failure is not None or outcome.exit is None or outcome.exit.exit_code != 0:
                        result = self._result(plan, outcome, execution_id, timestamp, started, container, secrets)
                        note = outcome.failure or f"setup failed with exit code {result.exit_code}"
                        result.stderr = f"{result.stderr}isol8rt: {note}; the program was not run\n"
                        if stream:
                            yield StreamEvent(type="error", data=note, phase="setup")
                        self._audit(request, result, session)
                        yield result
                        return
                outcome = _Outcome()
                code_run = _within(plan.code, deadline) if plan.setup else plan.code
                try:
                    async for event in self._phase(container, code_run, "code", outcome, secrets, stream, control):
                        yield event
                finally:
                    if control is not None:
                        control._end()
                result = self._result(plan, outcome, execution_id, timestamp, started, container, secrets)
        if stream:
            for event in rich_events(result):
                yield event
            if outcome.failure is not None:
                yield StreamEvent(type="error", data=outcome.failure, phase="code")
            else:
                yield StreamEvent(type="exit", data=str(result.exit_code), phase="code")
        self._audit(request, result, session)
        yield result

    async def _phase(self, container: Container, run: RunPlan, phase: Phase, outcome: _Outcome, secrets: tuple[str, ...],
                     stream: bool, control: RunControl | None = None) -> AsyncGenerator[StreamEvent, None]:
        op_id = container.next_id()
        messages = run.messages(op_id, stdin_open=control is not None)
        # The control may write stdin only once the Run is on its way: the agent drops what it gets first.
        on_sent = (lambda: control._attach(container, op_id)) if control is not None else None
        streams = {1: StreamText(run.max_output, secrets), 2: StreamText(run.max_output, secrets)}
        received = 0
        texts = {1: outcome.stdout, 2: outcome.stderr}
        names: dict[int, StreamEventType] = {1: "stdout", 2: "stderr"}
        message: Any  # a protocol.AgentMessage; told apart by type(message) below, which mypy does not follow
        async for message in container.operate(messages, op_id, run.timeout_ms / 1000, on_sent):
            kind = type(message)
            if kind is protocol.Output:
                text = streams[message.fd].feed(message.data)
                if text:
                    texts[message.fd].append(text)
                    if stream:
                        yield StreamEvent(type=names[message.fd], data=text, phase=phase)
            elif kind is protocol.FileData:
                # The agent keeps to the budget; this holds even if it did not.
                received += len(message.data)
                if received <= run.max_file_bytes:
                    outcome.files.setdefault(message.path, bytearray()).extend(message.data)
            elif kind is protocol.Exit:
                outcome.exit = message
                for path in message.file_errors:  # cut off, or refused: never handed over in part
                    outcome.files.pop(path, None)
            elif kind is protocol.Failed:
                outcome.failure = mask(message.message, secrets)
        for fd, text_stream in streams.items():
            truncated = outcome.exit is not None and (
                outcome.exit.truncated_stdout if fd == 1 else outcome.exit.truncated_stderr)
            tail = text_stream.finish(truncated)
            if tail:
                texts[fd].append(tail)
                if stream:
                    yield StreamEvent(type=names[fd], data=tail, phase=phase)
        exit = outcome.exit
        if exit is not None and phase == "code":
            note = None
            if exit.timed_out:
                note = f"isol8rt: timed out after {run.timeout_ms} ms; the process was killed\n"
            elif exit.oom_killed:
                note = f"isol8rt: out of memory: the process was killed at the {self.options.memory_limit} limit\n"
            if note:
                outcome.stderr.append(note)
                if stream:
                    yield StreamEvent(type="stderr", data=note, phase=phase)
        outcome.truncated = (streams[1].truncated, streams[2].truncated)

    def _result(self, plan: ExecutionPlan, outcome: _Outcome, execution_id: str, timestamp: str, started: float,
                container: Container, secrets: tuple[str, ...]) -> ExecutionResult:
        exit = outcome.exit
        truncated_out, truncated_err = outcome.truncated
        duration_ms = (time.perf_counter() - started) * 1000
        usage = None
        if exit is not None:
            cpu_ms = exit.usage.cpu_user_ms + exit.usage.cpu_system_ms
            usage = ResourceUsage(
                cpu_percent=round(100 * cpu_ms / exit.duration_ms, 1) if exit.duration_ms > 0 else 0.0,
                cpu_time_ms=round(cpu_ms, 3),
                memory_mb=round(exit.usage.peak_memory_kb / 1024, 2),
                peak_memory_mb=round(exit.usage.peak_memory_kb / 1024, 2),
                network_bytes_in=exit.usage.net_rx_bytes,
                network_bytes_out=exit.usage.net_tx_bytes,
            )
        stderr = "".join(outcome.stderr)
        if outcome.failure is not None:
            stderr += f"isol8rt: {outcome.failure}\n"
        images: list[bytes] = []
        displays: list[DisplayData] = []
        file_errors = dict(exit.file_errors) if exit is not None else {}
        if plan.rich:
            # The rich outputs file is the engine's, not one of the caller's output paths (rich.py). Its
            # absence is the usual case; one over the budget is said, since the caller loses figures.
            problem = file_errors.pop(RICH_OUTPUTS, None)
            if problem is not None and "limit for output files" in problem:
                stderr += f"isol8rt: figures and displayed values left out: {problem}\n"
            images, displays, left_out = parse_rich(bytes(outcome.files.pop(RICH_OUTPUTS, b"")))
            if left_out:
                stderr += (f"isol8rt: {left_out} more figures and displayed values left out (at most "
                           f"{RICH_MAX_RECORDS} a run)\n")
            displays = [DisplayData(text=mask(shown.text, secrets),
                                    html=mask(shown.html, secrets) if shown.html is not None else None)
                        for shown in displays]
        return ExecutionResult(
            stdout="".join(outcome.stdout),
            stderr=stderr,
            exit_code=exit.exit_code if exit is not None else 1,
            duration_ms=round(duration_ms, 3),
            truncated=truncated_out or truncated_err,
            truncated_stdout=truncated_out,
            truncated_stderr=truncated_err,
            execution_id=execution_id,
            runtime=plan.runtime.name,
            timestamp=timestamp,
            timed_out=bool(exit and exit.timed_out),
            oom_killed=bool(exit and exit.oom_killed),
            container_id=container.container_id,
            files=_take_files(outcome) if len(plan.code.output_paths) > plan.rich else None,
            file_errors=file_errors or None,
            resource_usage=usage,
            network_logs=network_logs(exit.network_log, secrets) if exit is not None and plan.code.log_network else None,
            images=images or None,
            displays=displays or None,
        )

    async def _fetch_code(self, request: ExecutionRequest) -> ExecutionRequest:
        """The request with its codeUrl's program fetched into ``code`` (or RemoteCodeError)."""
        assert request.code_url is not None  # the only caller checked
        if request.code is not None or request.cmd is not None:
            raise InvalidRequest("give exactly one of code, cmd and codeUrl")
        code = await fetch_code(request.code_url, self.options.remote_code, expected_sha256=request.code_hash,
                                allow_insecure=request.allow_insecure_code_url)
        return msgspec.structs.replace(request, code=code, code_url=None)

    async def _baked_image(self, runtime: str, packages: list[str]) -> str | None:
        key = (runtime, tuple(packages))
        if key not in self._baked:
            self._baked[key] = await self._started_backend.find_baked_image(runtime, packages)
        return self._baked[key]

    # ------------------------------------------------------------------------------------ leases

    @contextlib.asynccontextmanager
    async def _pool_lease(self, runtime: RuntimeInfo, image: str, tenant: str | None) -> AsyncIterator[Container]:
        await self._learn_preload(image)
        spec, configure = self._container_for(runtime, image)
        pool = self._started_pool
        for attempt in range(_ACQUIRE_ATTEMPTS):
            container = await pool.acquire(spec, configure, tenant)
            try:
                await container.settle()
                break
            except SandboxError as exc:
                log.warning("discarding a pooled container: %s", exc)
                await pool.release(container)
                if attempt == _ACQUIRE_ATTEMPTS - 1:
                    raise
        try:
            yield container
        finally:
            if self.options.persist and not container.broken:
                log.info("container %s kept for inspection (persist)", container.container_id[:12])
                await pool.keep(container)
            else:
                await pool.release(container)

    async def _make_session_container(self, session_id: str, runtime: RuntimeInfo, image: str) -> Container:
        spec, _ = self._container_for(runtime, image)
        configure = protocol.Configure(user_filter=self._user_filter(), network=self._network_config(),
                                       shared_network=self.options.network == "host")
        if self._detached:
            spec = msgspec.structs.replace(spec, labels={**spec.labels, LABEL_SESSION: session_id}, auto_remove=True)
            configure = msgspec.structs.replace(configure, idle_timeout_s=self._session_idle_timeout_s)
        return await Container.create(self._started_backend, spec, configure)

    async def _find_session_container(self, session_id: str) -> tuple[Container, Runtime] | None:
        # Reachable before start() (close_session on a detached engine): the backend may be None there, and
        # this then fails as it always has.
        backend = cast(ContainerBackend, self._backend)
        for container_id, labels in await backend.find_running({LABEL_SESSION: session_id}):
            runtime = RUNTIMES.get(labels.get(LABEL_RUNTIME, ""))
            if runtime is None:
                continue
            spec, _ = self._container_for(runtime, self.options.image or runtime.image)
            try:
                return await Container.adopt(backend, spec, container_id), runtime.name
            except SandboxError as exc:
                log.warning("could not take up session %s again: %s", session_id, exc)
        return None

    def _session_for(self, session_id: str | None) -> PersistentSession | None:
        """The persistent session a run or file operation belongs to (made on first use), or None for an
        ephemeral run."""
        if session_id is None:
            if self.options.mode != "persistent":
                return None
            session_id = DEFAULT_SESSION
        if not isinstance(session_id, str) or not session_id or len(session_id) > 256:
            raise InvalidRequest("sessionId: must be a non-empty string of at most 256 characters")
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = PersistentSession(
                session_id, functools.partial(self._make_session_container, session_id),
                functools.partial(self._find_session_container, session_id) if self._detached else None,
                file_limit=min(upload_limit_bytes(self.options), output_file_budget(self.options)))
        return session

    def sessions(self) -> list[SessionInfo]:
        """Every persistent session of this engine."""
        return [session.info() for session in self._sessions.values()]

    async def close_session(self, session_id: str) -> bool:
        """End a session and remove its container (a detached one's too); False when there was none."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            if not self._detached:
                return False
            session = self._session_for(session_id)
            assert session is not None  # _session_for makes one for any session id it is given
            self._sessions.pop(session_id, None)
            await session.end()
            return session.runtime is not None
        await session.end()
        return True

    async def detached_sessions(self) -> list[SessionInfo]:
        """The detached sessions running on this Docker host, whoever made them."""
        infos = []
        # Callable before start(): the backend may be None there, and this then fails as it always has.
        for container_id, labels in await cast(ContainerBackend, self._backend).find_running({LABEL_SESSION: None}):
            infos.append(SessionInfo(id=labels.get(LABEL_SESSION, ""), is_active=True, last_accessed_at="",
                                     # the label isol8rt put there: the runtime's name
                                     runtime=cast("Runtime | None", labels.get(LABEL_RUNTIME)),
                                     container_id=container_id))
        return infos

    # ------------------------------------------------------------------------------------ files

    async def put_file(self, path: str, content: str | bytes, *, session_id: str | None = None) -> None:
        """Write a file into a persistent session's /sandbox. Before the session's first run the file is
        staged and written into its container as soon as that exists."""
        self._check_started()
        session = self._require_session("put_file", session_id)
        if not isinstance(content, (str, bytes, bytearray, memoryview)):
            raise InvalidRequest(f"put_file: content must be str or bytes, not {type(content).__name__}")
        data = content.encode() if isinstance(content, str) else bytes(content)
        await session.put_file(path, data)

    async def get_file(self, path: str, *, session_id: str | None = None) -> bytes:
        """Read a file from a persistent session's /sandbox; FileNotFoundError if there is none."""
        self._check_started()
        return await self._require_session("get_file", session_id).get_file(path)

    def _require_session(self, what: str, session_id: str | None) -> PersistentSession:
        session = self._session_for(session_id)
        if session is None:
            raise SessionError(f"{what} needs a session: a persistent engine (mode='persistent') or a "
                               "session_id; an ephemeral run's files are gone with its container (use "
                               "files/outputPaths on the request instead)")
        return session

    # ------------------------------------------------------------------------------------ housekeeping

    @staticmethod
    async def cleanup(backend: ContainerBackend | None = None) -> dict[str, Any]:
        """Remove every container isol8rt made (by label), whichever engine made it."""
        own = backend is None
        backend = backend or DockerBackend()
        removed, failed, errors = 0, 0, []
        try:
            await _check_backend(backend)
            for container_id in await backend.list({}):
                try:
                    await backend.remove(container_id)
                    removed += 1
                except Isol8Error as exc:  # report, go on with the rest
                    failed += 1
                    errors.append(f"{container_id[:12]}: {exc}")
        finally:
            if own:
                await backend.aclose()
        return {"removed": removed, "failed": failed, "errors": errors}

    @staticmethod
    async def cleanup_images() -> dict[str, Any]:
        """Remove every image isol8rt built (by label)."""
        from .. import images

        return await images.remove_images()

    @property
    def containers(self) -> list[str]:
        """Ids of the containers this engine holds now (pooled, checked out, session)."""
        ids = list(self._pool.live) if self._pool is not None else []
        ids += [s.container.container_id for s in self._sessions.values() if s.container is not None]
        return ids


def _within(run: RunPlan, deadline: float) -> RunPlan:
    """``run`` with its timeout cut to what is left before ``deadline`` (at least 1 ms: a run whose time is
    used up still starts, and times out at once, so its result says so)."""
    left_ms = max(1, int((deadline - trio.current_time()) * 1000))
    return dataclasses.replace(run, timeout_ms=min(run.timeout_ms, left_ms))


def _take_files(outcome: _Outcome) -> dict[str, bytes]:
    """The output files as bytes, each buffer dropped as soon as it is copied: one file at a time is
    held twice (and never across an await), not all of them."""
    files = {}
    for path in list(outcome.files):
        files[path] = bytes(outcome.files.pop(path))
    return files


async def _check_backend(backend: ContainerBackend) -> None:
    """That the platform answers, for a backend that can tell (``check()``: EngineUnavailable if not)."""
    check = getattr(backend, "check", None)
    if check is not None:
        await check()
