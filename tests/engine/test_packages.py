"""install_packages: installed before the run with the request's network policy, or taken from an image
`isol8rt setup` baked them into."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from isol8rt import ExecutionRequest, InvalidRequest


async def test_pip_install_with_network(make_engine):
    async with make_engine(network="host", pool_size=0) as engine:
        events = [e async for e in engine.execute_stream(ExecutionRequest(
            code="import six; print(six.__name__)", install_packages=["six"], timeout_ms=120_000))]
    assert "".join(e.data for e in events if e.type == "stdout" and e.phase == "code") == "six\n"
    assert events[-1].type == "exit" and events[-1].data == "0"


async def test_npm_install_with_network(make_engine):
    async with make_engine(network="host", pool_size=0) as engine:
        result = await engine.execute(ExecutionRequest(
            code="import isNumber from 'is-number'; console.log(isNumber(5))", runtime="node",
            install_packages=["is-number@7.0.0"], timeout_ms=120_000))
    assert (result.stdout, result.exit_code) == ("true\n", 0), result.stderr


async def test_install_without_network_fails_clearly_and_at_once(make_engine):
    async with make_engine(pool_size=0) as engine:
        with pytest.raises(InvalidRequest, match="needs network access"), trio.fail_after(10):
            await engine.execute(ExecutionRequest(code="print(1)", install_packages=["definitely-not-baked-pkg"]))


async def test_bash_packages_must_be_baked(engine):
    with pytest.raises(InvalidRequest, match="isol8rt setup --bash"):
        await engine.execute(ExecutionRequest(code="jq --version", runtime="bash", install_packages=["jq"]))


async def test_option_like_package_names_are_refused(engine):
    with pytest.raises(InvalidRequest, match="installPackages"):
        await engine.execute(ExecutionRequest(code="1", install_packages=["--index-url=http://evil"]))


async def test_a_baked_image_is_used_without_network(make_engine):
    baked = subprocess.run([sys.executable, "-m", "isol8rt", "setup", "--quiet", "--runtimes", "python",
                            "--python", "six"], capture_output=True, text=True, timeout=600)
    assert baked.returncode == 0, baked.stderr
    async with make_engine(pool_size=0) as engine:  # network none: nothing could be downloaded
        result = await engine.execute(ExecutionRequest(code="import six; print('baked', six.__name__)",
                                                       install_packages=["six"]))
    assert (result.stdout, result.exit_code) == ("baked six\n", 0), result.stderr
