"""Per-runtime facts: which image, how a program file is named and run, which package installer.

Everything that differs between Python, Node, Bun, Deno and Bash is here, so the engine, the CLI and the
image builder agree.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Runtime = Literal["python", "node", "bun", "deno", "bash"]

RUNTIME_NAMES: tuple[Runtime, ...] = ("python", "node", "bun", "deno", "bash")

#: Where programs, files and installed packages live inside every sandbox.
SANDBOX_DIR = "/sandbox"

#: The unprivileged account user code runs as, and the one the filtering proxy runs as.
SANDBOX_UID = 1000
SANDBOX_GID = 1000
PROXY_UID = 1001

#: Where the filtering proxy listens inside a filtered-network sandbox (loopback only).
PROXY_PORT = 3128

#: Every image and container isol8rt makes carries these labels, so strays can always be found.
LABEL_MANAGED_BY = "isol8rt.managed-by"
LABEL_ENGINE = "isol8rt.engine"
#: The node (an `isol8rt serve`, or a machine's CLI and library) whose engine made the container.
LABEL_NODE = "isol8rt.node"
LABEL_RUNTIME = "isol8rt.runtime"
LABEL_CONTENT_HASH = "isol8rt.content-hash"
LABEL_PACKAGES = "isol8rt.packages"
LABEL_PROTOCOL = "isol8rt.protocol"
LABEL_SESSION = "isol8rt.session"
#: A preset image's name (isol8rt/images/presets.py).
LABEL_PRESET = "isol8rt.preset"
#: On a runtime image: the JSON list of modules its fork server imports (see Isol8Options.fork_server).
LABEL_PRELOAD = "isol8rt.preload"
MANAGED_BY = "isol8rt"


class RuntimeInfo(msgspec.Struct, frozen=True):
    name: Runtime
    #: The image tag `isol8rt setup` builds for this runtime.
    image: str
    #: The extension a program file gets when the request names none.
    extension: str
    #: argv to run a program file; "{file}" is replaced by its path.
    command: tuple[str, ...]
    #: The package manager `install_packages` uses ("" when packages must be baked with setup).
    installer: str
    #: Whether a pooled container keeps this runtime's interpreter started ahead of the next run. Only
    #: where tests prove user code cannot tell the difference (see tests/engine/test_prestart.py).
    prestart: bool = False


RUNTIMES: dict[str, RuntimeInfo] = {
    "python": RuntimeInfo("python", "isol8rt:python", ".py", ("python3", "{file}"), "pip", prestart=True),
    "node": RuntimeInfo("node", "isol8rt:node", ".mjs", ("node", "{file}"), "npm", prestart=True),
    "bun": RuntimeInfo("bun", "isol8rt:bun", ".ts", ("bun", "run", "{file}"), "bun"),
    "deno": RuntimeInfo("deno", "isol8rt:deno", ".mts", ("deno", "run", "-A", "--no-prompt", "{file}"), "deno",
                        prestart=True),
    "bash": RuntimeInfo("bash", "isol8rt:bash", ".sh", ("bash", "{file}"), "", prestart=True),
}

#: File extension -> runtime, for `isol8rt run script.ext`. `.ts` is Bun's, `.mts` Deno's, as in the seed.
EXTENSIONS: dict[str, Runtime] = {
    ".py": "python",
    ".js": "node",
    ".mjs": "node",
    ".cjs": "node",
    ".ts": "bun",
    ".mts": "deno",
    ".sh": "bash",
}


def runtime_info(name: str) -> RuntimeInfo:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIME_NAMES)}") from None
