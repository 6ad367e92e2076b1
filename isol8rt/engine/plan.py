"""From a request and the engine's options to exactly what the agent will be asked to do.

Pure functions, no I/O: every bad input is refused here with an :class:`~isol8rt.errors.InvalidRequest`
naming the field, before a container is touched.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from ..agent import files as agent_files
from ..agent import protocol
from ..errors import InvalidRequest
from ..runtimes import PROXY_PORT, RUNTIMES, SANDBOX_DIR, RuntimeInfo
from ..types import ExecutionRequest, Isol8Options, file_bytes
from .rich import DISPLAY_ENV, RICH_MAX_BYTES, RICH_OUTPUTS
from .spec import network_policy, parse_size

#: The largest program text accepted (it travels in one frame).
MAX_CODE_BYTES = 16 * 1024 * 1024
MAX_TIMEOUT_MS = 24 * 3600 * 1000
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,16}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Package specs as pip, npm, bun and deno take them; never an option (leading '-') or shell syntax.
_PACKAGE = re.compile(r"^[A-Za-z0-9@][A-Za-z0-9@/._+:=<>!~^*,\[\]-]*$")

#: The environment every run starts from, before the engine's secrets and the request's own variables.
#: The agent puts these over the image's own ENV, and the sandbox's tool directories in front of its PATH.
BASE_ENV: dict[str, str] = {
    "HOME": SANDBOX_DIR,
    "USER": "sandbox",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONUNBUFFERED": "1",
    "PYTHONUSERBASE": f"{SANDBOX_DIR}/.local",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_CACHE_DIR": "1",
    "NPM_CONFIG_PREFIX": f"{SANDBOX_DIR}/.npm-global",
    "NPM_CONFIG_CACHE": "/tmp/.npm",
    "NPM_CONFIG_UPDATE_NOTIFIER": "false",
    "NPM_CONFIG_FUND": "false",
    "NPM_CONFIG_AUDIT": "false",
    "BUN_INSTALL_CACHE_DIR": "/tmp/.bun",
    "DENO_NO_UPDATE_CHECK": "1",
    "NO_COLOR": "1",
    # Node and Bun trust the system's CA store too (it may hold a site's own CA).
    "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt",
}


_PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"

#: Filtered networking: every runtime is pointed at the proxy (the firewall stops whatever is not).
PROXY_ENV: dict[str, str] = {
    "HTTP_PROXY": _PROXY_URL,
    "HTTPS_PROXY": _PROXY_URL,
    "http_proxy": _PROXY_URL,
    "https_proxy": _PROXY_URL,
    "NO_PROXY": "localhost,127.0.0.1,::1",
    "no_proxy": "localhost,127.0.0.1,::1",
    # Node's own fetch and http ignore the variables above unless told (Node 24+); Bun and Deno honour them.
    "NODE_USE_ENV_PROXY": "1",
}


@dataclass
class RunPlan:
    """One process for the agent to run, and the files to put in place before it."""

    argv: list[str]
    env: dict[str, str]
    cwd: str = SANDBOX_DIR
    code: bytes | None = None
    code_path: str | None = None
    stdin: bytes = b""
    timeout_ms: int = 30_000
    max_output: int = 1024 * 1024
    output_paths: list[str] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    #: Run the code in the container's live interpreter of this name (persistent mode).
    session: str | None = None
    network_policy: protocol.NetworkPolicy | None = None
    log_network: bool = False
    #: What all output files together may bring back: the sandbox's size (no real file there is larger).
    max_file_bytes: int = 512 * 1024 * 1024

    def messages(self, op_id: int, *, stdin_open: bool = False) -> list:
        """The frames that start this run: its files (chunked), then the Run itself."""
        messages: list = [
            protocol.PutFile(id=op_id, path=path, data=chunk, offset=offset, last=last)
            for path, data in self.files
            for offset, chunk, last in protocol.chunks(data)
        ]
        messages.append(protocol.Run(
            id=op_id, argv=self.argv, env=self.env, cwd=self.cwd, code=self.code, code_path=self.code_path,
            stdin=self.stdin, stdin_open=stdin_open, timeout_ms=self.timeout_ms, max_output=self.max_output,
            output_paths=self.output_paths, max_file_bytes=self.max_file_bytes, session=self.session,
            network_policy=self.network_policy, log_network=self.log_network,
        ))
        return messages


#: Runtimes whose persistent sessions keep a live interpreter (see isol8rt/agent/core/sessions.py).
SESSION_INTERPRETERS = ("python", "node")

_BASH_STATE = "/tmp/.isol8rt-bash-session"


def _bash_session_wrapper(program: str, restore_cwd: bool, request_env: dict[str, str]) -> str:
    """Run the program as a bash session's next command: with the exported variables and working directory
    the previous run left (this request's own env and workdir win), saved again however this one ends."""
    restore = f'[ -f {_BASH_STATE}/cwd ] && cd "$(cat {_BASH_STATE}/cwd)" 2>/dev/null\n' if restore_cwd else ""
    overrides = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in request_env.items())
    return (
        f"mkdir -p {_BASH_STATE}\n"
        f"[ -f {_BASH_STATE}/env ] && . {_BASH_STATE}/env\n"
        f"{overrides}"
        f"{restore}"
        f"trap 'export -p > {_BASH_STATE}/env; pwd > {_BASH_STATE}/cwd' EXIT\n"
        f". {program}\n"
    )


