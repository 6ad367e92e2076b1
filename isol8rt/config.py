"""The configuration file: ``isol8rt.config.json`` in the project directory, else
``~/.isol8rt/config.json``, else the reference system's own ``isol8.config.json`` / ``~/.isol8/config.json``;
the reference system's keys, checked strictly.

Every key is a msgspec Struct field, so the same types give the checking (an unknown key or a bad value
is refused with its JSON path), the defaults, and the JSON Schema that editors use through ``$schema``.

A reference file is read as its users wrote it: the few keys only the reference knows (its auth
settings, ``debug``, audit hooks, a remote-code cache) are set aside and named in the notice the CLI
prints, and its ``audit.logDir`` is our ``audit.destination``. An isol8rt file is checked strictly.

:func:`effective` is what ``isol8rt config`` shows: every value in force, the engine's defaults filled in,
and for each where it came from. :func:`merge_network` is how the command line's ``--allow``/``--deny``
combine with the file's network rules (they narrow or extend them, never discard them).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import InvalidRequest
from .types import AuditConfig, Isol8Options, NetworkFilter, PoolSize, RemoteCodeConfig, SecurityConfig

CONFIG_NAME = "isol8rt.config.json"
USER_CONFIG = Path("~/.isol8rt/config.json")
#: The reference system's files, read when no isol8rt file exists.
REFERENCE_NAME = "isol8.config.json"
REFERENCE_USER_CONFIG = Path("~/.isol8/config.json")
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
    """Containers left waiting. maxContainerAgeMs: an idle session (of `isol8rt serve`, or of `isol8rt run
    --persistent`) is ended once unused this long, and no pooled container is handed out older than this.
    autoPrune false: idle sessions are kept until stopped."""

    auto_prune: bool = True
    #: 30 minutes (the reference's default is an hour): what ``serve --session-ttl`` always defaulted to.
    max_container_age_ms: int = 1_800_000


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
    #: An OCI runtime the Docker daemon knows (e.g. "crun", made usable by `isol8rt setup --oci-runtime crun`);
    #: None: Docker's default.
    oci_runtime: str | None = None


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
    #: Every key the file sets, dotted ("defaults.timeoutMs", "network.whitelist"), as spelled in JSON.
    present: frozenset[str] = frozenset()
    #: For the CLI to print once: a reference file was read, and what of it was set aside.
    notice: str | None = None


#: Keys only the reference system knows: set aside when its file is read (dotted paths).
_REFERENCE_ONLY = ("auth", "prebuiltImages", "debug", "audit.destination", "audit.postLogScript",
                   "audit.trackResources", "remoteCode.enableCache", "remoteCode.cacheTtl")


def find_config(cwd: str | os.PathLike | None = None) -> Path | None:
    """The project's config file, else the user's, else the reference system's (project, then user), else
    None."""
    directory = Path(cwd or os.getcwd())
    for candidate in (directory / CONFIG_NAME, USER_CONFIG.expanduser(), directory / REFERENCE_NAME,
                      REFERENCE_USER_CONFIG.expanduser()):
        if candidate.is_file():
            return candidate
    return None


def is_reference_file(path: Path) -> bool:
    return path.name == REFERENCE_NAME or path == REFERENCE_USER_CONFIG.expanduser()


def from_reference(document: dict) -> tuple[dict, list[str]]:
    """A reference system's config document as isol8rt reads it, and the keys set aside."""
    document = {key: dict(value) if isinstance(value, dict) else value for key, value in document.items()}
    audit = document.get("audit")
    # The reference's destination says how to log ("filesystem"), its logDir where: our destination is where.
    log_dir = isinstance(audit, dict) and "logDir" in audit
    if log_dir and isinstance(audit, dict):
        audit["destination"] = audit.pop("logDir")
    ignored = []
    for dotted in _REFERENCE_ONLY:
        section, _, key = dotted.rpartition(".")
        holder = document.get(section) if section else document
        if dotted == "audit.destination" and log_dir:
            continue
        if isinstance(holder, dict) and key in holder:
            del holder[key]
            ignored.append(dotted)
    return document, ignored


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
    notice = None
    if is_reference_file(found) and data.strip():
        try:
            document = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"{found}: not valid JSON: {exc}") from None
        if isinstance(document, dict):
            document, ignored = from_reference(document)
            data = msgspec.json.encode(document)
        else:
            ignored = []
        notice = (f"no {CONFIG_NAME} found: reading the reference system's {found}"
                  + (f" (ignoring {', '.join(ignored)})" if ignored else ""))
    config = parse_config(data, str(found))
    document = msgspec.json.decode(data) if data.strip() else {}
    present = frozenset(_dotted_keys(document)) if isinstance(document, dict) else frozenset()
    sources = {}
    for field in msgspec.structs.fields(Isol8Config):
        sources[field.name] = "file" if field.encode_name in present else "default"
    return LoadedConfig(config, str(found), sources, present, notice)


