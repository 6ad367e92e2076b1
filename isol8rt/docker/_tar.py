"""A streaming, deterministic tar writer for build contexts and image imports.

The archive is produced as chunks while the request body is being sent: files on disk are read a
chunk at a time, so a context is never held in memory whole. The output depends only on the entries
given: every member has mtime 0, uid and gid 0, no user or group names, and members come in the order
given (pass them sorted), so the same inputs give the same bytes, and the same image layer cache key.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

BLOCK_SIZE = tarfile.BLOCKSIZE
CHUNK_SIZE = 64 * 1024

TarEntry = tuple[str, "bytes | os.PathLike[str]", int]


def tar_stream(entries: Iterable[TarEntry], *, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield a tar archive of regular files, in chunks of about ``chunk_size`` bytes.

    Each entry is ``(arcname, content, mode)``: ``content`` is the file's bytes or the path of a file
    to read; ``mode`` its permission bits (``0o644``, ``0o755``). Parent directories need no entries
    of their own (Docker creates them). A file that changes size while it is read raises
    :class:`OSError` rather than producing a corrupt archive.
    """
    return _coalesce(_members(entries, chunk_size), chunk_size)


def _members(entries: Iterable[TarEntry], chunk_size: int) -> Iterator[bytes]:
    for arcname, content, mode in entries:
        name = _member_name(arcname)
        if isinstance(content, (bytes, bytearray, memoryview)):
            yield _header(name, len(content), mode)
            yield bytes(content)
            size = len(content)
        else:
            path = Path(content)
            with path.open("rb") as file:
                size = os.fstat(file.fileno()).st_size
                yield _header(name, size, mode)
                yield from _file_chunks(file, path, size, chunk_size)
        yield _padding(size)
    # The end-of-archive marker: two zero blocks.
    yield bytes(2 * BLOCK_SIZE)


def _member_name(arcname: str) -> str:
    name = PurePosixPath(arcname)
    if name.is_absolute() or ".." in name.parts or not name.parts or str(name) == ".":
        raise ValueError(f"tar member name must be a relative path inside the archive: {arcname!r}")
    return str(name)


def _header(name: str, size: int, mode: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode & 0o7777
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    # PAX keeps long and non-ASCII names intact; for short ASCII names it is plain ustar.
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _file_chunks(file, path: Path, size: int, chunk_size: int) -> Iterator[bytes]:
    left = size
    while left:
        data = file.read(min(chunk_size, left))
        if not data:
            raise OSError(f"{path} shrank while it was being archived")
        left -= len(data)
        yield data
    if file.read(1):
        raise OSError(f"{path} grew while it was being archived")


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK_SIZE)


def _coalesce(pieces: Iterator[bytes], chunk_size: int) -> Iterator[bytes]:
    # Headers and padding are tiny; sending each as its own HTTP chunk would triple the syscalls.
    pending: list[bytes] = []
    pending_size = 0
    for piece in pieces:
        if not piece:
            continue
        pending.append(piece)
        pending_size += len(piece)
        if pending_size >= chunk_size:
            yield b"".join(pending)
            pending.clear()
            pending_size = 0
    if pending:
        yield b"".join(pending)
