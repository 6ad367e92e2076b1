"""Fetching a program from a URL, with the reference system's protections and then some.

Off unless the configuration enables it. https only (http needs both the configuration and the request to
allow it). The host must pass the allowed/blocked lists, and every address it resolves to is checked
before connecting, and connected to as checked: loopback, private, link-local (cloud metadata), CGNAT,
ULA and the like are refused, again after every redirect. The body is capped while it is read, checked
against a sha256 when one is given (or required), and must be UTF-8 text without NUL bytes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import ssl
import urllib.parse

import h11
import trio

from .errors import InvalidRequest
from .types import RemoteCodeConfig

MAX_REDIRECTS = 5
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


class RemoteCodeError(InvalidRequest):
    """The program could not be fetched, or was refused; the message says which and why."""


def github_url(spec: str) -> str:
    """``owner/repo/ref/path/to/file`` -> its raw.githubusercontent.com URL."""
    parts = spec.strip("/").split("/")
    if len(parts) < 4 or not all(parts):
        raise InvalidRequest(f"--github {spec!r}: expected owner/repo/ref/path")
    return "https://raw.githubusercontent.com/" + "/".join(urllib.parse.quote(part) for part in parts)


def gist_url(spec: str) -> str:
    """``gistId/file.ext`` -> its gist.githubusercontent.com raw URL."""
    gist, _, name = spec.strip("/").partition("/")
    if not gist or not name or "/" in name:
        raise InvalidRequest(f"--gist {spec!r}: expected gistId/file.ext")
    return f"https://gist.githubusercontent.com/raw/{urllib.parse.quote(gist)}/{urllib.parse.quote(name)}"


# Python counts the documentation ranges as private; some sites' intercepting proxies answer DNS with them
# (this project's CI machines do), so, as in the egress proxy, they count as public here.
_DOCUMENTATION = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                         "2001:db8::/32"))


def _private_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public internet address, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in _DOCUMENTATION):
        return None
    for check, kind in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                        ("is_unspecified", "unspecified"), ("is_reserved", "reserved")):
        if getattr(address, check):
            return kind
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return "CGNAT"
    if address.is_private:
        return "private"
    return None


class _Checker:
    def __init__(self, policy: RemoteCodeConfig, allow_insecure: bool) -> None:
        self.policy = policy
        self.allow_insecure = allow_insecure
        self.allowed = [re.compile(p, re.IGNORECASE) for p in policy.allowed_hosts]
        self.blocked = [re.compile(p, re.IGNORECASE) for p in policy.blocked_hosts]
        self.private = [ipaddress.ip_network(c, strict=False) for c in policy.allow_private]

    def check_url(self, url: str) -> urllib.parse.SplitResult:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http"):
            raise RemoteCodeError(f"codeUrl {url!r}: only http(s) URLs can be fetched")
        if parts.scheme == "http" and not ("http" in self.policy.allowed_schemes and self.allow_insecure):
            raise RemoteCodeError(f"codeUrl {url!r}: http is refused; use https (or allow http in remoteCode."
                                  "allowedSchemes and pass allowInsecureCodeUrl)")
        if parts.scheme not in self.policy.allowed_schemes:
            raise RemoteCodeError(f"codeUrl {url!r}: the {parts.scheme} scheme is not allowed")
        host = (parts.hostname or "").lower()
        if not host:
            raise RemoteCodeError(f"codeUrl {url!r}: no host")
        if any(p.search(host) for p in self.blocked):
            raise RemoteCodeError(f"codeUrl {url!r}: host {host} is blocked")
        if self.allowed and not any(p.search(host) for p in self.allowed):
            raise RemoteCodeError(f"codeUrl {url!r}: host {host} is not in remoteCode.allowedHosts")
        return parts

    async def addresses(self, host: str, port: int) -> list[str]:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        except OSError as exc:
            raise RemoteCodeError(f"cannot resolve {host}: {exc}") from None
        allowed, refused = [], []
        for family, _, _, _, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0].split("%")[0])
            kind = _private_kind(address)
            if kind is not None and not any(address in network for network in self.private):
                refused.append(f"{address} ({kind})")
            elif sockaddr[0] not in allowed:
                allowed.append(sockaddr[0])
        if not allowed:
            raise RemoteCodeError(f"{host} resolves only to addresses that are not public: {', '.join(refused)}")
        return allowed


async def fetch_code(url: str, policy: RemoteCodeConfig | None, *, expected_sha256: str | None = None,
                     allow_insecure: bool = False, ssl_context: ssl.SSLContext | None = None) -> str:
    """The program at ``url`` as text; RemoteCodeError (an InvalidRequest) when refused or unreachable."""
    if policy is None or not policy.enabled:
        raise RemoteCodeError("fetching code from a URL is disabled: enable remoteCode in isol8rt.config.json")
    if expected_sha256 is not None and not _HEX64.match(expected_sha256):
        raise RemoteCodeError(f"codeHash {expected_sha256!r} is not a sha256 in hex")
    if expected_sha256 is None and policy.require_hash:
        raise RemoteCodeError("remoteCode.requireHash is set: give the code's sha256 (--hash / codeHash)")
    checker = _Checker(policy, allow_insecure)
    context = ssl_context or ssl.create_default_context()
    with trio.move_on_after(policy.fetch_timeout_ms / 1000) as scope:
        body = await _follow(url, checker, context, policy.max_code_size)
    if scope.cancelled_caught:
        raise RemoteCodeError(f"fetching {url} took longer than {policy.fetch_timeout_ms} ms")
    digest = hashlib.sha256(body).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise RemoteCodeError(f"{url}: sha256 mismatch: expected {expected_sha256.lower()}, got {digest}")
    if b"\x00" in body:
        raise RemoteCodeError(f"{url}: the code contains NUL bytes; only text programs are run")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteCodeError(f"{url}: the code is not UTF-8 text") from None


async def _follow(url: str, checker: _Checker, context: ssl.SSLContext, limit: int) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        parts = checker.check_url(url)
        status, location, body = await _get(parts, checker, context, limit)
        if status in (301, 302, 303, 307, 308):
            if not location:
                raise RemoteCodeError(f"{url}: redirect without a Location")
            url = urllib.parse.urljoin(url, location)
            continue
        if status != 200:
            raise RemoteCodeError(f"{url}: the server answered {status}")
        return body
    raise RemoteCodeError(f"{url}: more than {MAX_REDIRECTS} redirects")


async def _get(parts: urllib.parse.SplitResult, checker: _Checker, context: ssl.SSLContext,
               limit: int) -> tuple[int, str | None, bytes]:
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    stream = None
    errors = []
    for address in await checker.addresses(host, port):
        try:
            stream = await trio.open_tcp_stream(address, port)  # the address checked, not the name again
            break
        except OSError as exc:
            errors.append(f"{address}: {exc}")
    if stream is None:
        raise RemoteCodeError(f"cannot connect to {host}:{port}: {'; '.join(errors)}")
    if parts.scheme == "https":
        stream = trio.SSLStream(stream, context, server_hostname=host, https_compatible=True)
    async with stream:
        connection = h11.Connection(h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request = h11.Request(method="GET", target=target, headers=[
            ("Host", parts.netloc.rsplit("@", 1)[-1]), ("User-Agent", "isol8rt"), ("Accept", "*/*"),
            ("Connection", "close")])
        try:
            await stream.send_all(connection.send(request) + connection.send(h11.EndOfMessage()))
            status, location, body = 0, None, bytearray()
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    location = dict(event.headers).get(b"location", b"").decode("latin-1") or None
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > limit:
                        raise RemoteCodeError(f"{parts.geturl()}: more than the {limit}-byte remoteCode.maxCodeSize")
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return status, location, bytes(body)
        except (h11.RemoteProtocolError, trio.BrokenResourceError, ssl.SSLError, OSError) as exc:
            raise RemoteCodeError(f"fetching {parts.geturl()} failed: {exc}") from None
