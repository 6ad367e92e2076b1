"""Commands start fast: `import isol8rt` and `isol8rt --version` load no trio, engine, client or server
(each costs tens of milliseconds on every CLI call an agent makes), and the lazy names still resolve."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("trio", "isol8rt.engine", "isol8rt.client", "isol8rt.server", "msgspec")


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_importing_the_package_loads_nothing_heavy():
    assert _loaded_after("import isol8rt").isdisjoint(HEAVY)


def test_the_version_command_loads_nothing_heavy(capsys):
    loaded = _loaded_after("from isol8rt.cli import main\nassert main(['--version']) == 0")
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)
    done = subprocess.run([sys.executable, "-m", "isol8rt", "--version"], capture_output=True, text=True)
    import isol8rt

    assert (done.returncode, done.stdout) == (0, f"isol8rt {isol8rt.__version__}\n")


def test_every_public_name_resolves():
    import isol8rt

    for name in isol8rt.__all__:
        assert getattr(isol8rt, name) is not None, name
    assert set(isol8rt.__all__) <= set(dir(isol8rt))
    try:
        isol8rt.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_the_help_loads_nothing_heavy_and_says_what_the_full_parser_says():
    loaded = _loaded_after("from isol8rt.cli import build_parser\nbuild_parser(None, lazy=True).format_help()")
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)
    from isol8rt.cli import SUMMARIES, build_parser

    assert build_parser(None, lazy=True).format_help() == build_parser().format_help()
    for command in SUMMARIES:   # a command's own parser is the full one's, whichever way it was built
        lazy = build_parser(command, lazy=True)._subparsers._group_actions[0].choices[command]
        full = build_parser()._subparsers._group_actions[0].choices[command]
        assert lazy.format_help() == full.format_help(), command


def test_a_run_through_the_local_engine_loads_no_trio_engine_server_or_h11(tmp_path):
    """The warm path of `isol8rt run` (a stand-in engine on the socket) stays in the standard library and
    the wire types: trio alone would cost more than the whole warm run, h11 a tenth of it."""
    import os

    from isol8rt.types import StreamEvent
    from tests.local.test_client import HEALTH, StandIn, _events

    engine = StandIn(tmp_path / "d", HEALTH, _events(StreamEvent("stdout", "hi\n"), StreamEvent("exit", "4")))
    try:
        probe = ("import sys\nfrom isol8rt.cli import main\ncode = main(['run', '-e', 'print(1)'])\n"
                 "print(code, ' '.join(sorted(sys.modules)))")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env={**os.environ, "ISOL8RT_SOCKET": str(engine.path)})
    finally:
        engine.close()
    assert done.returncode == 0, done.stderr
    printed, _, loaded = done.stdout.partition("4 ")
    assert printed == "hi\n", done.stdout[:200]
    heavy = (*HEAVY[:4], "h11")
    assert set(loaded.split()).isdisjoint(heavy), set(loaded.split()) & set(heavy)
