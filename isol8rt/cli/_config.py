"""The configuration file as every command reads it: the same search, and one line on stderr (once per
process) when the file read is the reference system's rather than an isol8rt one."""

from __future__ import annotations

import sys

from ..config import LoadedConfig, load_config

_told: set[str] = set()


def load(path: str | None = None) -> LoadedConfig:
    loaded = load_config(path)
    if loaded.notice and loaded.notice not in _told:
        _told.add(loaded.notice)
        print(f"isol8rt: {loaded.notice}", file=sys.stderr)
    return loaded
