"""`isol8rt engine start|stop|status`: the local engine `isol8rt run` uses when it answers.

``start`` runs ``isol8rt serve --socket`` in the background (its own session, its log beside the socket)
and returns once it answers; ``stop`` sends it SIGTERM (it drains its runs and removes its containers)
and returns once it is gone; ``status`` says whether one answers. See :mod:`.local_engine` for when
``run`` uses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..local import client
from ..local.paths import NotPrivate, default_socket, log_file, make_directory, pid_file
from . import SUMMARIES

#: How long ``start`` waits for a new engine to answer (its first start pulls nothing, but warms a pool),
#: and ``stop`` for one to finish its runs and remove its containers.
START_WAIT_S = 120.0
STOP_WAIT_S = 30.0
_POLL_S = 0.1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "engine", help=SUMMARIES["engine"],
        description="Start, stop or look at the local engine: `isol8rt serve --socket` in the background. While "
        "one answers, `isol8rt run` sends runs there and they start warm; runs it cannot run with exactly "
        "their options run here as before.")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--socket", metavar="PATH", help="the socket (default: $ISOL8RT_SOCKET, else "
                        "$XDG_RUNTIME_DIR/isol8rt/engine.sock, else /tmp/isol8rt-UID/engine.sock)")
    parser.add_argument("--idle", type=float, default=0, metavar="S",
                        help="start: stop the engine once unused for S seconds (default 0: run until `engine stop`)")
    parser.add_argument("--config", metavar="FILE", help="start: the configuration file the engine reads "
                        "(its options are those `isol8rt run` builds from the same file)")
    parser.set_defaults(handler=_handle)


def _handle(args) -> int:
    path = Path(args.socket) if args.socket else default_socket()
    try:
        if args.action == "start":
            return _start(path, args)
        if args.action == "stop":
            return _stop(path)
        return _status(path)
    except NotPrivate as exc:
        print(f"isol8rt: {exc}", file=sys.stderr)
        return 2


def answers(path: Path) -> bool:
    try:
        client.health(path)
    except client.Refused:
        return False
    return True


def _pid(path: Path) -> int | None:
    try:
        return int(pid_file(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _status(path: Path) -> int:
    if answers(path):
        print(f"isol8rt: engine running on {path} (pid {_pid(path)})")
        return 0
    print(f"isol8rt: no engine on {path}")
    return 1


def spawn(path: Path, *, config: str | None = None, idle_s: float = 0) -> subprocess.Popen:
    """Start ``isol8rt serve --socket path`` detached: its own session, no terminal, its log beside the
    socket; it outlives this process. (A second one on the same socket exits at once: see
    :mod:`isol8rt.server.unix`.)"""
    make_directory(path.parent)
    argv = [sys.executable, "-m", "isol8rt", "serve", "--socket", str(path), "--idle-exit", f"{idle_s:g}"]
    if config:
        argv += ["--config", config]
    fd = os.open(log_file(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                                close_fds=True)
    finally:
        os.close(fd)


def _start(path: Path, args) -> int:
    if answers(path):
        print(f"isol8rt: engine already running on {path} (pid {_pid(path)})")
        return 0
    process = spawn(path, config=args.config, idle_s=args.idle)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if answers(path):
            print(f"isol8rt: engine running on {path} (pid {process.pid}); `isol8rt run` uses it")
            return 0
        if process.poll() is not None:
            print(f"isol8rt: the engine exited with status {process.returncode}: {_log_tail(path)}", file=sys.stderr)
            return 1
        time.sleep(_POLL_S)
    print(f"isol8rt: the engine did not answer within {START_WAIT_S:g} s; see {log_file(path)}", file=sys.stderr)
    return 1


def _stop(path: Path) -> int:
    pid = _pid(path)
    if pid is None or not answers(path):
        print(f"isol8rt: no engine on {path}")
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print(f"isol8rt: no engine on {path}")
        return 0
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        if not path.exists():
            print(f"isol8rt: engine on {path} stopped")
            return 0
        time.sleep(_POLL_S)
    print(f"isol8rt: the engine (pid {pid}) is still stopping after {STOP_WAIT_S:g} s", file=sys.stderr)
    return 1


def _log_tail(path: Path) -> str:
    try:
        lines = log_file(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"
