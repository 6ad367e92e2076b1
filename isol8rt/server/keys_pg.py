"""API keys shared by several server nodes, kept in PostgreSQL.

Each node keeps every live key in memory, as the SQLite store does (:class:`~.keys.KeyIndex`), so
authenticating a request never waits on the database. What another node writes reaches this one by
:meth:`PostgresKeyStore.keep_fresh`, which reads the live keys every ``refresh_s``; that read is also
the bound on revocation: a key revoked on any node is refused by every node within ``max_stale_s``. A
node that cannot read the database for longer than that no longer knows which keys were revoked, so it
refuses every issued key with a 503 (the master key still works) until it can read again.

The driver is pg8000: pure Python (nothing to compile, no libpq), blocking, so every call runs in a
worker thread on one connection under a lock; a lost connection is opened again on the next call.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import trio

from ._http_server import HTTPError
from .keys import KeyIndex, KeyRecord

log = logging.getLogger("isol8rt.server")

_T = TypeVar("_T")

#: How often a node reads the live keys.
DEFAULT_REFRESH_S = 1.0
#: How long a node trusts what it last read; so also the longest a revoked key may still work anywhere.
DEFAULT_MAX_STALE_S = 5.0
#: A connection attempt, or a query, that takes longer than this has failed (a database that stopped
#: answering must not hold a worker thread, and every write queued behind it, for ever).
TIMEOUT_S = 5.0

URL_SCHEMES = ("postgresql", "postgres")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash BYTEA NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    tenant_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    revoked_at DOUBLE PRECISION
)
"""
#: Two nodes starting together both run CREATE TABLE IF NOT EXISTS; without a lock one of them can
#: still fail on the catalog's unique index. An advisory lock (any fixed number) makes them take turns.
_SCHEMA_LOCK = 0x1501_8A7E


def is_url(value: str) -> bool:
    return value.split(":", 1)[0].lower() in URL_SCHEMES and "://" in value


