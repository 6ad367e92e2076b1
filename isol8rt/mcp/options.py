"""The MCP server's engine options: the configuration file's, then the command line's on top.

Kept apart from argument parsing so that anything holding a loaded configuration and a few overrides (a
test, a launcher, another front end) builds the same options ``isol8rt mcp`` would.
"""

from __future__ import annotations

import msgspec

from ..config import Isol8Config, load_config, options_from_config
from ..types import Isol8Options, NetworkFilter, NetworkMode

#: Output cap per stream unless the configuration or --max-output says otherwise: a model's context is
#: the reader, and 1 MiB of output would swamp it.
DEFAULT_MAX_OUTPUT = 100_000


class Overrides(msgspec.Struct, kw_only=True):
    """What the command line may set; None (or empty) leaves the configuration's value."""

    config: str | None = None
    persistent: bool = False
    timeout_ms: int | None = None
    memory: str | None = None
    cpu: float | None = None
    pids_limit: int | None = None
    max_output: int | None = None
    net: NetworkMode | None = None
    allow: list[str] = []
    deny: list[str] = []
    image: str | None = None
    secrets: dict[str, str] = {}
    pool_size: int | None = None
    debug: bool = False


def build_options(overrides: Overrides, config: Isol8Config | None = None) -> Isol8Options:
    """Engine options for the MCP server: ``config`` (default: the file found as ``isol8rt config`` finds
    it, or ``overrides.config``), then ``overrides``."""
    if config is None:
        config = load_config(overrides.config).config
    options = options_from_config(config)
    if config.defaults.max_output_size is None:
        options.max_output_size = DEFAULT_MAX_OUTPUT
    fields = {
        "timeout_ms": overrides.timeout_ms,
        "memory_limit": overrides.memory,
        "cpu_limit": overrides.cpu,
        "pids_limit": overrides.pids_limit,
        "max_output_size": overrides.max_output,
        "network": overrides.net,
        "image": overrides.image,
        "pool_size": overrides.pool_size,
    }
    for name, value in fields.items():
        if value is not None:
            setattr(options, name, value)
    if overrides.allow or overrides.deny:
        if overrides.net is None:
            options.network = "filtered"
        options.network_filter = NetworkFilter(whitelist=list(overrides.allow), blacklist=list(overrides.deny))
    if overrides.secrets:
        options.secrets = {**options.secrets, **overrides.secrets}
    if overrides.debug:
        options.debug = True
    return options