def _dotted_keys(document: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in document.items():
        keys.append(prefix + key)
        # Only struct-valued sections nest; poolSize's {clean, dirty} is one value, as is a list.
        if isinstance(value, dict) and (prefix + key) != "poolSize":
            keys += _dotted_keys(value, prefix + key + ".")
    return keys


def options_from_config(config: Isol8Config) -> Isol8Options:
    """Engine options with the file's defaults, network rules, security, audit and pool settings."""
    options = Isol8Options(
        max_concurrent=config.max_concurrent,
        pool_strategy=config.pool_strategy,
        pool_size=config.pool_size,
        security=SecurityConfig(seccomp=config.security.seccomp, profile_path=config.security.custom_profile_path,
                                oci_runtime=config.security.oci_runtime),
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


def merge_network(base: NetworkFilter | None, allow: Sequence[str] = (), deny: Sequence[str] = ()) -> NetworkFilter:
    """The file's network rules with the command line's ``--allow``/``--deny`` on top; nothing of the file's
    is dropped. ``--deny`` adds to the blacklist (deny wins, so it only narrows). ``--allow`` adds to the
    whitelist: on a file whose whitelist is empty (every host allowed) that narrows to the hosts given,
    on a file that has one it extends it. ``allowPrivate`` and ``connectPorts`` are the file's, always."""
    base = base or NetworkFilter()
    return NetworkFilter(whitelist=_union(base.whitelist, allow), blacklist=_union(base.blacklist, deny),
                         allow_private=list(base.allow_private), connect_ports=list(base.connect_ports))


def _union(first, second) -> list:
    out = list(first)
    out += [item for item in second if item not in out]
    return out


def session_idle_s(config: Isol8Config) -> float:
    """How long an unused session lives: ``cleanup.maxContainerAgeMs``, or for ever without ``autoPrune``."""
    return config.cleanup.max_container_age_ms / 1000 if config.cleanup.auto_prune else float("inf")


def effective(loaded: LoadedConfig) -> tuple[dict, dict[str, str]]:
    """Every value in force, as JSON data shaped like the file (camelCase), with what the file leaves out
    filled in from the engine's own defaults (:class:`~isol8rt.types.Isol8Options`); and for each leaf
    (dotted key) where it came from: ``default`` or ``file <path>``. Values with no default (an image
    override, a custom seccomp profile's path) are left out while unset."""
    builtin = Isol8Options()
    view = resolved(loaded.config)
    for field in msgspec.structs.fields(Defaults):
        if getattr(loaded.config.defaults, field.name) is None:
            view["defaults"][field.encode_name] = getattr(builtin, field.name)
    view = _drop_nulls(view)
    origin = f"file {loaded.path}"
    sources = {key: origin if key in loaded.present else "default" for key in _leaves(view)}
    return view, sources


def _drop_nulls(node):
    if isinstance(node, dict):
        return {key: _drop_nulls(value) for key, value in node.items() if value is not None}
    return node


def _leaves(view: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in view.items():
        if isinstance(value, dict) and value and prefix + key != "poolSize":
            keys += _leaves(value, prefix + key + ".")
        else:
            keys.append(prefix + key)
    return keys


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
