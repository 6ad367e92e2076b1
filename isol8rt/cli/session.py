"""`isol8rt session list|stop`: the sessions `isol8rt run --persistent` / `--session NAME` keep running."""

from __future__ import annotations

import trio

from ..errors import SessionError
from . import SUMMARIES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "session",
        help=SUMMARIES["session"],
        description="Sessions made by `isol8rt run --persistent` (named 'default') or `--session NAME` keep "
        "their container, files and live interpreter between commands, and end by themselves when idle.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the running sessions").set_defaults(handler=_list)
    stop = actions.add_parser("stop", help="end a session and remove its container")
    stop.add_argument("name", nargs="?", default="default", help="the session (default: 'default')")
    stop.set_defaults(handler=_stop)


def _list(args) -> int:
    return trio.run(_list_sessions)


def _stop(args) -> int:
    return trio.run(_stop_session, args.name)


async def _list_sessions() -> int:
    from ..engine import DockerIsol8

    async with DockerIsol8(pool_size=0, detached_sessions=True) as engine:
        sessions = [info for info in await engine.detached_sessions() if info.id.startswith("cli-")]
    if not sessions:
        print("no sessions (start one with `isol8rt run --persistent ...`)")
        return 0
    print(f"{'NAME':24} {'RUNTIME':8} CONTAINER")
    for info in sorted(sessions, key=lambda info: info.id):
        print(f"{info.id.removeprefix('cli-'):24} {info.runtime or '-':8} {(info.container_id or '')[:12]}")
    return 0


async def _stop_session(name: str) -> int:
    from ..engine import DockerIsol8

    async with DockerIsol8(pool_size=0, detached_sessions=True) as engine:
        if not await engine.close_session(f"cli-{name}"):
            raise SessionError(f"no session named {name!r} is running (see `isol8rt session list`)")
    print(f"session {name} stopped")
    return 0
