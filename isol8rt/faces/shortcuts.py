"""Keyword shortcuts: ``execute(code=..., runtime=...)`` and ``Sandbox(memory_limit=...)`` instead of building
an ExecutionRequest or Isol8Options by hand.

The TypedDicts repeat the Structs' fields so that type checkers and editors know every keyword; a test keeps
them equal to the Structs.
"""

from __future__ import annotations

from typing import TypedDict

from ..runtimes import Runtime
from ..types import (
    AuditConfig,
    ExecutionRequest,
    FileContent,
    Isol8Options,
    Mode,
    NetworkFilter,
    NetworkMode,
    PoolSize,
    PoolStrategy,
    RemoteCodeConfig,
    SecurityConfig,
)


class RequestFields(TypedDict, total=False):
    """The fields of :class:`~isol8rt.ExecutionRequest`, as keywords."""

    runtime: Runtime
    code: str | None
    cmd: str | None
    code_url: str | None
    code_hash: str | None
    allow_insecure_code_url: bool
    timeout_ms: int | None
    env: dict[str, str]
    file_extension: str | None
    stdin: str | None
    files: dict[str, FileContent]
    output_paths: list[str]
    install_packages: list[str]
    setup_script: str | None
    metadata: dict[str, str]
    workdir: str | None
    network_filter: NetworkFilter | None
    max_output_size: int | None
    display_last_expression: bool


class OptionFields(TypedDict, total=False):
    """The fields of :class:`~isol8rt.Isol8Options`, as keywords."""

    mode: Mode
    network: NetworkMode
    network_filter: NetworkFilter | None
    cpu_limit: float
    memory_limit: str
    pids_limit: int
    readonly_root_fs: bool
    max_output_size: int
    max_file_bytes: int | None
    secrets: dict[str, str]
    timeout_ms: int
    image: str | None
    sandbox_size: str
    tmp_size: str
    debug: bool
    persist: bool
    log_network: bool
    security: SecurityConfig
    audit: AuditConfig | None
    pool_strategy: PoolStrategy
    pool_size: int | PoolSize
    max_concurrent: int
    extra_hosts: dict[str, str]
    remote_code: RemoteCodeConfig | None
    fork_server: bool


def make_request(request: ExecutionRequest | str | None, fields: RequestFields) -> ExecutionRequest:
    """An ExecutionRequest from one, from a program's text (``execute("print(1)")``), or from keywords."""
    if isinstance(request, ExecutionRequest):
        if fields:
            raise TypeError("pass either an ExecutionRequest or request keywords, not both")
        return request
    if isinstance(request, str):
        if "code" in fields:
            raise TypeError("the program is given twice: positionally and as code=")
        with_code: RequestFields = {**fields, "code": request}
        return ExecutionRequest(**with_code)
    if request is not None:
        raise TypeError(f"expected an ExecutionRequest or the program's text, not {type(request).__name__}")
    return ExecutionRequest(**fields)


def make_options(options: Isol8Options | None, fields: OptionFields) -> Isol8Options:
    if options is not None:
        if fields:
            raise TypeError("pass either an Isol8Options or option keywords, not both")
        if not isinstance(options, Isol8Options):
            raise TypeError(f"expected Isol8Options, not {type(options).__name__}")
        return options
    return Isol8Options(**fields)
