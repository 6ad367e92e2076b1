"""The documentation's snippets run, against the real engine.

A fenced block right after a ``<!-- test -->`` line is run: ```python in this process (a fresh namespace,
stdout captured), ```sh with bash and the virtualenv's bin first on PATH (it must exit 0). When the next
block follows an ``<!-- output -->`` line, the snippet's stdout must equal it. The CLI reference is also
held to the parser: every flag it mentions under a command exists for that command.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
OWN_DOCS = ("quickstart.md", "library.md", "cli.md", "server.md", "scaling.md")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Snippet:
    file: str
    line: int
    language: str
    code: str
    output: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def snippets(name: str) -> list[Snippet]:
    found: list[Snippet] = []
    lines = (DOCS / name).read_text().splitlines()
    marker = None
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        fence = FENCE.match(line)
        if fence:
            start = index
            index += 1
            body = []
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            code = "\n".join(body) + "\n"
            if marker == "test":
                found.append(Snippet(name, start + 1, fence.group(1), code))
            elif marker == "output" and found:
                found[-1].output = code
            marker = None
        elif line == "<!-- test -->":
            marker = "test"
        elif line == "<!-- output -->":
            marker = "output"
        elif line:
            marker = None
        index += 1
    return found


ALL = [snippet for name in OWN_DOCS if (DOCS / name).exists() for snippet in snippets(name)]


def test_the_docs_have_tested_snippets():
    assert {snippet.file for snippet in ALL} == set(OWN_DOCS)


@pytest.mark.docker
@pytest.mark.parametrize("snippet", [s for s in ALL if s.language == "python"], ids=lambda s: s.id)
def test_python_snippet(snippet: Snippet):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet.code, snippet.id, "exec"), {"__name__": "__main__"})
    if snippet.output is not None:
        assert out.getvalue() == snippet.output


@pytest.mark.docker
@pytest.mark.parametrize("snippet", [s for s in ALL if s.language == "sh"], ids=lambda s: s.id)
def test_shell_snippet(snippet: Snippet):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet.code], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    if snippet.output is not None:
        assert done.stdout == snippet.output


def _options_of(parser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_cli_reference_names_only_real_flags():
    from isol8rt.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    text = (DOCS / "cli.md").read_text()
    sections = re.split(r"^## `isol8rt ([a-z-]+)[^`]*`", text, flags=re.M)
    documented = dict(zip(sections[1::2], sections[2::2]))
    assert set(documented) >= {"run", "setup", "serve", "mcp"}
    for command, section in documented.items():
        assert command in subparsers.choices, f"cli.md documents a command that does not exist: {command}"
        parser = subparsers.choices[command]
        known = _options_of(parser)
        for sub in getattr(parser, "_subparsers", None) and [
                a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"] or []:
            for child in sub.choices.values():
                known |= _options_of(child)
        prose = re.sub(r"```.*?```", "", section, flags=re.S)  # flags in examples may belong to the program
        others = "|".join(re.escape(name) for name in subparsers.choices if name != command)
        prose = re.sub(rf"`(isol8rt )?({others}) [^`]*`", "", prose)  # another command's flags, quoted
        mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", prose))
        assert mentioned <= known, f"isol8rt {command}: cli.md mentions {sorted(mentioned - known)}"


def test_the_security_page_cites_real_tests():
    """Every test docs/security.md names as the proof of a layer exists: the file, and the test in it.
    A ``::name`` cited alone belongs to the file named before it in the same cell."""
    tests_dir = Path(__file__).resolve().parent
    cited = 0
    for line in (DOCS / "security.md").read_text().splitlines():
        current = None
        for item in re.findall(r"`([^`]+)`", line):
            path, _, name = item.partition("::")
            if path.endswith(".py") and not Path(path).name.startswith("test_"):  # a source file, or a tool's
                assert (tests_dir.parent / path).is_file() or (tests_dir / path).is_file(), f"security.md: {path}?"
                current = None
                continue
            if path.endswith(".py"):
                current = (tests_dir / path.removeprefix("tests/")).resolve()
                assert current.is_file(), f"security.md cites {path}, which does not exist"
            elif path or current is None:
                continue
            if name:
                assert re.search(rf"def {re.escape(name)}\b", current.read_text()), f"security.md cites {item}"
            cited += 1
    assert cited > 50
