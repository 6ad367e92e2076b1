"""Files under the sandbox directory, touched on the user's behalf without ever leaving it.

Paths come from the host (a request's ``files`` and ``output_paths``) and name places that user code may
have rigged with symlinks. Every path is walked one component at a time from an open descriptor of the
sandbox root with ``O_NOFOLLOW``, so a symlink anywhere on the way is seen rather than followed. The caller
also acts as the sandbox user while doing it (see :func:`as_user`), so even a mistake here could reach no
more than user code itself could.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PathRefused(Exception):
    """A path is malformed, escapes the sandbox, or runs into a symlink or a non-regular file.

    ``kind`` is "bad_path" for a path refused as written, "not_found" for one that names nothing.
    """

    def __init__(self, message: str, kind: str = "bad_path") -> None:
        super().__init__(message)
        self.kind = kind


def split_path(root: str, path: str) -> list[str]:
    """The components of ``path`` below ``root``; ``path`` is relative to root or absolute inside it.

    Refuses what a careful person would: empty paths, NUL bytes, ``..`` anywhere, absolute paths
    outside root, and the root itself.
    """
    if not path or "\x00" in path:
        raise PathRefused(f"invalid path {path!r}: empty or contains a NUL byte")
    if path.startswith("/"):
        prefix = root.rstrip("/") + "/"
        if not path.startswith(prefix):
            raise PathRefused(f"path {path!r} is outside {root}")
        path = path[len(prefix) :]
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"path {path!r} contains '..'")
    if not parts:
        raise PathRefused(f"path {path!r} names the sandbox directory itself, not a file")
    return parts


@contextlib.contextmanager
def as_user(uid: int, gid: int):
    """Act with the sandbox user's file permissions (effective ids), then return to our own.

    Only the effective ids change: the real and saved ids stay ours, so the way back is always open,
    and the sandbox user still cannot signal or trace this process meanwhile.
    """
    if os.geteuid() == uid:
        yield
        return
    os.setegid(gid)
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _open_parent(root_fd: int, parts: list[str], create: bool) -> int:
    """A descriptor of the directory holding ``parts[-1]``, walked without following symlinks."""
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            try:
                next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise PathRefused(f"{'/'.join(parts)}: no such file", "not_found") from None
                os.mkdir(name, 0o755, dir_fd=fd)
                next_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise PathRefused(f"{'/'.join(parts)}: {name!r} is a symlink or not a directory") from None
                raise
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


def write_file(root: str, path: str, data: bytes, *, offset: int = 0, mode: int = 0o644) -> None:
    """Write ``data`` at ``offset`` of ``path`` under ``root``; offset 0 creates or truncates the file."""
    parts = split_path(root, path)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        parent = _open_parent(root_fd, parts, create=True)
    finally:
        os.close(root_fd)
    try:
        # O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, possibly forever.
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(parts[-1], flags, mode & 0o7777, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathRefused(f"{path}: is a symlink; refusing to write through it") from None
            if exc.errno == errno.EISDIR:
                raise PathRefused(f"{path}: is a directory") from None
            if exc.errno == errno.ENXIO:
                raise PathRefused(f"{path}: is a FIFO; refusing to write to it") from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PathRefused(f"{path}: not a regular file")
            os.set_blocking(fd, True)
            if offset == 0:
                os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        finally:
            os.close(fd)
    finally:
        os.close(parent)


def open_for_reading(root: str, path: str) -> int:
    """An open descriptor of the regular file ``path`` under ``root``.

    A symlink is followed only when what it finally points to is inside ``root`` too; one that leads
    out (or anywhere odd) is refused, as is anything that is not a regular file.
    """
    parts = split_path(root, path)
    try:
        return _open_regular(root, parts)
    except PathRefused as refused:
        if "symlink" not in str(refused):
            raise
    resolved = os.path.realpath(os.path.join(root, *parts))
    real_root = os.path.realpath(root)
    if not resolved.startswith(real_root.rstrip("/") + "/"):
        raise PathRefused(f"{path}: is a symlink that points outside {root}; refusing to read it")
    # Walk the resolved path again with O_NOFOLLOW: if it changed meanwhile, this refuses rather than follows.
    return _open_regular(real_root, split_path(real_root, resolved))


def _open_regular(root: str, parts: list[str]) -> int:
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        parent = _open_parent(root_fd, parts, create=False)
    finally:
        os.close(root_fd)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent)
    except FileNotFoundError:
        raise PathRefused(f"{'/'.join(parts)}: no such file", "not_found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathRefused(f"{'/'.join(parts)}: is a symlink") from None
        raise
    finally:
        os.close(parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PathRefused(f"{'/'.join(parts)}: not a regular file")
    return fd


def wipe(directory: str) -> int:
    """Remove everything inside ``directory`` (not the directory itself); returns how many entries went.

    Runs as the sandbox user, who owns everything there but may have taken away its own permissions
    (``chmod 000`` on a directory): those are given back before descending.
    """
    removed = 0
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except FileNotFoundError:
        return 0
    try:
        removed = _wipe_fd(fd)
    finally:
        os.close(fd)
    return removed


def _wipe_fd(top_fd: int) -> int:
    """Empty the directory open as ``top_fd``, depth first, without recursion: user code may have built a
    tree deep enough to exhaust Python's stack (which would take PID 1 down with it)."""
    removed = 0
    # Each frame: (directory fd, its entries not yet handled, the name of the child being emptied).
    stack: list[tuple[int, list[tuple[str, bool]], str | None]] = [(top_fd, _entries(top_fd), None)]
    try:
        while stack:
            fd, entries, _ = stack[-1]
            if not entries:
                stack.pop()
                if stack:  # the child directory is empty now: close it and remove it from its parent
                    os.close(fd)
                    parent_fd, parent_entries, name = stack[-1]
                    with contextlib.suppress(OSError):
                        os.rmdir(name, dir_fd=parent_fd)
                        removed += 1
                continue
            name, is_dir = entries.pop()
            if not is_dir:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
                    removed += 1
                continue
            with contextlib.suppress(OSError):
                os.chmod(name, 0o700, dir_fd=fd, follow_symlinks=False)
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue
            stack[-1] = (fd, entries, name)
            stack.append((child, _entries(child), None))
    finally:
        for fd, _, _ in stack[1:]:
            os.close(fd)
    return removed


def _entries(dir_fd: int) -> list[tuple[str, bool]]:
    try:
        with os.scandir(dir_fd) as entries:
            return [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:
        return []


def is_empty(directory: str, allowed: frozenset[str] = frozenset()) -> bool:
    try:
        return all(name in allowed for name in os.listdir(directory))
    except FileNotFoundError:
        return True
