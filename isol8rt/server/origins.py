"""Requests a browser was made to send: cross-origin pages and DNS rebinding.

A web page on any site can make a visitor's browser send a ``text/plain`` POST, or open a WebSocket, to
``http://127.0.0.1:3000``: no CORS preflight stops either. Against a server with ``--no-auth`` that is
remote code execution for any web page. Two checks close it:

- **Origin.** Browsers name the page's origin in ``Origin`` on every POST and WebSocket handshake. A
  request whose Origin is neither the server's own (same host and port as ``Host``) nor in the allow
  list is refused. Non-browser clients send no Origin and are not affected.
- **Host.** With DNS rebinding, the attacker's name resolves to 127.0.0.1 and the page is "same-origin"
  with the server, so Origin alone passes it. But the browser then sends the attacker's name in
  ``Host``. A rebinding attack always comes with a DNS name, so a Host that is an IP literal, or
  ``localhost``, is always safe; other names must be in the allow list. This check is on by default
  when authentication is off (that is where rebinding gains anything: with a key, the attacker's page
  has no key to send); an explicit allow list turns it on in every case.

Pure functions of the request's headers; :class:`BrowserGuard` raises the 403 to answer with.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ._http_server import HTTPError

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` (with ``[v6]`` brackets) as (lower-case host without brackets, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return host.rstrip("."), int(port) if port.isdigit() else None


def safe_host(host: str) -> bool:
    """A Host that no DNS rebinding can produce: an IP literal, or localhost (the browser resolves it
    itself)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin_key(origin: str) -> str:
    """An origin as it is compared: ``scheme://host:port``, lower case, with the default port spelled out."""
    parts = urlsplit(origin.strip().lower())
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port or _DEFAULT_PORTS.get(parts.scheme, 0)}"


class BrowserGuard:
    """``allowed_origins``: origins (``https://app.example``) whose pages may call the server, ``*`` for
    any. ``allowed_hosts``: host names the server answers to besides IP literals and localhost, ``*``
    for any; None decides by ``open_access`` (checked only without authentication)."""

    def __init__(self, allowed_origins: list[str] | tuple[str, ...] = (), allowed_hosts: list[str] | None = None,
                 *, open_access: bool = False) -> None:
        self._any_origin = "*" in allowed_origins
        self._origins = frozenset(origin_key(o) for o in allowed_origins if o != "*")
        hosts = allowed_hosts if allowed_hosts is not None else ([] if open_access else ["*"])
        self._any_host = "*" in hosts
        self._hosts = frozenset(split_host(h)[0] for h in hosts if h != "*")

    def check(self, origin: bytes | None, host: bytes | None) -> None:
        """Raise a 403 for a request a browser was led to send; return for everything else."""
        host_text = host.decode("latin-1") if host is not None else None
        if host_text is not None and not self._any_host:
            name, _ = split_host(host_text)
            if name not in self._hosts and not safe_host(name):
                raise HTTPError(403, f"Host not allowed: {name} (this server answers to IP addresses, localhost "
                                     "and the names given with --allow-host)")
        if origin is None or self._any_origin:
            return
        text = origin.decode("latin-1")
        key = origin_key(text)
        if key in self._origins:
            return
        if host_text is not None and text.strip().lower() != "null":
            name, port = split_host(host_text)
            scheme = key.partition("://")[0]
            default = _DEFAULT_PORTS.get("https" if scheme in ("https", "wss") else "http")
            if key == origin_key(f"{scheme}://{f'[{name}]' if ':' in name else name}:{port or default}"):
                return  # same origin: the page came from this server
        raise HTTPError(403, f"Origin not allowed: {text} (start the server with --allow-origin to let pages "
                             "from it call this API)")
