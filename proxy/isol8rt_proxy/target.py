"""Where a request wants to go: parsing the request target of a CONNECT or an absolute-form request.

Strict on purpose. The hostname decides the policy, so anything a resolver or an origin might read
differently from us is refused rather than interpreted: userinfo (``http://allowed@evil/``), percent
signs, non-ASCII, empty labels, IPv6 zones. A trailing dot is dropped (``evil.com.`` is ``evil.com`` to
DNS, and must be to the deny list too).
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

# Letters, digits, hyphens and underscores (some real names have them), in non-empty dot-separated labels.
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_HOSTNAME = 253


class BadRequest(ValueError):
    """A request the proxy cannot make sense of (400); the message says why."""


class Target(NamedTuple):
    #: Normalised as the policy sees it: lowercase, no port, no brackets, no trailing dot.
    host: str
    port: int
    #: The origin-form target to send upstream (``/path?query``); empty for CONNECT.
    path: bytes
    #: ``host[:port]`` as the client wrote it, for the Host header.
    authority: bytes


def parse_connect(target: bytes) -> Target:
    """The ``host:port`` of a CONNECT request (a port is required)."""
    host, port = _split_authority(target, default_port=None)
    return Target(host, port, b"", target)


def parse_absolute(target: bytes) -> Target:
    """An absolute-form ``http://host[:port]/path?query`` target, as clients send to a forward proxy."""
    scheme, sep, rest = target.partition(b"://")
    if not sep or scheme.lower() != b"http":
        if target.startswith(b"/") or target == b"*":
            raise BadRequest("absolute URL required")
        raise BadRequest("only http:// URLs are forwarded; use CONNECT for https")
    end = len(rest)
    for delimiter in b"/?#":
        index = rest.find(delimiter)
        if index != -1:
            end = min(end, index)
    authority, path = rest[:end], rest[end:]
    host, port = _split_authority(authority, default_port=80)
    path = path.partition(b"#")[0]  # a fragment never goes on the wire
    if not path.startswith(b"/"):
        path = b"/" + path
    return Target(host, port, path, authority)


def _split_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    try:
        text = authority.decode("ascii").lower()
    except UnicodeDecodeError:
        raise BadRequest("non-ASCII host") from None
    if "@" in text:
        raise BadRequest("credentials in URL not supported")
    if text.startswith("["):
        raw_host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise BadRequest("bad host")
        host = _ipv6_literal(raw_host)
        has_port, port_text = bool(after), after[1:]
    else:
        raw_host, colon, port_text = text.rpartition(":")
        has_port = bool(colon)
        host = _hostname(raw_host if has_port else text)
    if not has_port:
        if default_port is None:
            raise BadRequest("CONNECT target must be host:port")
        return host, default_port
    return host, _port(port_text)


def _hostname(text: str) -> str:
    if text.endswith("."):
        text = text[:-1]
    if not text or len(text) > _MAX_HOSTNAME or not _HOSTNAME.fullmatch(text):
        raise BadRequest("bad host")
    return text


def _ipv6_literal(text: str) -> str:
    if "%" in text:  # a zone would pick an interface; never wanted through a proxy
        raise BadRequest("bad host")
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        raise BadRequest("bad host") from None


def _port(text: str) -> int:
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise BadRequest("bad port")
    return int(text)
