"""Where the daemon is, read the way the docker CLI reads it, so that a user's settings just work.

The order is the CLI's: an explicit host; ``$DOCKER_HOST`` (with ``$DOCKER_TLS_VERIFY``, ``$DOCKER_TLS``
and ``$DOCKER_CERT_PATH``); the context named by ``$DOCKER_CONTEXT``; the ``currentContext`` of the
config file (``$DOCKER_CONFIG/config.json``, by default ``~/.docker/config.json``); the local socket.

Nothing here opens a connection: it reads the environment and the context store and returns an
:class:`Endpoint`, which :mod:`._transport` dials. Every error is a :class:`DockerError` whose one line
names the setting that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import DockerError

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_TCP_PORT = 2375
DEFAULT_TLS_PORT = 2376

#: The command that opens a shell on an ``ssh://`` host, as a shell-quoted string (like git's
#: ``GIT_SSH_COMMAND``): how a test or a user passes ``-F config`` or ``-i key`` without touching
#: ``~/.ssh``. Default ``ssh``.
SSH_COMMAND_VARIABLE = "ISOL8RT_SSH_COMMAND"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """TLS to a ``tcp://`` daemon. ``verify``: check the daemon's certificate against ``ca`` (or the
    system's roots when there is none) and its name; ``cert``/``key``: this client's certificate."""

    verify: bool
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca if self.verify else None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert:
            try:
                context.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                raise DockerError(f"cannot load the client certificate {self.cert} (key {self.key}): {exc}") from None
        return context


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A daemon: a unix socket path, a TCP host and port (with TLS or not), or an ssh command whose
    stdio is the daemon's socket (``docker system dial-stdio`` on the far side, as the CLI does)."""

    url: str
    unix_path: str | None = None
    tcp_host: str | None = None
    tcp_port: int = DEFAULT_TCP_PORT
    tls: TLSConfig | None = None
    ssh_argv: tuple[str, ...] | None = None
    #: The docker context this endpoint came from, for error messages.
    context: str | None = None

    @property
    def host_header(self) -> bytes:
        # HTTP/1.1 needs a Host; on a socket that is not TCP any name does, and "docker" is what the
        # CLI sent for years.
        if self.tcp_host is None:
            return b"docker"
        return f"{self.tcp_host}:{self.tcp_port}".encode("idna")

    @property
    def where(self) -> str:
        """How error messages name the endpoint."""
        where = self.unix_path if self.unix_path is not None else self.url
        return f"{where} (context {self.context})" if self.context else where


def parse_docker_host(
    host: str | None = None, environ: Mapping[str, str] | None = None, *, config_dir: str | None = None
) -> Endpoint:
    """The endpoint for ``host``, or for the environment and the docker CLI's context store.

    Raises :class:`DockerError` for what this client cannot speak (named pipes, ``https://``), a
    malformed URL, a context that does not exist, or TLS files that are missing.
    """
    environ = os.environ if environ is None else environ
    config = Path(config_dir or environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    if host:
        return _from_url(host, environ, tls=_tls_from_environ(environ, config))
    if environ.get("DOCKER_HOST"):
        return _from_url(environ["DOCKER_HOST"], environ, tls=_tls_from_environ(environ, config))
    name, origin = environ.get("DOCKER_CONTEXT"), "DOCKER_CONTEXT"
    if not name:
        name, origin = _current_context(config), f"currentContext in {config / 'config.json'}"
    if name and name != "default":
        return _from_context(name, origin, config, environ)
    return _from_url(DEFAULT_HOST, environ, tls=None)


def _from_url(url: str, environ: Mapping[str, str], *, tls: TLSConfig | None, context: str | None = None) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path:
            raise DockerError(f"DOCKER_HOST {url!r} names no socket path (expected unix:///path/to/docker.sock)")
        return Endpoint(url, unix_path=path, context=context)
    if parts.scheme in ("tcp", "http"):
        if not parts.hostname:
            raise DockerError(f"DOCKER_HOST {url!r} names no host (expected tcp://host:port)")
        try:
            port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT)
        except ValueError:
            raise DockerError(f"DOCKER_HOST {url!r} has a port that is not a number") from None
        return Endpoint(url, tcp_host=parts.hostname, tcp_port=port, tls=tls, context=context)
    if parts.scheme == "ssh":
        return Endpoint(url, ssh_argv=_ssh_argv(url, environ), context=context)
    if parts.scheme in ("https", "npipe"):
        raise DockerError(
            f"DOCKER_HOST={url} is not supported: isol8rt talks to Docker over unix:///path, tcp://host:port "
            "(with DOCKER_TLS_VERIFY for TLS) or ssh://user@host"
        )
    raise DockerError(
        f"DOCKER_HOST {url!r} is not a Docker host URL (expected unix:///path, tcp://host:port or ssh://user@host)"
    )


