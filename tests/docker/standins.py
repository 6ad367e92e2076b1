"""Stand-ins for a remote Docker host, both in front of this machine's daemon.

- A TLS front, as a remote ``tcp://host:2376`` with ``--tlsverify`` is: mutual TLS with certificates made
  by ``openssl`` for the test, forwarding each connection, hijacked ones included, to the daemon's unix
  socket. The client under test speaks real TLS to it; what it checks of the client's certificate is what
  dockerd checks (signed by the CA it trusts).
- An ``ssh`` (for ``ISOL8RT_SSH_COMMAND``) that records its arguments and runs the far side's command
  (``docker system dial-stdio``) here: there is no sshd on a test machine."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import trio

DAEMON_SOCKET = "/var/run/docker.sock"


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _authority(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}-key.pem", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", key, "-out", cert)
    return key, cert


def _issue(directory: Path, name: str, authority: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, request, cert = (directory / f"{name}{suffix}" for suffix in ("-key.pem", ".csr", ".pem"))
    extfile = directory / f"{name}.ext"
    extfile.write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
             "-keyout", key, "-out", request)
    _openssl("x509", "-req", "-in", request, "-CA", authority[1], "-CAkey", authority[0], "-CAcreateserial",
             "-days", "2", "-extfile", extfile, "-out", cert)
    return key, cert


@dataclass(frozen=True)
class Certificates:
    """``client/``: a DOCKER_CERT_PATH the daemon accepts; ``stranger/``: the same names, signed by a CA
    the daemon does not know; ``doubter/``: a good client certificate, but a CA that did not sign the
    daemon's."""

    server_cert: Path
    server_key: Path
    ca: Path
    client: Path
    stranger: Path
    doubter: Path


def make_certificates(directory: Path, address: str = "127.0.0.1") -> Certificates:
    """``address``: the IP the daemon's certificate is for (besides the name localhost)."""
    ca = _authority(directory, "ca")
    other = _authority(directory, "other-ca")
    server_key, server_cert = _issue(directory, "daemon", ca,
                                     f"subjectAltName=IP:{address},DNS:localhost\nextendedKeyUsage=serverAuth\n")
    client_ext = "extendedKeyUsage=clientAuth\n"
    paths = {}
    for name, signer, trusted in (("client", ca, ca), ("stranger", other, ca), ("doubter", ca, other)):
        folder = directory / name
        folder.mkdir()
        key, cert = _issue(directory, f"{name}-cert", signer, client_ext)
        (folder / "key.pem").write_bytes(key.read_bytes())
        (folder / "cert.pem").write_bytes(cert.read_bytes())
        (folder / "ca.pem").write_bytes(trusted[1].read_bytes())
        paths[name] = folder
    return Certificates(server_cert, server_key, ca[1], paths["client"], paths["stranger"], paths["doubter"])


async def _pump(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream, half_close) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await half_close()


async def serve_tls_front(certificates: Certificates, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Listen on 127.0.0.1 (a free port, given to ``task_status``) until cancelled."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certificates.ca))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(certificates.server_cert), str(certificates.server_key))

    async def handle(tcp: trio.SocketStream) -> None:
        tls = trio.SSLStream(tcp, context, server_side=True, https_compatible=True)
        try:
            await tls.do_handshake()
            daemon = await trio.open_unix_socket(DAEMON_SOCKET)
        except (trio.BrokenResourceError, OSError):
            # Send the TLS alert that says why, as dockerd (Go's TLS) does before it hangs up; trio
            # leaves it in its outgoing buffer when a handshake fails.
            with contextlib.suppress(trio.BrokenResourceError, OSError):
                await tcp.send_all(tls._outgoing.read())
            await trio.aclose_forcefully(tcp)
            return
        async with daemon, tls:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, tls, daemon, daemon.send_eof)
                nursery.start_soon(_pump, daemon, tls, tls.aclose)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


FAKE_SSH = """#!/bin/sh
# Records its arguments, then runs what follows "--" and the host name, as sshd would on the host.
echo "$@" > "{log}"
while [ "$1" != "--" ]; do shift; done
shift
[ "$1" = "{host}" ] || {{ echo "ssh: Could not resolve hostname $1: Name or service not known" >&2; exit 255; }}
shift
exec env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH "$@"   # the far side has its own environment
"""


def write_fake_ssh(directory: Path, host: str) -> tuple[Path, Path]:
    """The stand-in ssh in ``directory``, answering for ``host`` only; returns it and the file where it
    records its arguments."""
    script, log = directory / "ssh", directory / "ssh.log"
    script.write_text(FAKE_SSH.format(log=log, host=host))
    script.chmod(0o755)
    return script, log
