"""The configuration file: ``isol8rt.config.json`` in the project directory, else
``~/.isol8rt/config.json``; the reference system's keys, checked strictly.

Every key is a msgspec Struct field, so the same types give the checking (an unknown key or a bad value
is refused with its JSON path), the defaults, and the JSON Schema that editors use through ``$schema``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import InvalidRequest
from .types import AuditConfig, Isol8Options, NetworkFilter, PoolSize, RemoteCodeConfig, SecurityConfig

CONFIG_NAME = "isol8rt.config.json"
USER_CONFIG = Path("~/.isol8rt/config.json")
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "isol8rt.config.schema.json"


class _Strict(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    pass


class Defaults(_Strict):
    """Engine option defaults (Isol8Options' fields); anything left out keeps the built-in default."""

    timeout_ms: int | None = None
    memory_limit: str | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None
    network: Literal["none", "host", "filtered"] | None = None
    max_output_size: int | None = None
    sandbox_size: str | None = None
    tmp_size: str | None = None
    readonly_root_fs: bool | None = None
    image: str | None = None
    log_network: bool | None = None


class NetworkRules(_Strict):
    whitelist: list[str] = []
    blacklist: list[str] = []
    allow_private: list[str] = []
    connect_ports: list[int] = []


class Cleanup(_Strict):
    auto_prune: bool = True
    max_container_age_ms: int = 3_600_000


class Dependencies(_Strict):
    """Packages `isol8rt setup` bakes into images, per runtime."""

    python: list[str] = []
    node: list[str] = []
    bun: list[str] = []
    deno: list[str] = []
    bash: list[str] = []


class Security(_Strict):
    seccomp: Literal["strict", "unconfined", "custom"] = "strict"
    custom_profile_path: str | None = None


class Audit(_Strict):
    enabled: bool = False
    destination: str = "~/.isol8rt/audit"
    include_code: bool = False
    include_output: bool = False
    retention_days: int = 30


class Isol8Config(_Strict):
    schema: str | None = msgspec.field(default=None, name="$schema")
    max_concurrent: int = 10
    defaults: Defaults = msgspec.field(default_factory=Defaults)
    network: NetworkRules = msgspec.field(default_factory=NetworkRules)
    cleanup: Cleanup = msgspec.field(default_factory=Cleanup)
    dependencies: Dependencies = msgspec.field(default_factory=Dependencies)
    security: Security = msgspec.field(default_factory=Security)
    remote_code: RemoteCodeConfig = msgspec.field(default_factory=RemoteCodeConfig)
    audit: Audit = msgspec.field(default_factory=Audit)
    pool_strategy: Literal["fast", "secure"] = "fast"
    pool_size: int | PoolSize = 1


_DECODER = msgspec.json.Decoder(Isol8Config)


class LoadedConfig(msgspec.Struct):
    config: Isol8Config
    #: The file it came from, or None for the built-in defaults.
    path: str | None
    #: Top-level key -> "file" or "default": where each part of the resolved configuration came from.
    sources: dict[str, str]


def find_config(cwd: str | os.PathLike | None = None) -> Path | None:
    """The project's config file, else the user's, else None."""
    project = Path(cwd or os.getcwd()) / CONFIG_NAME
    if project.is_file():
        return project
    user = USER_CONFIG.expanduser()
    return user if user.is_file() else None


def parse_config(data: bytes | str, origin: str = CONFIG_NAME) -> Isol8Config:
    try:
        config = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        # msgspec names the offending key with its JSON path, e.g. "at `$.defaults.timeoutMs`".
        raise InvalidRequest(f"{origin}: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"{origin}: not valid JSON: {exc}") from None
    _check(config, origin)
    return config


def _check(config: Isol8Config, origin: str) -> None:
    if config.max_concurrent < 1:
        raise InvalidRequest(f"{origin}: maxConcurrent must be at least 1 (at `$.maxConcurrent`)")
    if config.security.seccomp == "custom" and not config.security.custom_profile_path:
        raise InvalidRequest(f"{origin}: security.seccomp is custom but security.customProfilePath is missing")
    if config.remote_code.enabled:
        options_remote = config.remote_code
        if not options_remote.allowed_schemes:
            raise InvalidRequest(f"{origin}: remoteCode.allowedSchemes is empty (at `$.remoteCode.allowedSchemes`)")
    if config.remote_code.max_code_size <= 0:
        raise InvalidRequest(f"{origin}: remoteCode.maxCodeSize must be positive (at `$.remoteCode.maxCodeSize`)")
    if config.audit.retention_days < 1:
        raise InvalidRequest(f"{origin}: audit.retentionDays must be at least 1 (at `$.audit.retentionDays`)")


def load_config(path: str | os.PathLike | None = None, cwd: str | os.PathLike | None = None) -> LoadedConfig:
    """The configuration in force: ``path`` if given, else the first file found, else the defaults."""
    found = Path(path) if path is not None else find_config(cwd)
    if found is None:
        config = Isol8Config()
        return LoadedConfig(config, None, {key: "default" for key in msgspec.structs.asdict(config)})
    try:
        data = found.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"{found}: cannot read the configuration: {exc.strerror}") from None
    config = parse_config(data, str(found))
    present = set(msgspec.json.decode(data)) if data.strip() else set()
    sources = {}
    for field in msgspec.structs.fields(Isol8Config):
        sources[field.name] = "file" if field.encode_name in present else "default"
    return LoadedConfig(config, str(found), sources)


def options_from_config(config: Isol8Config) -> Isol8Options:
    """Engine options with the file's defaults, network rules, security, audit and pool settings."""
    options = Isol8Options(
        max_concurrent=config.max_concurrent,
        pool_strategy=config.pool_strategy,
        pool_size=config.pool_size,
        security=SecurityConfig(seccomp=config.security.seccomp, profile_path=config.security.custom_profile_path),
    )
    for field in msgspec.structs.fields(Defaults):
        value = getattr(config.defaults, field.name)
        if value is not None:
            setattr(options, field.name, value)
    rules = config.network
    if rules.whitelist or rules.blacklist or rules.allow_private or rules.connect_ports:
        options.network_filter = NetworkFilter(whitelist=list(rules.whitelist), blacklist=list(rules.blacklist),
                                               allow_private=list(rules.allow_private),
                                               connect_ports=list(rules.connect_ports))
    if config.remote_code.enabled:
        options.remote_code = config.remote_code
    if config.audit.enabled:
        options.audit = AuditConfig(enabled=True, destination=config.audit.destination,
                                    include_code=config.audit.include_code,
                                    include_output=config.audit.include_output,
                                    retention_days=config.audit.retention_days)
    return options


def resolved(value):
    """``value`` as plain JSON data with every field spelled out, defaults included (what is in force)."""
    if isinstance(value, msgspec.Struct):
        return {field.encode_name: resolved(getattr(value, field.name)) for field in msgspec.structs.fields(value)}
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolved(item) for item in value]
    return value


def json_schema() -> dict:
    """The configuration file's JSON Schema, generated from the types above."""
    schema = _clean_descriptions(msgspec.json.schema(Isol8Config))
    schema["$id"] = "https://isol8rt.dev/schema/isol8rt.config.schema.json"
    schema["title"] = "isol8rt configuration"
    return schema


def _clean_descriptions(node: Any) -> Any:
    """Docstrings dedented the same way whichever msgspec made the schema (0.23 dedents them itself,
    earlier releases kept a docstring's indentation), so the shipped schema matches either."""
    if isinstance(node, dict):
        return {key: inspect.cleandoc(value) if key == "description" and isinstance(value, str)
                else _clean_descriptions(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_clean_descriptions(item) for item in node]
    return node
