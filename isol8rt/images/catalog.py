"""The images isol8rt builds, bottom up, and the recipe of each.

    debian:bookworm-slim      pulled, or bootstrapped with mmdebstrap (debian.py)
    isol8rt-base:latest       python3 for the agent, its private site, the users    images/base/
    isol8rt-runtime:<rt>      one language runtime each                              images/runtime/<rt>/
    isol8rt:<rt>              the thin agent layer, rebuilt in seconds               images/agent/
    isol8rt-custom:<rt>-<h>   baked packages (bake.py)                               images/bake/<rt>/

Every recipe is read from the ``images`` data directory of this installation, so a checkout and a
wheel build the same images.
"""

from __future__ import annotations

from pathlib import Path

from .._resources import data_dir, package_dir
from ..agent.protocol import PROTOCOL_VERSION
from ..runtimes import (
    LABEL_PROTOCOL,
    LABEL_RUNTIME,
    PROXY_UID,
    RUNTIMES,
    SANDBOX_DIR,
    SANDBOX_GID,
    SANDBOX_UID,
)
from .host import host_ca_bundle
from .recipe import ContextFile, Recipe, directory_files

DEBIAN_REPO = "debian"
DEBIAN_TAG = "bookworm-slim"
DEBIAN_IMAGE = f"{DEBIAN_REPO}:{DEBIAN_TAG}"
BASE_IMAGE = "isol8rt-base:latest"
RUNTIME_REPO = "isol8rt-runtime"
#: Baked packages, `isol8rt build` images and presets.
CUSTOM_REPO = "isol8rt-custom"

#: Where the agent's package lands in the thin layer (its main.py is the image's entrypoint).
AGENT_LIB = "opt/isol8rt/lib"
PROXY_DIR = "opt/isol8rt/proxy"

# The npm-registry downloader every runtime whose recipe pins npm tarballs gets in its context.
_NPM_PINS = "npm-packages.json"
_NPM_FETCHER = "shared/fetch_npm_packages.py"


def recipes_dir() -> Path:
    return data_dir("images")


def runtime_image(runtime: str) -> str:
    return f"{RUNTIME_REPO}:{runtime}"


def agent_image(runtime: str) -> str:
    return RUNTIMES[runtime].image


def base_recipe(debian_id: str) -> Recipe:
    """isol8rt-base, chained to the id of the Debian image it is built on (which isol8rt may not have
    made, so has no hash of ours)."""
    files = directory_files(recipes_dir() / "base")
    files.append(ContextFile("host-ca-certificates.crt", host_ca_bundle()))
    return Recipe.make(
        BASE_IMAGE,
        parent_hash=debian_id,
        files=files,
        buildargs={
            "SANDBOX_UID": str(SANDBOX_UID),
            "SANDBOX_GID": str(SANDBOX_GID),
            "PROXY_UID": str(PROXY_UID),
            "SANDBOX_DIR": SANDBOX_DIR,
        },
    )


def runtime_recipe(runtime: str, base_hash: str) -> Recipe:
    directory = recipes_dir() / "runtime" / runtime
    files = directory_files(directory)
    if (directory / _NPM_PINS).exists():
        fetcher = recipes_dir() / _NPM_FETCHER
        files.append(ContextFile(fetcher.name, fetcher.read_bytes()))
    return Recipe.make(
        runtime_image(runtime), parent_hash=base_hash, files=files, labels={LABEL_RUNTIME: runtime}
    )


def agent_recipe(runtime: str, runtime_hash: str) -> Recipe:
    """The thin layer: the agent's sources from the installed isol8rt package, under an empty
    ``isol8rt/__init__.py`` (the host's imports host-only code), and the egress proxy's files."""
    files = directory_files(recipes_dir() / "agent")
    files.append(ContextFile(f"{AGENT_LIB}/isol8rt/__init__.py", b""))
    agent_dir = package_dir() / "agent"
    for path in sorted(agent_dir.rglob("*.py")):
        if "__pycache__" not in path.parts:
            arcname = f"{AGENT_LIB}/isol8rt/agent/{path.relative_to(agent_dir).as_posix()}"
            files.append(ContextFile(arcname, path.read_bytes()))
    files.extend(_proxy_files())
    return Recipe.make(
        agent_image(runtime),
        parent_hash=runtime_hash,
        files=files,
        buildargs={"RUNTIME": runtime, "SANDBOX_DIR": SANDBOX_DIR},
        labels={LABEL_RUNTIME: runtime, LABEL_PROTOCOL: str(PROTOCOL_VERSION)},
    )


def _proxy_files() -> list[ContextFile]:
    try:
        proxy = data_dir("proxy")
    except FileNotFoundError:  # a checkout before the proxy has files: git keeps no empty directory
        return []
    return directory_files(proxy, prefix=f"{PROXY_DIR}/")
