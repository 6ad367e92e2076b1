"""Registering another OCI runtime (crun) with this machine's Docker daemon, for ``isol8rt setup
--oci-runtime crun``.

Docker creates every container through an OCI runtime, runc unless told otherwise. crun (Debian's
package) does the same work in C instead of Go and starts containers a little sooner (bench/bench_start.py
measures by how much on the machine at hand). Using it takes three things, each done here only when it is
missing, as root on Debian with a local daemon:

1. the binary: ``apt-get install crun``;
2. the daemon's knowledge of it: a ``runtimes`` entry in ``/etc/docker/daemon.json``, merged into what the
   file already holds, then SIGHUP to dockerd, which reloads its runtimes without a restart (running
   containers are not touched);
3. on a host with "hybrid" cgroups (v1 hierarchies, plus a v2 hierarchy at ``/sys/fs/cgroup/unified``
   that still holds controllers) crun 1.8 refuses every container ("cgroups in hybrid mode not supported,
   drop all controllers from cgroupv2"). Each such controller is mounted as a v1 hierarchy of its own,
   which takes it out of v2, as a v1 systemd host would have mounted it.

Then one container proves it: ``/bin/true`` under the runtime, in the engine's python image. The engine
uses the runtime when asked (``security.ociRuntime``, ``isol8rt serve --oci-runtime``); nothing changes
Docker's default runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import trio

from .docker import ContainerSpec, DockerClient, DockerError, HostConfig, parse_docker_host
from .errors import SetupError
from .images.host import apt_install, can_install_packages

DAEMON_JSON = Path("/etc/docker/daemon.json")
DOCKER_PID = Path("/var/run/docker.pid")
CGROUP_ROOT = Path("/sys/fs/cgroup")

#: The runtimes this command knows how to install: the name Docker will know it by -> Debian's package.
PACKAGES = {"crun": "crun"}

#: How long dockerd gets to pick the new runtime up after SIGHUP.
RELOAD_TIMEOUT = 10.0


def with_runtime(config: dict, name: str, path: str) -> dict:
    """``daemon.json``'s content with ``name`` registered at ``path``; everything else kept as it was."""
    runtimes = dict(config.get("runtimes") or {})
    runtimes[name] = {**runtimes.get(name, {}), "path": path}
    return {**config, "runtimes": runtimes}


def hybrid_v2_controllers(root: Path = CGROUP_ROOT) -> list[str]:
    """The controllers a hybrid host's cgroup v2 hierarchy holds (those crun 1.8 refuses); [] on a pure v1
    or pure v2 host."""
    try:
        if (root / "cgroup.controllers").exists():  # pure v2: crun is at home there
            return []
        return (root / "unified" / "cgroup.controllers").read_text().split()
    except OSError:
        return []


async def register(name: str, image: str, *, client_factory: Callable[[], DockerClient] = DockerClient,
                   progress: Callable[[str], None] = print) -> None:
    """Make ``name`` usable by this machine's Docker daemon and prove it with one container; SetupError
    says what is missing and what to do when that cannot be done here."""
    async with client_factory() as client:
        known = (await client.info()).runtimes
        if name not in known:
            _may_change_this_machine(name)
            path = await _binary(name, progress)
            _write_daemon_json(name, path, progress)
            await _reload(client, name)
        if name == "crun":
            _free_hybrid_controllers(progress)
        await _prove(client, name, image)
    progress(f"OCI runtime {name}: ready (use it with security.ociRuntime or `isol8rt serve --oci-runtime {name}`)")


def _may_change_this_machine(name: str) -> None:
    endpoint = parse_docker_host()
    if not endpoint.url.startswith("unix://"):
        raise SetupError(f"the Docker daemon at {endpoint.where} does not know the OCI runtime {name}: register "
                         "it on that host (its daemon.json `runtimes`), this machine cannot")
    if name not in PACKAGES:
        raise SetupError(f"the Docker daemon does not know the OCI runtime {name}, and isol8rt can install only "
                         f"{', '.join(sorted(PACKAGES))}: register it in {DAEMON_JSON} (`runtimes`) yourself")
    if not can_install_packages():
        raise SetupError(f"the Docker daemon does not know the OCI runtime {name}: run `isol8rt setup "
                         f"--oci-runtime {name}` as root on Debian, or install {PACKAGES[name]} and add it to "
                         f"{DAEMON_JSON}'s `runtimes`, then reload dockerd")


async def _binary(name: str, progress: Callable[[str], None]) -> str:
    path = shutil.which(name, path="/usr/bin:/usr/sbin:/usr/local/bin")
    if path is None:
        await apt_install([PACKAGES[name]], progress=progress)
        path = shutil.which(name, path="/usr/bin:/usr/sbin:/usr/local/bin")
    if path is None:
        raise SetupError(f"{PACKAGES[name]} is installed but there is no {name} binary on PATH")
    return path


def _write_daemon_json(name: str, path: str, progress: Callable[[str], None]) -> None:
    try:
        config = json.loads(DAEMON_JSON.read_text()) if DAEMON_JSON.exists() else {}
    except (OSError, ValueError) as exc:
        raise SetupError(f"{DAEMON_JSON} cannot be read as JSON ({exc}): fix it, then run setup again") from None
    if not isinstance(config, dict):
        raise SetupError(f"{DAEMON_JSON} is not a JSON object: fix it, then run setup again")
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    temporary = DAEMON_JSON.with_suffix(".json.isol8rt-new")
    temporary.write_text(json.dumps(with_runtime(config, name, path), indent=2) + "\n")
    os.replace(temporary, DAEMON_JSON)  # never a half-written file for dockerd to choke on at its next start
    progress(f"registered {name} ({path}) in {DAEMON_JSON}")


async def _reload(client: DockerClient, name: str) -> None:
    try:
        os.kill(int(DOCKER_PID.read_text().strip()), signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise SetupError(f"could not signal dockerd to reload ({DOCKER_PID}: {exc}): restart it, and {name} "
                         "will be known") from None
    with trio.move_on_after(RELOAD_TIMEOUT):
        while name not in (await client.info()).runtimes:
            await trio.sleep(0.1)
        return
    raise SetupError(f"dockerd did not pick up {name} within {RELOAD_TIMEOUT:g} s of SIGHUP: see its log for "
                     f"why (a {DAEMON_JSON} it refuses?)")


def _free_hybrid_controllers(progress: Callable[[str], None]) -> None:
    for controller in hybrid_v2_controllers():
        target = CGROUP_ROOT / controller
        progress(f"cgroup v2 holds {controller}, which crun refuses on a hybrid host: mounting it as v1 at {target}")
        target.mkdir(exist_ok=True)
        # mount(8), not a syscall wrapper: the standard library has none, and this runs once per machine.
        done = subprocess.run(["mount", "-t", "cgroup", "-o", controller, "cgroup", str(target)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupError(f"could not move the {controller} cgroup controller to v1 ({done.stderr.strip()}), "
                             "so crun cannot start containers here: use the default runtime")


async def _prove(client: DockerClient, name: str, image: str) -> None:
    spec = ContainerSpec(image=image, entrypoint=["/bin/true"], user="65534:65534", labels={"isol8rt.setup": "oci"},
                         host_config=HostConfig(runtime=name, network_mode="none"))
    try:
        container_id = await client.create_container(spec)
        try:
            await client.start_container(container_id)
            code = await client.wait_container(container_id)
        finally:
            await client.remove_container(container_id, force=True)
    except DockerError as exc:
        raise SetupError(f"a container under {name} fails: {exc}") from None
    if code != 0:
        raise SetupError(f"a container under {name} exits {code} running /bin/true")
