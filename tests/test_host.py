"""Installing Debian packages on the host (docker.io, mmdebstrap): apt's lists refreshed when missing or
stale, failures reported in one line. apt itself is faked: these tests install nothing."""

from __future__ import annotations

import pytest

from isol8rt.errors import SetupError
from isol8rt.images import host


@pytest.fixture
def apt(monkeypatch):
    calls = []
    state = {"known": True, "fail_installs": 0}

    async def knows(package):
        return state["known"]

    async def run(argv, packages):
        calls.append(argv[1])
        if argv[1] == "install" and state["fail_installs"]:
            state["fail_installs"] -= 1
            raise SetupError("`apt-get install` failed (404 Not Found)")

    monkeypatch.setattr(host, "_apt_knows", knows)
    monkeypatch.setattr(host, "_apt", run)
    return calls, state


async def test_known_package_installs_without_update(apt):
    calls, _ = apt
    await host.apt_install(["docker.io"], progress=lambda line: None)
    assert calls == ["install"]


async def test_unknown_package_updates_first(apt):
    calls, state = apt
    state["known"] = False
    await host.apt_install(["docker.io"], progress=lambda line: None)
    assert calls == ["update", "install"]


async def test_stale_lists_are_refreshed_once(apt):
    calls, state = apt
    state["fail_installs"] = 1
    await host.apt_install(["docker.io"], progress=lambda line: None)
    assert calls == ["install", "update", "install"]


async def test_a_failure_after_a_fresh_update_is_reported(apt):
    calls, state = apt
    state["known"] = False
    state["fail_installs"] = 1
    with pytest.raises(SetupError, match="404"):
        await host.apt_install(["docker.io"], progress=lambda line: None)
    assert calls == ["update", "install"]