class KeyStoreUnavailable(HTTPError):
    """The shared key store cannot be read or written now: 503, with the reason, never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message, [(b"Retry-After", b"5")])


def check_driver() -> None:
    """ValueError, saying what to install, when the driver is missing (it is an optional extra)."""
    try:
        import pg8000.native  # noqa: F401
    except ImportError:
        raise ValueError("a postgresql:// key store needs the pg8000 driver: pip install 'isol8rt[postgres]'") from None


def connect_params(url: str) -> dict[str, Any]:
    """pg8000's connection arguments from a libpq-style URL:
    ``postgresql://user[:password]@host[:port]/database[?sslmode=require&host=/socket/dir]``. A ``host``
    query parameter that is a directory is the server's Unix socket directory, as libpq has it. Without
    ``sslmode`` (or with ``prefer`` or ``allow``) the connection is not encrypted: pg8000 cannot try TLS and
    fall back as libpq does; ``require`` or ``verify-full`` across a network."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ValueError(f"key store URL: the scheme must be postgresql://, not {parts.scheme}://")
    query = dict(parse_qsl(parts.query))
    unknown = set(query) - {"host", "sslmode", "application_name"}
    if unknown:
        raise ValueError(f"key store URL: unknown parameter(s) {', '.join(sorted(unknown))} "
                         "(known: host, sslmode, application_name)")
    try:
        port = parts.port or 5432
    except ValueError:
        raise ValueError("key store URL: the port is not a number from 1 to 65535") from None
    database = unquote(parts.path.lstrip("/"))
    user = unquote(parts.username or "")
    if not user or not database:
        raise ValueError("key store URL: name the user and the database, as postgresql://user@host/database")
    params: dict[str, Any] = {"user": user, "database": database, "port": port, "timeout": TIMEOUT_S,
                              "password": unquote(parts.password) if parts.password is not None else None,
                              "application_name": query.get("application_name", "isol8rt")}
    socket_dir = query.get("host", "")
    if socket_dir.startswith("/"):
        params["unix_sock"] = f"{socket_dir.rstrip('/')}/.s.PGSQL.{port}"
    else:
        params["host"] = socket_dir or parts.hostname or "localhost"
    mode = query.get("sslmode", "prefer" if "unix_sock" not in params else "disable")
    if mode in ("require", "verify-ca", "verify-full"):
        context = ssl.create_default_context()
        if mode == "require":  # libpq's meaning: encrypted, the certificate not checked
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        params["ssl_context"] = context
    elif mode not in ("disable", "allow", "prefer"):
        raise ValueError(f"key store URL: sslmode={mode} is not one of disable, prefer, require, verify-ca, "
                         "verify-full")
    return params


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class PostgresKeyStore(KeyIndex):
    def __init__(self, url: str, *, refresh_s: float = DEFAULT_REFRESH_S,
                 max_stale_s: float = DEFAULT_MAX_STALE_S) -> None:
        super().__init__()
        self.url = url
        self._params = connect_params(url)  # a bad URL fails here, at configuration time
        check_driver()
        self.refresh_s = refresh_s
        self.max_stale_s = max(max_stale_s, refresh_s)
        self._lock = threading.Lock()
        self._conn: Any = None
        #: When (trio's clock) the live keys were last read; None before the first read in trio.
        self._fresh_at: float | None = None
        self._outage: str | None = None
        self._refreshed = trio.Event()
        #: This node's own writes a read may have missed: [("create", record) or ("revoke", id), when], ``when``
        #: being the count of reads begun once the write was in the database (None: not yet). A read
        #: replaces the whole index, and one begun before a write lands after it; without this it brought
        #: back a key just revoked here (or dropped one just made) until the next read.
        self._journal: list[list[Any]] = []
        self._reads = 0

    # ------------------------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Connect, create the table if there is none, and read the live keys (blocking: call it in a
        worker thread, or before the event loop serves anything)."""
        self._call_blocking(lambda conn: self._create_schema(conn))
        self._by_hash = self._call_blocking(self._load)

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    async def keep_fresh(self) -> None:
        self._fresh_at = trio.current_time()  # open() has just read them
        while True:
            await trio.sleep(self.refresh_s)
            await self.refresh()

    async def refresh(self) -> None:
        """Read the live keys now; a failure is logged (once per outage), and the index kept as it was."""
        self._reads += 1
        begun = self._reads
        try:
            keys = await self._call(self._load)
        except KeyStoreUnavailable as exc:
            if self._outage is None:  # logged once an outage, said in every refusal
                log.warning("%s; issued keys are refused once what was read is %g s old", exc, self.max_stale_s)
            self._outage = exc.message
        else:
            # Replay this node's writes that the read may not have seen; forget those it has seen (a read
            # begun once a write was in the database), which may since have been undone elsewhere.
            self._journal = [entry for entry in self._journal if entry[1] is None or entry[1] >= begun]
            for (action, what), _ in self._journal:
                if action == "create":
                    keys[what.key_hash] = what
                else:
                    keys = {digest: record for digest, record in keys.items() if record.id != what}
            self._by_hash = keys
            if self._outage is not None:
                log.warning("the key store answers again")
            self._outage = None
            self._fresh_at = trio.current_time()
        self._refreshed.set()
        self._refreshed = trio.Event()

    async def next_refresh(self) -> None:
        """Wait until the next read of the live keys has ended, well or not (for tests and callers that
        must see another node's writes)."""
        await self._refreshed.wait()

    # ------------------------------------------------------------------------------------ reads

    def lookup(self, key: str) -> KeyRecord | None:
        if self._fresh_at is not None and trio.current_time() - self._fresh_at > self.max_stale_s:
            raise KeyStoreUnavailable(f"the shared key store has not been read for over {self.max_stale_s:g} s "
                                      f"({self._outage or 'no answer'}): issued keys cannot be checked")
        return super().lookup(key)

    def _load(self, conn: Any) -> dict[bytes, KeyRecord]:
        rows = conn.run("SELECT id, name, key_hash, key_prefix, tenant_id, created_at, expires_at FROM api_keys "
                        "WHERE revoked_at IS NULL")
        return {bytes(row[2]): KeyRecord(row[0], row[1], bytes(row[2]), *row[3:]) for row in rows}

    # ------------------------------------------------------------------------------------ writes

    async def _journaled(self, write: Any, work: Callable[[Any], _T]) -> _T:
        entry: list[Any] = [write, None]
        self._journal.append(entry)
        try:
            result = await self._call(work)
        except BaseException:
            self._journal.remove(entry)
            raise
        entry[1] = self._reads  # a read begun after this one sees the write in the database
        return result

    async def _insert(self, record: KeyRecord) -> None:
        await self._journaled(("create", record), lambda conn: conn.run(
            "INSERT INTO api_keys (id, name, key_hash, key_prefix, tenant_id, created_at, expires_at) "
            "VALUES (:id, :name, :key_hash, :key_prefix, :tenant_id, :created_at, :expires_at)",
            id=record.id, name=record.name, key_hash=record.key_hash, key_prefix=record.key_prefix,
            tenant_id=record.tenant_id, created_at=record.created_at, expires_at=record.expires_at))

    async def _mark_revoked(self, key_id: str, when: float, known: bool) -> bool:
        # Any node may revoke any key, also one made elsewhere that this node has not read yet.
        def revoke(conn: Any) -> bool:
            conn.run("UPDATE api_keys SET revoked_at = :when WHERE id = :id AND revoked_at IS NULL",
                     when=when, id=key_id)
            return conn.row_count > 0

        return await self._journaled(("revoke", key_id), revoke)

    # ------------------------------------------------------------------------------------ the connection

    @staticmethod
    def _create_schema(conn: Any) -> None:
        conn.run("BEGIN")
        try:
            conn.run("SELECT pg_advisory_xact_lock(:lock)", lock=_SCHEMA_LOCK)
            conn.run(_SCHEMA)
            conn.run("COMMIT")
        except BaseException:
            conn.run("ROLLBACK")
            raise

    async def _call(self, work: Callable[[Any], _T]) -> _T:
        return await trio.to_thread.run_sync(self._call_blocking, work)

    def _call_blocking(self, work: Callable[[Any], _T]) -> _T:
        import pg8000.exceptions
        import pg8000.native

        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                try:
                    if self._conn is None:
                        self._conn = pg8000.native.Connection(**self._params)
                    return work(self._conn)
                except (pg8000.exceptions.InterfaceError, pg8000.exceptions.DatabaseError, OSError) as exc:
                    # Whatever broke, the next attempt starts on a new connection. A kept connection the
                    # database closed meanwhile (a restart, an idle timeout) is tried once more at once.
                    self._drop_connection()
                    if attempt == 1 and reused and not isinstance(exc, pg8000.exceptions.DatabaseError):
                        continue
                    raise KeyStoreUnavailable(f"the shared key store at {redact(self.url)} failed: "
                                              f"{_reason(exc)}") from None
            raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                pass
            self._conn = None


def _reason(exc: BaseException) -> str:
    """One line for a driver error: PostgreSQL's message (pg8000 gives a dict of its fields) or the
    network error's text."""
    detail = exc.args[0] if exc.args else None
    if isinstance(detail, dict):  # the server's error fields: M is the message, C the SQLSTATE
        return f"{detail.get('M', 'error')} (SQLSTATE {detail.get('C', '?')})"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
