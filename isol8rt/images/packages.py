"""Package names to bake into custom images: checked, then put in one canonical form.

The same set of packages must always give the same image, whatever order, repetition or spacing it
was written with, so a list is normalised (names canonicalised where the ecosystem defines it, sorted,
deduplicated) before it is hashed or compared. Names reach the build as lines of a file that installers
read without a shell; they are still held to each ecosystem's name syntax, so anything else (an option,
a path, a shell metacharacter) is refused before a build starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidRequest
from ..runtimes import RUNTIME_NAMES

_PYTHON_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PYTHON_SPEC = r"(?:===|==|!=|<=|>=|~=|<|>)[A-Za-z0-9.*+!_-]+"
_PYTHON = re.compile(
    rf"(?P<name>{_PYTHON_NAME})"
    rf"(?P<rest>(?:\[{_PYTHON_NAME}(?:,{_PYTHON_NAME})*\])?(?:{_PYTHON_SPEC}(?:,{_PYTHON_SPEC})*)?)"
)
_NPM = re.compile(r"(?:@[A-Za-z0-9][A-Za-z0-9._~-]*/)?[A-Za-z0-9][A-Za-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=*+_-]+)?")
_DENO = re.compile(r"(?:npm:|jsr:|https://)[A-Za-z0-9@][A-Za-z0-9@/._~^:+%=*-]*")
_DEBIAN = re.compile(r"[a-z0-9][a-z0-9+.-]+(?:=[A-Za-z0-9.+~:-]+)?")

_SYNTAX = {
    "python": (_PYTHON, "a PyPI requirement such as numpy or numpy==2.1.3"),
    "node": (_NPM, "an npm package such as lodash, lodash@4 or @scope/name"),
    "bun": (_NPM, "an npm package such as zod, zod@3 or @scope/name"),
    "deno": (_DENO, "an npm:, jsr: or https:// specifier such as npm:zod@3"),
    "bash": (_DEBIAN, "a Debian package such as jq or jq=1.6-2.1"),
}


def normalize_packages(runtime: str, packages: str | Iterable[str]) -> tuple[str, ...]:
    """The canonical form of a package list for ``runtime``: a comma-separated string or an iterable
    of names, checked, canonicalised, deduplicated and sorted. Raises :class:`InvalidRequest` naming
    the first bad entry."""
    if runtime not in _SYNTAX:
        raise InvalidRequest(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIME_NAMES)}")
    pattern, example = _SYNTAX[runtime]
    entries = packages.split(",") if isinstance(packages, str) else list(packages)
    if not entries:
        raise InvalidRequest(f"no {runtime} packages given: name at least one")
    names = set()
    for entry in entries:
        name = entry.strip() if isinstance(entry, str) else entry
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"empty {runtime} package name in {_shown(entries)}: remove the stray comma")
        match = pattern.fullmatch(name)
        if match is None:
            raise InvalidRequest(f"{name!r} is not a valid {runtime} package: expected {example}")
        names.add(_canonical_python(match) if runtime == "python" else name)
    return tuple(sorted(names))


def packages_label(packages: Iterable[str]) -> str:
    """The value of the ``isol8rt.packages`` label for an already normalised list."""
    return ",".join(packages)


def _canonical_python(match: re.Match[str]) -> str:
    # PEP 503: names differing only in case or in runs of "-", "_", "." are the same project.
    return re.sub(r"[-_.]+", "-", match["name"]).lower() + match["rest"]


def _shown(entries: list) -> str:
    return repr(",".join(str(entry) for entry in entries))