@dataclass
class ExecutionPlan:
    runtime: RuntimeInfo
    code: RunPlan
    setup: list[RunPlan] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    #: The code run also brings back its rich outputs file (figures, displayed values: rich.py).
    rich: bool = False


def run_env(options: Isol8Options, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(BASE_ENV)
    if options.network == "filtered":
        env.update(PROXY_ENV)
    env.update(options.secrets)
    if extra:
        env.update(extra)
    return env


def program_path(runtime: RuntimeInfo, extension: str | None = None) -> str:
    return f"{SANDBOX_DIR}/main{extension or runtime.extension}"


def program_argv(runtime: RuntimeInfo, path: str) -> list[str]:
    return [part.replace("{file}", path) for part in runtime.command]


def prestart_spec(runtime: RuntimeInfo, options: Isol8Options) -> protocol.Prestart | None:
    """The interpreter a pooled container keeps started for the next plain run of this runtime."""
    if not runtime.prestart:
        return None
    path = program_path(runtime)
    return protocol.Prestart(argv=program_argv(runtime, path), env=run_env(options), cwd=SANDBOX_DIR, code_path=path)


def _check_path(field_name: str, path: str) -> str:
    try:
        agent_files.split_path(SANDBOX_DIR, path)
    except agent_files.PathRefused as exc:
        raise InvalidRequest(f"{field_name}: {exc}") from None
    return path


def resolve_workdir(workdir: str | None) -> str:
    if workdir is None or workdir == "":
        return SANDBOX_DIR
    if "\x00" in workdir:
        raise InvalidRequest("workdir: contains a NUL byte")
    resolved = posixpath.normpath(posixpath.join(SANDBOX_DIR, workdir))
    if resolved != SANDBOX_DIR and not resolved.startswith(SANDBOX_DIR + "/"):
        raise InvalidRequest(f"workdir: {workdir!r} resolves to {resolved}, outside {SANDBOX_DIR}")
    return resolved


#: Memory a sandbox keeps for its processes when files are uploaded into /sandbox (a tmpfs counted in the
#: container's memory): an upload that took all of it would get the agent OOM-killed instead of an error.
_MEMORY_HEADROOM = 64 * 1024 * 1024


def upload_limit_bytes(options: Isol8Options) -> int:
    """The most bytes of files a run (or a session's put_file) may bring into /sandbox."""
    memory = parse_size("memoryLimit", options.memory_limit)
    return max(0, min(parse_size("sandboxSize", options.sandbox_size), memory - _MEMORY_HEADROOM))


def output_file_budget(options: Isol8Options) -> int:
    """The most bytes of output files a run brings back: ``max_file_bytes``, never more than the sandbox
    holds (no real file there is larger)."""
    sandbox = parse_size("sandboxSize", options.sandbox_size)
    if options.max_file_bytes is None:
        return sandbox
    if not isinstance(options.max_file_bytes, int) or options.max_file_bytes < 0:
        raise InvalidRequest(f"maxFileBytes: {options.max_file_bytes!r} must be a number of bytes (0 or more)")
    return min(sandbox, options.max_file_bytes)


def check_env(field_name: str, env: dict[str, str]) -> None:
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise InvalidRequest(f"{field_name}: {name!r} is not a valid environment variable name")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidRequest(f"{field_name}: the value of {name} must be a string without NUL bytes")


def check_packages(packages: list[str]) -> list[str]:
    for package in packages:
        if not isinstance(package, str) or not _PACKAGE.match(package) or len(package) > 200:
            raise InvalidRequest(f"installPackages: {package!r} is not a package name this engine will pass on")
    return sorted(set(packages))


def install_plan(runtime: RuntimeInfo, packages: list[str], env: dict[str, str], timeout_ms: int) -> RunPlan:
    argv = {
        "pip": ["python3", "-m", "pip", "install", "--user", "--no-warn-script-location", "--quiet", "--"],
        "npm": ["npm", "install", "--no-save", "--prefix", SANDBOX_DIR, "--"],
        "bun": ["bun", "add", "--cwd", SANDBOX_DIR],
        "deno": ["deno", "cache", "--"],
    }.get(runtime.installer)
    if argv is None:
        raise InvalidRequest(
            f"installPackages: the {runtime.name} runtime installs nothing at run time; bake packages into an "
            f"image with `isol8rt setup --{runtime.name} {','.join(packages)}`"
        )
    if runtime.installer == "deno":
        packages = [p if ":" in p else f"npm:{p}" for p in packages]
    # The install's time counts against the request's timeout (the engine gives the program what is left):
    # a server's timeout ceiling bounds a whole run, installs included.
    return RunPlan(argv=argv + packages, env=env, timeout_ms=timeout_ms, max_output=64 * 1024)


def plan_execution(request: ExecutionRequest, options: Isol8Options, *, baked: bool = False,
                   session: bool = False) -> ExecutionPlan:
    """Validate ``request`` and turn it into the runs the agent will carry out.

    ``baked`` says the request's packages are already in the image, so nothing is installed. ``session``
    plans for a persistent session: Python and Node code runs in the live interpreter, Bash restores the
    previous run's working directory and exported variables.
    """
    runtime = RUNTIMES.get(request.runtime)
    if runtime is None:
        raise InvalidRequest(f"runtime: {request.runtime!r} is not one of {', '.join(RUNTIMES)}")
    if request.code_url is not None:
        raise InvalidRequest("codeUrl: the engine fetches the code before planning; nothing was fetched")
    if (request.code is None) == (request.cmd is None):
        raise InvalidRequest("give exactly one of code and cmd")
    timeout_ms = request.timeout_ms if request.timeout_ms is not None else options.timeout_ms
    if not isinstance(timeout_ms, int) or not 0 < timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidRequest(f"timeoutMs: {timeout_ms!r} must be between 1 and {MAX_TIMEOUT_MS}")
    check_env("env", request.env)
    env = run_env(options, request.env)
    cwd = resolve_workdir(request.workdir)
    stdin = (request.stdin or "").encode()
    files = []
    for path, content in request.files.items():
        _check_path("files", path)
        try:
            files.append((path, file_bytes(content)))
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"files[{path!r}]: {exc}") from None
    for path in request.output_paths:
        _check_path("outputPaths", path)
    upload_limit = upload_limit_bytes(options)
    total = sum(len(data) for _, data in files)
    if total > upload_limit:
        raise InvalidRequest(f"files: {total} bytes, more than fit in this sandbox ({upload_limit} bytes: its "
                             f"/sandbox size, and its memory, which /sandbox is charged to)")
    max_output = options.max_output_size
    if request.max_output_size is not None:
        if not isinstance(request.max_output_size, int) or request.max_output_size < 1:
            raise InvalidRequest(f"maxOutputSize: {request.max_output_size!r} must be a positive number of bytes")
        max_output = min(max_output, request.max_output_size)
    code_plan = RunPlan(argv=[], env=env, cwd=cwd, stdin=stdin, timeout_ms=timeout_ms,
                        max_output=max_output, output_paths=list(request.output_paths), files=files,
                        max_file_bytes=output_file_budget(options),
                        log_network=options.log_network and options.network == "filtered")
    if request.network_filter is not None:
        if options.network != "filtered":
            raise InvalidRequest("networkFilter: applies only to an engine whose network is 'filtered'")
        code_plan.network_policy = network_policy(request.network_filter)
    if request.cmd is not None:
        if "\x00" in request.cmd:
            raise InvalidRequest("cmd: contains a NUL byte")
        code_plan.argv = ["/bin/sh", "-c", request.cmd]
    else:
        extension = request.file_extension
        if extension is not None:
            extension = extension if extension.startswith(".") else f".{extension}"
            if not _EXTENSION.match(extension):
                raise InvalidRequest(f"fileExtension: {request.file_extension!r} is not a file extension")
        code = request.code.encode()
        if len(code) > MAX_CODE_BYTES:
            raise InvalidRequest(f"code: {len(code)} bytes is more than the {MAX_CODE_BYTES}-byte limit")
        code_plan.code = code
        code_plan.code_path = program_path(runtime, extension)
        code_plan.argv = program_argv(runtime, code_plan.code_path)
        if session and runtime.name in SESSION_INTERPRETERS:
            code_plan.session = runtime.name
            code_plan.code_path = None
            if request.display_last_expression:
                # The driver takes it out of the env the cell sees (interpreters.py).
                code_plan.env = {**code_plan.env, DISPLAY_ENV: "1"}
        elif session and runtime.name == "bash":
            code_plan.argv = ["bash", "-c", _bash_session_wrapper(
                code_plan.code_path, restore_cwd=request.workdir is None, request_env=request.env)]
    if request.display_last_expression and code_plan.session is None:
        raise InvalidRequest("displayLastExpression: applies to persistent Python and Node sessions only "
                             "(a plain run is a script: it shows what it prints)")
    # Python programs may draw figures (the data image's matplotlib backend); a displaying session shows values.
    rich = request.code is not None and (runtime.name == "python" or request.display_last_expression)
    if rich and RICH_OUTPUTS not in request.output_paths:
        code_plan.output_paths.append(RICH_OUTPUTS)
        if not request.output_paths:
            # A run that asked for no files must not make the engine read back a sandbox's worth of them.
            code_plan.max_file_bytes = min(code_plan.max_file_bytes, RICH_MAX_BYTES)
    packages = check_packages(list(request.install_packages))
    setup = []
    if packages and not baked:
        setup.append(install_plan(runtime, packages, env, timeout_ms))
    if request.setup_script:
        setup.append(RunPlan(argv=["/bin/bash", "-c", request.setup_script], env=env, timeout_ms=timeout_ms,
                             max_output=options.max_output_size))
    for step in setup:
        step.network_policy = code_plan.network_policy
    return ExecutionPlan(runtime=runtime, code=code_plan, setup=setup, packages=packages,
                         rich=RICH_OUTPUTS in code_plan.output_paths and RICH_OUTPUTS not in request.output_paths)
