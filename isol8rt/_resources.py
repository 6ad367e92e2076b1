"""Where the non-Python parts of isol8rt live: image recipes, seccomp profiles, the egress proxy.

A wheel carries them under ``isol8rt/_data/``; a source checkout (or an editable install) keeps them at
the top of the repository. Both layouts are looked up, wheel first.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The directory ``name`` (``images``, ``profiles`` or ``proxy``), wherever this install keeps it."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"isol8rt data directory {name!r} is missing from this installation ({_PACKAGE})")


def package_dir() -> Path:
    """The ``isol8rt`` package directory itself (the agent's sources are copied into images from here)."""
    return _PACKAGE
