"""One run breaks the container for every run after it: it removes its program and makes /sandbox
read-only (``chmod 555``), so the next program cannot be written there ("cannot prepare the run:
Permission denied"). Stopped by: the reset puts back the owner, mode, extended attributes and ACLs
that /sandbox, /tmp, /dev/shm and /dev/mqueue had when the container started, then verifies them."""

from __future__ import annotations

import pytest

from isol8rt import ExecutionRequest

from .conftest import assert_same_container, run

BREAK = "import os\nos.unlink('/sandbox/main.py')\nos.chmod('/sandbox', 0o555)\nprint('broken')"
CHECK = "import os, stat\nprint('ok', oct(stat.S_IMODE(os.stat('/sandbox').st_mode)))"


async def test_library(reuse_engine, strategy):
    attack = await run(reuse_engine, BREAK)
    assert (attack.stdout, attack.exit_code) == ("broken\n", 0), attack.stderr
    for _ in range(2):  # the fresh interpreter prestarted by the reset, and a plain run after it
        later = await run(reuse_engine, CHECK)
        assert (later.stdout, later.stderr, later.exit_code) == ("ok 0o755\n", "", 0)
        assert_same_container(strategy, attack, later)


@pytest.mark.parametrize("same_key", [False, True], ids=["two-keys", "one-key"])
async def test_server(two_keys, strategy, same_key):
    attacker, later_client = two_keys.first, (two_keys.first if same_key else two_keys.second)
    async with attacker, later_client:
        attack = await attacker.execute(ExecutionRequest(code=BREAK))
        assert attack.stdout == "broken\n", attack.stderr
        await two_keys.settled()
        later = await later_client.execute(ExecutionRequest(code=CHECK))
    assert (later.stdout, later.stderr, later.exit_code) == ("ok 0o755\n", "", 0)
    if same_key:
        assert_same_container(strategy, attack, later)
