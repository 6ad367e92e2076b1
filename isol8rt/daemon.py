"""Making sure a Docker engine answers, for development machines and CI.

A user whose Docker already runs needs none of this: when the socket answers ``/_ping`` nothing
happens. Otherwise, as root on Debian (a CI runner, a fresh VM), Debian's ``docker.io`` is installed if
needed and ``dockerd`` is started in the background, detached so it outlives ``isol8rt setup``.
Anywhere else the error says how to get Docker running. Nothing here uses the ``docker`` CLI, which may
be installed without a daemon.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import trio

from .docker import DockerClient, DockerError, parse_docker_host
from .errors import SetupError
from .images.host import apt_install, can_install_packages

DOCKERD_LOG = Path("/var/log/isol8rt-dockerd.log")
DEFAULT_SOCKET_PATH = Path("/var/run/docker.sock")
DEFAULT_SOCKET = f"unix://{DEFAULT_SOCKET_PATH}"

#: How long a started dockerd gets to answer, how often it is asked, and how long one ask may take.
START_TIMEOUT = 60.0
POLL_INTERVAL = 0.2
PING_TIMEOUT = 5.0

_INSTALL_HINT = (
    "install Docker Engine (https://docs.docker.com/engine/install/) and start it "
    "(`sudo systemctl start docker`), or run `isol8rt setup` as root on Debian to have it done"
)

# Started daemons are referenced here for the life of this process: dropping the Popen object of a
# process that still runs would make Python warn about it.
_started: list[subprocess.Popen] = []


async def ensure_daemon(
    client_factory: Callable[[], DockerClient] = DockerClient, *, progress: Callable[[str], None] = print
) -> None:
    """Return once a Docker daemon answers, starting one if this machine allows; else SetupError."""
    try:
        if await daemon_answers(client_factory):
            return
    except DockerError as exc:  # a DOCKER_HOST this client cannot speak to
        raise SetupError(str(exc)) from None
    # Only this machine's own daemon is ours to start: not one that DOCKER_HOST or a docker context names.
    try:
        endpoint = parse_docker_host()
    except DockerError as exc:
        raise SetupError(str(exc)) from None
    if endpoint.url != DEFAULT_SOCKET:
        where = f"DOCKER_HOST={endpoint.url}" if os.environ.get("DOCKER_HOST") else endpoint.where
        raise SetupError(f"the Docker daemon at {where} does not answer: start it there, or unset DOCKER_HOST "
                         "(and DOCKER_CONTEXT, or `docker context use default`)")
    if _socket_refuses_this_user():
        raise SetupError(
            f"Docker is running but this user may not use {DEFAULT_SOCKET_PATH}: add the user to the docker "
            "group (`sudo usermod -aG docker $USER`, then log in again), or run as root"
        )
    if not can_install_packages():
        raise SetupError(f"Docker is not running: {_INSTALL_HINT}")
    if _find_dockerd() is None:
        await apt_install(["docker.io"], progress=progress)
        # On a machine with systemd the package starts the daemon itself.
        if await daemon_answers(client_factory):
            return
    dockerd = _find_dockerd()
    if dockerd is None:
        raise SetupError(f"docker.io is installed but there is no dockerd on PATH: {_INSTALL_HINT}")
    progress(f"starting dockerd in the background (log: {DOCKERD_LOG})")
    process = _start_detached([dockerd], DOCKERD_LOG)
    await _wait_until_answering(client_factory, process)
    progress("dockerd is running")


def ensure_daemon_sync(
    client_factory: Callable[[], DockerClient] = DockerClient, *, progress: Callable[[str], None] = print
) -> None:
    """:func:`ensure_daemon` for callers outside trio (test fixtures, scripts)."""
    trio.run(functools.partial(ensure_daemon, client_factory, progress=progress))


async def daemon_answers(client_factory: Callable[[], DockerClient] = DockerClient) -> bool:
    """Whether the daemon answers ``/_ping`` within PING_TIMEOUT."""
    client = client_factory()
    try:
        with trio.move_on_after(PING_TIMEOUT):
            await client.ping()
            return True
        return False
    except DockerError:
        return False
    finally:
        await client.aclose()


def _find_dockerd() -> str | None:
    # Debian installs it in /usr/sbin, which a non-login root shell may not have on PATH.
    return shutil.which("dockerd", path=f"{os.environ.get('PATH', os.defpath)}:/usr/sbin:/usr/bin")


def _socket_refuses_this_user() -> bool:
    return DEFAULT_SOCKET_PATH.exists() and not os.access(DEFAULT_SOCKET_PATH, os.R_OK | os.W_OK)


def _start_detached(argv: list[str], log_path: Path) -> subprocess.Popen:
    # A new session, no terminal and no pipes to this process: the daemon outlives setup, and setup's
    # exit (or a ^C in its terminal) does not reach it.
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
        )
    _started.append(process)
    return process


async def _wait_until_answering(client_factory: Callable[[], DockerClient], process: subprocess.Popen) -> None:
    with trio.move_on_after(START_TIMEOUT):
        while not await daemon_answers(client_factory):
            if process.poll() is not None:
                raise SetupError(
                    f"dockerd exited with status {process.returncode} ({_log_tail()}): "
                    f"see {DOCKERD_LOG}, fix the cause and run `isol8rt setup` again"
                )
            await trio.sleep(POLL_INTERVAL)
        return
    raise SetupError(
        f"dockerd did not answer within {START_TIMEOUT:g} s ({_log_tail()}): see {DOCKERD_LOG}, "
        "fix the cause and run `isol8rt setup` again"
    )


def _log_tail(lines: int = 3) -> str:
    try:
        text = DOCKERD_LOG.read_text(errors="replace")
    except OSError:
        return "no log"
    tail = [line.strip() for line in text.strip().splitlines()[-lines:]]
    return " | ".join(tail) if tail else "empty log"
