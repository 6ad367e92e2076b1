"""Where the local engine's socket lives, and whether it is private to this user.

The socket is the engine's only authentication: whoever can connect to it runs code with this user's
Docker. So it lives in a directory of this user's with mode 0700 (``$XDG_RUNTIME_DIR/isol8rt``, else
``/tmp/isol8rt-<uid>``), and is itself mode 0600. A directory or socket owned by someone else, or
readable or writable by others, is refused rather than used or repaired: in a shared /tmp, another user
could have made it first (to read the programs sent, or answer them). And since a path is checked and
then connected to by name, whoever can rename an entry above it (a shared parent: ``sudo -E`` keeps the
invoking user's XDG_RUNTIME_DIR) could swap it in between: so what answers must also run as this user
(:func:`check_peer`, the kernel's word on the process that listens).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path

#: Names the socket instead of the default (for ``run``, ``serve --socket`` and ``engine``).
SOCKET_ENV = "ISOL8RT_SOCKET"
SOCKET_NAME = "engine.sock"


class NotPrivate(Exception):
    """The socket or its directory is not this user's alone: the message says which and what to do."""


def default_socket(environ=os.environ) -> Path:
    """``$ISOL8RT_SOCKET``, else ``engine.sock`` in the user's runtime directory, else in a private
    directory of /tmp."""
    named = environ.get(SOCKET_ENV)
    if named:
        return Path(named)
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and os.path.isabs(runtime_dir):
        return Path(runtime_dir) / "isol8rt" / SOCKET_NAME
    return Path("/tmp") / f"isol8rt-{os.getuid()}" / SOCKET_NAME


def pid_file(socket_path: Path) -> Path:
    """Where the engine serving ``socket_path`` writes its process id (for ``isol8rt engine stop``)."""
    return socket_path.with_name(socket_path.name + ".pid")


def log_file(socket_path: Path) -> Path:
    """Where an engine started in the background writes its log."""
    return socket_path.with_name(socket_path.name + ".log")


def _check(path: Path, info: os.stat_result, what: str, loose_bits: int, mode: str) -> None:
    if info.st_uid != os.getuid():
        raise NotPrivate(f"{what} {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}): not "
                         f"used; remove it or set ${SOCKET_ENV} to another path")
    if stat.S_IMODE(info.st_mode) & loose_bits:
        raise NotPrivate(f"{what} {path} has mode {stat.S_IMODE(info.st_mode):04o}, not {mode}: not used; "
                         f"`chmod {mode} {path}` if it is yours, or remove it")


def check_directory(directory: Path) -> None:
    """The directory is a real directory (not a link), this user's, mode 0700 or tighter, and no one else
    can rename it or anything above it (:func:`check_ancestors`)."""
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise NotPrivate(f"{directory} is not a directory: not used; remove it or set ${SOCKET_ENV}")
    _check(directory, info, "directory", 0o077, "0700")
    check_ancestors(directory)


def check_ancestors(directory: Path) -> None:
    """Every directory above ``directory`` is root's or this user's, and one others may write to is sticky
    (as /tmp is: then only an entry's owner renames it). Else someone else could swap the socket's
    directory for one of theirs after it was checked (``sudo -E`` keeps the invoking user's
    XDG_RUNTIME_DIR): a root engine would then write its pid file through their links, and a CLI would
    connect to their engine. A link on the way must be root's or this user's too."""
    me = os.getuid()
    literal = Path(os.path.abspath(directory))
    for above in literal.parents:
        link = os.lstat(above)
        if stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, me):
            raise NotPrivate(f"{above}, on the way to {directory}, is a link of uid {link.st_uid}: not used; set "
                             f"${SOCKET_ENV} to a path under directories only you (or root) can change")
    for above in Path(os.path.realpath(literal)).parents:
        info = os.stat(above)
        others_write = stat.S_IMODE(info.st_mode) & 0o022 and not info.st_mode & stat.S_ISVTX
        if info.st_uid not in (0, me) or others_write:
            whose = f"belongs to uid {info.st_uid}" if info.st_uid not in (0, me) else "is writable by others"
            raise NotPrivate(f"{above}, above {directory}, {whose}: not used (its entries could be swapped); "
                             f"set ${SOCKET_ENV} to a path under directories only you (or root) can change")


def check_socket(path: Path) -> None:
    """The socket and its directory are this user's alone (FileNotFoundError when there is none)."""
    check_directory(path.parent)
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        raise NotPrivate(f"{path} is not a socket: not used; remove it or set ${SOCKET_ENV}")
    _check(path, info, "socket", 0o177, "0600")


def check_peer(sock: socket.socket, path: Path) -> None:
    """The process listening on the connected ``sock`` runs as this user (SO_PEERCRED)."""
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    if uid != os.getuid():
        raise NotPrivate(f"the engine on {path} runs as uid {uid}, not as you (uid {os.getuid()}): not used; "
                         f"its path may have been swapped by another user: set ${SOCKET_ENV} to a path under "
                         "directories only you can change")


def make_directory(directory: Path) -> None:
    """Make the socket's directory (mode 0700) if it is missing; either way, check that it is private."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    check_directory(directory)
