"""A throwaway PostgreSQL server for the shared key store's tests: Debian's PostgreSQL (``./scripts/test``
installs it), a cluster of its own under /tmp made by ``initdb``, on a private Unix socket and a free
loopback port, stopped and deleted at the end. The system's default cluster, if any, is never touched.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user Debian's
package made."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "apt-get install -y postgresql (./scripts/test does it, as root)"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.fail(f"PostgreSQL is not installed: {INSTALL_HINT}", pytrace=False)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    def __init__(self, root: Path) -> None:
        self.bin = _bin_dir()
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *command: str | Path) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *map(str, command)], capture_output=True, text=True, cwd=self.root)
        if done.returncode:
            pytest.fail(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()}", pytrace=False)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", self.user, "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
                   "-c fsync=off -c max_connections=40")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-o", options, "-l", self.root / "log", "-w", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """Over the private Unix socket, as the cluster's owner (trusted: no password)."""
        return f"postgresql://{self.user}@localhost:{self.port}/{database}?host={self.root}"

    def tcp_url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> list:
        import pg8000.native

        conn = pg8000.native.Connection(self.user, database=database, port=self.port,
                                        unix_sock=f"{self.root}/.s.PGSQL.{self.port}")
        try:
            return conn.run(statement)
        finally:
            conn.close()

    def new_database(self) -> str:
        """A fresh, empty database (one per test: tests do not see each other's keys)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="isol8rt-pg-"))
    root.chmod(0o755)
    cluster = Cluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
