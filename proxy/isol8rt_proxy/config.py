"""The command line: where to listen, the limits, and the policy in force until the first policy line.

    main.py [--listen HOST:PORT] [--run ID]
            [--allow REGEX]... [--deny REGEX]... [--allow-private CIDR]... [--connect-port N]...
            [--connect-timeout S] [--idle-timeout S] [--header-timeout S]
            [--max-header-bytes N] [--max-connections N]

The policy flags mean exactly what the fields of a stdin ``policy`` line mean (see ``isol8rt.agent.proxy_protocol``); any
``--connect-port`` replaces the default ports (443, 80) rather than adding to them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import msgspec

from isol8rt.agent.proxy_protocol import DEFAULT_CONNECT_PORTS, SetPolicy


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: the kernel picks; the "listening" line says which
    connect_timeout: float = 10.0  # resolving and connecting to an origin, all addresses together
    idle_timeout: float = 60.0  # a tunnel or exchange with no byte either way; a kept-alive wait
    header_timeout: float = 10.0  # a request head, from accept (or its first byte when kept alive)
    max_header_bytes: int = 65536  # request and response heads alike
    max_connections: int = 256  # client connections at once; more are closed as soon as accepted


def parse_args(argv: Sequence[str]) -> tuple[Settings, SetPolicy]:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="isol8rt-proxy", description="isol8rt's egress filtering proxy")
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", type=_listen_address)
    parser.add_argument("--run", default=None, help="run id for log lines until a policy line sets one")
    parser.add_argument("--allow", action="append", default=[], metavar="REGEX")
    parser.add_argument("--deny", action="append", default=[], metavar="REGEX")
    parser.add_argument("--allow-private", action="append", default=[], metavar="CIDR")
    parser.add_argument("--connect-port", action="append", type=int, metavar="PORT")
    parser.add_argument("--connect-timeout", type=_positive, default=defaults.connect_timeout)
    parser.add_argument("--idle-timeout", type=_positive, default=defaults.idle_timeout)
    parser.add_argument("--header-timeout", type=_positive, default=defaults.header_timeout)
    parser.add_argument("--max-header-bytes", type=int, default=defaults.max_header_bytes)
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections)
    args = parser.parse_args(argv)
    host, port = args.listen
    settings = Settings(
        listen_host=host,
        listen_port=port,
        connect_timeout=args.connect_timeout,
        idle_timeout=args.idle_timeout,
        header_timeout=args.header_timeout,
        max_header_bytes=args.max_header_bytes,
        max_connections=args.max_connections,
    )
    policy = SetPolicy(
        run=args.run,
        allow=args.allow,
        deny=args.deny,
        allow_private=args.allow_private,
        connect_ports=args.connect_port or list(DEFAULT_CONNECT_PORTS),
    )
    return settings, policy


def _listen_address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value
