"""SKILL.md teaches an agent the CLI: every isol8rt command line in its code blocks (pipes included) must
parse with the real parser, so the skill never teaches a flag that does not exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from isol8rt.cli import build_parser

SKILL = Path(__file__).resolve().parent.parent / "SKILL.md"


def command_lines() -> list[str]:
    """Every isol8rt invocation in SKILL.md's fenced shell blocks, one per pipeline stage."""
    found = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", SKILL.read_text(), flags=re.S):
        for line in block.splitlines():
            for stage in line.split(" | "):
                words = shlex.split(stage, comments=True)
                if words and words[0] == "isol8rt":
                    found.append(stage.strip())
    return found


def test_the_skill_has_front_matter_and_commands():
    text = SKILL.read_text()
    assert text.startswith("---\nname: isol8rt\ndescription: ")
    assert len(command_lines()) >= 30


@pytest.mark.parametrize("line", command_lines())
def test_every_command_line_parses(line):
    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(line, comments=True)[1:])
    except SystemExit as exc:
        pytest.fail(f"{line!r} does not parse (exit {exc.code})")
    assert getattr(args, "handler", None) is not None, f"{line!r} names no command"
