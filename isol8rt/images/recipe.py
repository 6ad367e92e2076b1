"""A recipe: everything one image build is made of, and the content hash that names it.

An image is rebuilt exactly when its hash changes, so the hash covers every input of the build: the
parent's own hash, each file of the build context (name, mode and bytes; the Dockerfile is one of
them), the build arguments and the labels. Chaining the parent's hash means a change anywhere below an
image rebuilds it and everything above it, and nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import msgspec

from ..runtimes import LABEL_CONTENT_HASH, LABEL_MANAGED_BY, MANAGED_BY

# Bumped when the hashing itself changes, so every image is rebuilt once.
_HASH_SCHEME = b"isol8rt-image-hash/1"


class ContextFile(msgspec.Struct, frozen=True):
    """One file of a build context."""

    arcname: str
    data: bytes
    mode: int = 0o644


class Recipe(msgspec.Struct, frozen=True, kw_only=True):
    #: The tag the build produces, "repo:tag".
    image: str
    parent_hash: str
    files: tuple[ContextFile, ...]
    buildargs: dict[str, str] = {}
    #: Labels besides the two every image gets (managed-by, content-hash).
    labels: dict[str, str] = {}
    content_hash: str = ""

    @classmethod
    def make(
        cls,
        image: str,
        *,
        parent_hash: str,
        files: Iterable[ContextFile],
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Recipe:
        ordered = tuple(sorted(files, key=lambda file: file.arcname))
        buildargs = dict(sorted((buildargs or {}).items()))
        labels = dict(sorted((labels or {}).items()))
        return cls(
            image=image,
            parent_hash=parent_hash,
            files=ordered,
            buildargs=buildargs,
            labels=labels,
            content_hash=content_hash(parent_hash, ordered, buildargs, labels),
        )

    def build_labels(self) -> dict[str, str]:
        return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_CONTENT_HASH: self.content_hash, **self.labels}

    def tar_entries(self) -> Iterator[tuple[str, bytes, int]]:
        """The context for :func:`isol8rt.docker.tar_stream`."""
        return ((file.arcname, file.data, file.mode) for file in self.files)


def content_hash(
    parent_hash: str,
    files: Iterable[ContextFile],
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
) -> str:
    """The hex sha256 of a build's inputs. Every piece is length-prefixed, so no two different inputs
    can run together into the same bytes."""
    digest = hashlib.sha256()

    def put(piece: bytes) -> None:
        digest.update(len(piece).to_bytes(8, "big"))
        digest.update(piece)

    put(_HASH_SCHEME)
    put(parent_hash.encode())
    for file in sorted(files, key=lambda file: file.arcname):
        put(b"file")
        put(file.arcname.encode())
        put(b"%o" % file.mode)
        put(file.data)
    for section, mapping in ((b"buildarg", buildargs), (b"label", labels)):
        for key, value in sorted(mapping.items()):
            put(section)
            put(key.encode())
            put(value.encode())
    return digest.hexdigest()


def directory_files(directory: Path, prefix: str = "") -> list[ContextFile]:
    """Every file under ``directory`` (bytecode and caches left out), named relative to it."""
    files = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        arcname = f"{prefix}{path.relative_to(directory).as_posix()}"
        files.append(ContextFile(arcname, path.read_bytes(), file_mode(path)))
    return files


def file_mode(path: Path) -> int:
    # Only the executable bit matters to a build; the rest varies between checkouts and wheels.
    return 0o755 if path.stat().st_mode & 0o111 else 0o644
