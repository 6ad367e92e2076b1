"""A real second Docker host (second_host.py: a second dockerd in its own network namespace, over mutual
TLS): an engine pointed at it with DOCKER_HOST runs code there, attach before start included, and not
on this machine's daemon; a wrong client certificate is one clear line from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.docker import DockerClient
from isol8rt.runtimes import LABEL_ENGINE

from .second_host import second_host  # noqa: F401 - the fixture

pytestmark = [pytest.mark.docker, pytest.mark.cluster]


async def containers_of(engine_id: str) -> list[str]:
    async with DockerClient() as client:
        return [c.id for c in await client.list_containers(all=True, labels={LABEL_ENGINE: engine_id})]


async def test_an_engine_runs_code_on_the_second_host(second_host, monkeypatch):  # noqa: F811
    for name, value in second_host.environment(second_host.certificates.client).items():
        monkeypatch.setenv(name, value)
    with trio.fail_after(90):
        async with DockerIsol8(Isol8Options(pool_size=0)) as engine:
            first = await engine.execute(ExecutionRequest(code="x = 6 * 7\nprint(x)"), session_id="s")
            second = await engine.execute(ExecutionRequest(code="import sys; print(x, sys.stdin.read())",
                                                           stdin="over mutual TLS"), session_id="s")
            there = await containers_of(engine.engine_id)
            monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
            monkeypatch.delenv("DOCKER_TLS_VERIFY")
            here = await containers_of(engine.engine_id)
            monkeypatch.setenv("DOCKER_HOST", second_host.url)
            monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    assert (first.exit_code, first.stdout) == (0, "42\n"), first.stderr
    assert second.stdout == "42 over mutual TLS\n", second.stderr
    assert len(there) == 1 and here == []  # the session's container is on the second host only


def test_a_wrong_client_certificate_is_one_clear_line(second_host):  # noqa: F811
    env = {**os.environ, **second_host.environment(second_host.certificates.stranger)}
    done = subprocess.run([sys.executable, "-m", "isol8rt", "run", "-e", "print(1)"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"isol8rt: Docker at {second_host.url} ") and "client certificate" in lines[0], lines