def _tls_from_environ(environ: Mapping[str, str], config: Path) -> TLSConfig | None:
    # The CLI's rules: DOCKER_TLS_VERIFY (any non-empty value) verifies; DOCKER_TLS alone encrypts
    # without verifying; the files are ca.pem, cert.pem and key.pem in DOCKER_CERT_PATH or ~/.docker.
    verify = bool(environ.get("DOCKER_TLS_VERIFY"))
    if not verify and not environ.get("DOCKER_TLS"):
        return None
    directory = Path(environ.get("DOCKER_CERT_PATH") or config)
    ca, cert, key = (directory / name for name in ("ca.pem", "cert.pem", "key.pem"))
    if verify and not ca.is_file():
        raise DockerError(
            f"DOCKER_TLS_VERIFY is set but {ca} does not exist: set DOCKER_CERT_PATH to the directory "
            "that holds ca.pem, cert.pem and key.pem"
        )
    if cert.is_file() != key.is_file():
        have, missing = (cert, key) if cert.is_file() else (key, cert)
        raise DockerError(f"{have} is there but {missing} is not: a client certificate needs both")
    return TLSConfig(verify, str(ca) if verify else None, *((str(cert), str(key)) if cert.is_file() else (None, None)))


def _current_context(config: Path) -> str | None:
    try:
        document = json.loads((config / "config.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DockerError(f"cannot read {config / 'config.json'}: {exc}") from None
    name = document.get("currentContext") if isinstance(document, dict) else None
    return name if isinstance(name, str) and name else None


def _from_context(name: str, origin: str, config: Path, environ: Mapping[str, str]) -> Endpoint:
    # The CLI's store: contexts/meta/<sha256 of the name>/meta.json, and the TLS files of its docker
    # endpoint in contexts/tls/<sha256 of the name>/docker/.
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta_path = config / "contexts" / "meta" / digest / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        endpoint = meta["Endpoints"]["docker"]
        url = endpoint["Host"]
    except FileNotFoundError:
        raise DockerError(
            f"Docker context {name!r} (from {origin}) does not exist: `docker context ls` lists the ones there are"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DockerError(f"Docker context {name!r} has an unreadable {meta_path}: {exc!r}") from None
    tls_dir = config / "contexts" / "tls" / digest / "docker"
    files = {part: tls_dir / f"{part}.pem" for part in ("ca", "cert", "key")}
    skip_verify = bool(endpoint.get("SkipTLSVerify"))
    tls = None
    if any(path.is_file() for path in files.values()) or skip_verify:
        tls = TLSConfig(
            verify=not skip_verify,
            ca=str(files["ca"]) if files["ca"].is_file() and not skip_verify else None,
            cert=str(files["cert"]) if files["cert"].is_file() else None,
            key=str(files["key"]) if files["key"].is_file() else None,
        )
    return _from_url(url, environ, tls=tls, context=name)


def _ssh_argv(url: str, environ: Mapping[str, str]) -> tuple[str, ...]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise DockerError(f"DOCKER_HOST {url!r} names no host (expected ssh://user@host)")
    if parts.path not in ("", "/") or parts.query or parts.password:
        raise DockerError(f"DOCKER_HOST {url!r}: an ssh:// host takes only a user, a host and a port")
    try:
        port = parts.port
    except ValueError:
        raise DockerError(f"DOCKER_HOST {url!r} has a port that is not a number") from None
    command = shlex.split(environ.get(SSH_COMMAND_VARIABLE) or "ssh")
    # BatchMode: a password or host-key prompt would wait forever on a stdin nobody types into; it
    # fails instead, and ssh says why on stderr.
    argv = [*command, "-o", "ConnectTimeout=30", "-o", "BatchMode=yes", "-T"]
    if parts.username:
        argv += ["-l", parts.username]
    if port:
        argv += ["-p", str(port)]
    return (*argv, "--", parts.hostname, "docker", "system", "dial-stdio")
