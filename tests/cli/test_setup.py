"""`isol8rt setup`: its options, refusing bad package names before Docker is touched, its summary."""

from __future__ import annotations

import pytest

from isol8rt.cli import main
from isol8rt.cli import setup as setup_command
from isol8rt.images import ImageReport


@pytest.fixture
def no_docker(monkeypatch):
    async def refuse(*args, **kwargs):
        raise AssertionError("Docker was touched")

    monkeypatch.setattr(setup_command, "ensure_daemon", refuse)


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["setup", "--help"])
    text = capsys.readouterr().out
    for option in ("--runtimes", "--force", "--quiet", "--python", "--node", "--bun", "--deno", "--bash"):
        assert option in text


@pytest.mark.parametrize(
    "argv", [["--python", "numpy;id"], ["--node", "lodash,,x"], ["--bash", ""], ["--runtimes", "python,cobol"]]
)
def test_bad_packages_fail_before_docker_is_touched(no_docker, capsys, argv):
    assert main(["setup", *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("isol8rt: ") and error.count("\n") == 1


def test_the_summary_has_one_line_per_image():
    reports = [
        ImageReport("debian:bookworm-slim", "up to date", 0.0, 74_500_000),
        ImageReport("isol8rt:python", "built", 1.62, 153_100_000),
    ]
    assert setup_command._summary(reports, 2.0).splitlines() == [
        "2 images, 1 built, 1 up to date, in 2.0s:",
        "  debian:bookworm-slim  up to date                 74.5 MB",
        "  isol8rt:python        built in 1.6s             153.1 MB",
    ]
