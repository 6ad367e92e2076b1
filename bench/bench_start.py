"""Where a container's ``/start`` goes: the engine's own container spec, then the same spec with one
part taken away at a time, under runc and (when the daemon knows it) crun, in interleaved rounds so that
every variant sees the same moments of a busy machine.

    python bench/bench_start.py [--runs 20] [--runtimes runc,crun]

Each sample is one ``docker run --rm`` of ``/bin/true`` through the engine's Docker client: create,
start, wait, remove, each timed. The program is ``/bin/true``, not the agent, so what is measured is
Docker's and the OCI runtime's own work: namespaces, cgroups, mounts, the seccomp filter, the network.
Variants (each is the engine's python spec with one change):

    engine          as the engine creates its sandboxes (network none, seccomp, read-only root, tmpfs,
                    limits, masked paths)
    bridge          network on the default bridge instead of none (a veth pair and addresses)
    no-seccomp      Docker's default seccomp profile instead of the engine's (the filter's size)
    no-tmpfs        no tmpfs mounts and a writable root (the mounts)
    no-limits       no memory, CPU or pids limit (the cgroup writes)
    bare            none of the above: the image, network none, nothing else
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import msgspec
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from isol8rt import Isol8Options  # noqa: E402
from isol8rt.docker import DockerClient, DockerError  # noqa: E402
from isol8rt.docker._models import ContainerSpec, HostConfig  # noqa: E402
from isol8rt.engine.backend import DockerBackend  # noqa: E402
from isol8rt.engine.spec import sandbox_spec  # noqa: E402
from isol8rt.runtimes import RUNTIMES  # noqa: E402

_now = time.perf_counter


def _variants(engine: ContainerSpec) -> dict[str, ContainerSpec]:
    host = engine.host_config
    assert host is not None
    with_host = lambda **changes: msgspec.structs.replace(engine, host_config=msgspec.structs.replace(host, **changes))  # noqa: E731
    default_seccomp = [opt for opt in host.security_opt or [] if not opt.startswith("seccomp")]
    return {
        "engine": engine,
        "bridge": with_host(network_mode="bridge"),
        "no-seccomp": with_host(security_opt=default_seccomp),
        "no-tmpfs": with_host(tmpfs=None, readonly_rootfs=False),
        "no-limits": with_host(memory=None, memory_swap=None, nano_cpus=None, pids_limit=None),
        "bare": msgspec.structs.replace(engine, host_config=HostConfig(network_mode="none")),
    }


async def _once(client: DockerClient, spec: ContainerSpec) -> dict[str, float]:
    t0 = _now()
    container_id = await client.create_container(spec)
    try:
        t1 = _now()
        await client.start_container(container_id)
        t2 = _now()
        code = await client.wait_container(container_id)
        t3 = _now()
    finally:
        await client.remove_container(container_id, force=True)
    t4 = _now()
    if code != 0:
        raise RuntimeError(f"/bin/true exited {code}")
    return {"create": (t1 - t0) * 1000, "start": (t2 - t1) * 1000, "wait": (t3 - t2) * 1000,
            "remove": (t4 - t3) * 1000, "total": (t4 - t0) * 1000}


def _p(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


async def main(runs: int, runtimes: list[str]) -> None:
    client = DockerClient()
    try:
        known = set((await client.info()).runtimes)
        missing = [name for name in runtimes if name not in known]
        if missing:
            print(f"not registered with this daemon, left out: {', '.join(missing)} "
                  "(`isol8rt setup --oci-runtime crun` registers crun)")
        runtimes = [name for name in runtimes if name in known]
        info = RUNTIMES["python"]
        engine = DockerBackend(client).container_spec(sandbox_spec(Isol8Options(), info, info.image, "bench-start"))
        engine = msgspec.structs.replace(engine, entrypoint=["/bin/true"], cmd=None, open_stdin=False,
                                         stdin_once=False, attach_stdin=False)
        cases = {(variant, runtime): msgspec.structs.replace(
                     spec, host_config=msgspec.structs.replace(spec.host_config, runtime=runtime))
                 for variant, spec in _variants(engine).items() for runtime in runtimes}
        samples: dict[tuple[str, str], list[dict[str, float]]] = {case: [] for case in cases}
        for index in range(runs + 1):  # the first round warms the page cache and is left out
            for case, spec in cases.items():
                try:
                    timing = await _once(client, spec)
                except (DockerError, RuntimeError) as exc:
                    print(f"{case[0]} / {case[1]}: {exc}")
                    return
                if index:
                    samples[case].append(timing)
    finally:
        await client.aclose()
    print(f"{runs} runs per row, interleaved; milliseconds, p50 (p90)")
    print(f"{'variant':<12} {'runtime':<6} " + " ".join(f"{phase:>15}" for phase in ("create", "start", "wait",
                                                                                      "remove", "total")))
    for (variant, runtime), rows in samples.items():
        cells = []
        for phase in ("create", "start", "wait", "remove", "total"):
            values = [row[phase] for row in rows]
            cells.append(f"{statistics.median(values):7.1f} ({_p(values, .9):5.1f})")
        print(f"{variant:<12} {runtime:<6} " + " ".join(cells))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--runtimes", default="runc,crun")
    args = parser.parse_args()
    trio.run(main, args.runs, [name.strip() for name in args.runtimes.split(",") if name.strip()])
