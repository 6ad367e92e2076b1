"""What a face drives: a local :class:`~isol8rt.DockerIsol8` or a server through :class:`~isol8rt.RemoteIsol8`.

Both are trio engines with the same calls (``execute``, ``execute_stream``, ``put_file``, ``get_file``,
``close_session``, ``start``, ``stop``), so the portal and the faces run either unchanged. The two places
where they differ are here: the stdin-and-signals handle of an interactive run (a RunControl speaks to the
local agent, a RemoteControl over the server's WebSocket), and the session listing (the local engine
knows its sessions, a server is asked).
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, Union

import msgspec

from ..client import RemoteControl, RemoteIsol8
from ..engine import DockerIsol8, RunControl
from ..types import ExecutionRequest, Isol8Options, SessionInfo, StreamEvent
from .shortcuts import OptionFields, make_options

#: Either engine a face can drive.
Engine = Union[DockerIsol8, RemoteIsol8]
Control = Union[RunControl, RemoteControl]


def make_engine(options: Isol8Options | None, engine: Engine | None, fields: OptionFields, *,
                remote: str | None = None, api_key: str | None = None) -> Engine:
    """The engine a face drives: the one given (not started yet); a RemoteIsol8 for ``remote`` (a server's
    URL), sending ``options`` or the option keywords with every request; else a local engine."""
    if engine is not None:
        if options is not None or fields or remote is not None:
            raise TypeError("pass an engine, or options (with remote=...), not both")
        if not isinstance(engine, (DockerIsol8, RemoteIsol8)):
            raise TypeError(f"engine: expected a DockerIsol8 or RemoteIsol8, not {type(engine).__name__}")
        return engine
    if remote is not None:
        return RemoteIsol8(remote, api_key, options=_wire_options(options, fields))
    if api_key is not None:
        raise TypeError("api_key is for a server: give its URL as remote=...")
    return DockerIsol8(make_options(options, fields))


def _wire_options(options: Isol8Options | None, fields: OptionFields) -> dict[str, Any] | None:
    """The options a server is sent: only those the caller set (the server's own apply to the rest, and
    it refuses any above its limits, so sending every default would only provoke refusals)."""
    if options is None and not fields:
        return None
    checked = make_options(options, fields)  # a bad keyword fails here, as it would for a local engine
    if options is not None:
        wire: dict[str, Any] = msgspec.to_builtins(checked)
        return wire
    names = {field.name: field.encode_name for field in msgspec.structs.fields(Isol8Options)}
    return {names[name]: msgspec.to_builtins(getattr(checked, name)) for name in fields}


def new_control(engine: Engine) -> Control:
    """The stdin-and-signals handle for an interactive run on ``engine``."""
    return RemoteControl() if isinstance(engine, RemoteIsol8) else RunControl()


def open_stream(engine: Engine, request: ExecutionRequest, session_id: str | None,
                control: Control | None) -> AsyncGenerator[StreamEvent, None]:
    """``engine.execute_stream`` with a control made by :func:`new_control` for that engine."""
    if isinstance(engine, RemoteIsol8):
        assert control is None or isinstance(control, RemoteControl)
        return engine.execute_stream(request, session_id=session_id, control=control)
    assert control is None or isinstance(control, RunControl)
    return engine.execute_stream(request, session_id=session_id, control=control)


async def list_sessions(engine: Engine) -> list[SessionInfo]:
    """The engine's persistent sessions (a server's for this key)."""
    if isinstance(engine, RemoteIsol8):
        return await engine.list_sessions()
    return engine.sessions()
