"""What a user would do by hand, through the same Docker Engine API client (no CLI):

- ``docker exec``: exec create + start (reading its output to the end) + inspect, into a running container
  made exactly as the engine makes its sandboxes;
- ``docker run --rm``: create + attach + start + output to the end + wait + remove of a container with the
  same locked-down host config, running the program directly (no agent).

The workload is the warm benchmark's hello world, given on the command line (``python3 -c``, ``bash -c``,
``node -e``, ``bun -e``, ``deno eval``), as the sandbox user with the engine's environment.
"""

from __future__ import annotations

import time

import msgspec

from isol8rt import Isol8Options
from isol8rt.docker import DockerClient
from isol8rt.engine.backend import DockerBackend
from isol8rt.engine.spec import sandbox_spec
from isol8rt.engine.plan import run_env
from isol8rt.engine.container import Container
from isol8rt.runtimes import RUNTIMES, SANDBOX_DIR

from .results import Result
from .workloads import EXPECTED, HELLO_ARGV

_now = time.perf_counter
USER = "1000:1000"


async def _read_all(stream) -> bytes:
    out = bytearray()
    while True:
        frames = await stream.receive()
        if not frames:
            return bytes(out)
        for fd, data in frames:
            if fd == 1:
                out += data


def _problem(exit_code: int | None, output: bytes) -> str | None:
    return None if exit_code == 0 and output == EXPECTED else f"exit {exit_code}, output {output[:80]!r}"


def _spec(runtime: str):
    info = RUNTIMES[runtime]
    return sandbox_spec(Isol8Options(), info, info.image, "bench-baseline")


async def docker_exec(client: DockerClient, runtime: str, runs: int, warmup: int) -> Result:
    result = Result(id=f"baseline.{runtime}.exec", group="baseline",
                    label=f"docker exec of the {runtime} hello world into a running sandbox container",
                    params={"runtime": runtime, "argv": HELLO_ARGV[runtime], "warmup": warmup},
                    phase_order=["exec_create", "exec_start", "exec_inspect"])
    container = await Container.create(DockerBackend(client), _spec(runtime))
    env = run_env(Isol8Options())
    started = _now()
    try:
        for index in range(warmup + runs):
            t0 = _now()
            exec_id = await client.exec_create(container.container_id, HELLO_ARGV[runtime], user=USER, env=env,
                                               workdir=SANDBOX_DIR)
            t1 = _now()
            async with await client.exec_start(exec_id) as stream:
                output = await _read_all(stream)
            t2 = _now()
            info = await client.exec_inspect(exec_id)
            t3 = _now()
            result.record(_problem(info.exit_code, output), (t3 - t0) * 1000,
                          {"exec_create": (t1 - t0) * 1000, "exec_start": (t2 - t1) * 1000,
                           "exec_inspect": (t3 - t2) * 1000}, keep=index >= warmup)
    finally:
        result.wall_s = _now() - started
        await container.discard()
    return result


class DockerRun:
    """``docker run --rm`` of the hello world, one run per :meth:`once`, so that it can be interleaved with
    the engine's cold runs (both then see the same moments of a busy machine)."""

    def __init__(self, client: DockerClient, runtime: str, *, note: str = "", oci_runtime: str | None = None) -> None:
        self.client = client
        under = f" under {oci_runtime}" if oci_runtime else ""
        self.result = Result(id=f"baseline.{runtime}.run" + (f".{oci_runtime}" if oci_runtime else ""),
                             group="baseline",
                             label=f"docker run --rm of the {runtime} hello world{under} (create, attach, start, "
                                   "wait, remove)",
                             params={"runtime": runtime, "argv": HELLO_ARGV[runtime], "oci_runtime": oci_runtime},
                             phase_order=["create", "attach", "start", "output", "wait", "remove"], note=note)
        env = run_env(Isol8Options())
        spec = DockerBackend(client).container_spec(_spec(runtime))
        self.spec = msgspec.structs.replace(
            spec, entrypoint=list(HELLO_ARGV[runtime]), cmd=None, user=USER, env=[f"{k}={v}" for k, v in env.items()],
            open_stdin=False, stdin_once=False, attach_stdin=False,
            host_config=msgspec.structs.replace(spec.host_config, runtime=oci_runtime),
        )

    async def once(self, keep: bool) -> None:
        client, result = self.client, self.result
        started = t0 = _now()
        container_id = await client.create_container(self.spec)
        try:
            t1 = _now()
            async with await client.attach_container(container_id, stdin=False) as stream:
                t2 = _now()
                await client.start_container(container_id)
                t3 = _now()
                output = await _read_all(stream)
            t4 = _now()
            code = await client.wait_container(container_id)
            t5 = _now()
        finally:
            await client.remove_container(container_id, force=True)
            t6 = _now()
            result.wall_s += t6 - started
        result.record(_problem(code, output), (t6 - t0) * 1000,
                      {"create": (t1 - t0) * 1000, "attach": (t2 - t1) * 1000, "start": (t3 - t2) * 1000,
                       "output": (t4 - t3) * 1000, "wait": (t5 - t4) * 1000, "remove": (t6 - t5) * 1000}, keep=keep)


async def docker_run(client: DockerClient, runtime: str, runs: int, warmup: int) -> Result:
    baseline = DockerRun(client, runtime)
    baseline.result.params["warmup"] = warmup
    for index in range(warmup + runs):
        await baseline.once(keep=index >= warmup)
    return baseline.result
