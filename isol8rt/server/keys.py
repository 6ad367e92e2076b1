"""API keys the master key hands out: named, optionally grouped in a tenant, optionally expiring,
revocable, and stored in SQLite with only their SHA-256 at rest.

A key is 256 random bits, so a plain SHA-256 is enough to store it (no salt or slow hash is needed for a
secret nobody chose). Every key in use is also held in memory, by digest: authenticating a request costs
one hash and one dict lookup, never a database read. Writes (create, revoke) go to SQLite in a worker
thread, since a commit waits on the disk. One server owns the file: keys created or revoked by another
process show up here only after a restart. Several nodes share their keys through PostgreSQL instead
(:mod:`.keys_pg`), whose store keeps the same in-memory index fresh from the database.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import trio

KEY_PREFIX = "isol8_"
#: How much of a key is kept in clear, to tell keys apart in listings.
SHOWN_CHARS = len(KEY_PREFIX) + 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash BLOB NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    tenant_id TEXT,
    created_at REAL NOT NULL,
    expires_at REAL,
    revoked_at REAL
)
"""


def default_path() -> Path:
    return Path.home() / ".isol8rt" / "keys.db"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    stamp = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    key_hash: bytes
    key_prefix: str
    tenant_id: str | None
    created_at: float
    expires_at: float | None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class KeyIndex:
    """Every live key, in memory by digest: what authenticating a request reads. Where the keys are kept
    is the subclass's business (:class:`KeyStore`: SQLite; :class:`~.keys_pg.PostgresKeyStore`)."""

    def __init__(self) -> None:
        self._by_hash: dict[bytes, KeyRecord] = {}
        #: When each key last authenticated a request, since this process opened the store (kept in
        #: memory only: a write per request is not worth a listing's column).
        self._last_used: dict[str, float] = {}

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def keep_fresh(self) -> None:
        """Keep the in-memory index in step with what other processes write, until cancelled. A store
        only this process writes has nothing to do."""

    def lookup(self, key: str) -> KeyRecord | None:
        """The live record of ``key`` (expired ones too: the caller says why it refuses them), or None."""
        wanted = digest(key)
        record = self._by_hash.get(wanted)
        # The dict finds the record by digest; the constant-time comparison makes the final say not
        # depend on how many leading bytes matched, whatever the dict does inside.
        if record is not None and hmac.compare_digest(record.key_hash, wanted):
            return record
        return None

    def touch(self, key_id: str) -> None:
        """``key_id`` has just authenticated a request."""
        self._last_used[key_id] = time.time()

    def last_used(self, key_id: str) -> float | None:
        return self._last_used.get(key_id)

    def records(self) -> list[KeyRecord]:
        return sorted(self._by_hash.values(), key=lambda record: record.created_at)

    async def create(self, name: str, tenant_id: str | None = None, ttl_ms: int | None = None) -> tuple[KeyRecord, str]:
        """A new key: its record and the key itself, which is never seen again."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        record = KeyRecord(
            id=str(uuid.uuid4()), name=name, key_hash=digest(key), key_prefix=key[:SHOWN_CHARS],
            tenant_id=tenant_id, created_at=now, expires_at=now + ttl_ms / 1000 if ttl_ms else None)
        await self._insert(record)
        self._by_hash[record.key_hash] = record
        return record, key

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no live key of that id."""
        record = next((r for r in self._by_hash.values() if r.id == key_id), None)
        if record is not None:
            # Out of memory first: from this moment on the key authenticates nothing here.
            del self._by_hash[record.key_hash]
            self._last_used.pop(key_id, None)
        return await self._mark_revoked(key_id, time.time(), record is not None)

    async def _insert(self, record: KeyRecord) -> None:
        raise NotImplementedError

    async def _mark_revoked(self, key_id: str, when: float, known: bool) -> bool:
        """Record the revocation; whether a live key of that id existed (``known``: this process had it)."""
        raise NotImplementedError


class KeyStore(KeyIndex):
    """The keys in one SQLite file. Open with :meth:`open` (which loads every live key into memory)."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = not self.path.exists()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(self.path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        rows = self._db.execute(
            "SELECT id, name, key_hash, key_prefix, tenant_id, created_at, expires_at FROM api_keys "
            "WHERE revoked_at IS NULL").fetchall()
        self._by_hash = {bytes(row[2]): KeyRecord(row[0], row[1], bytes(row[2]), *row[3:]) for row in rows}

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
            self._db = None

    async def _insert(self, record: KeyRecord) -> None:
        await self._write(
            "INSERT INTO api_keys (id, name, key_hash, key_prefix, tenant_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.name, record.key_hash, record.key_prefix, record.tenant_id, record.created_at,
             record.expires_at))

    async def _mark_revoked(self, key_id: str, when: float, known: bool) -> bool:
        # This process is the file's only writer: what it does not hold is not a live key.
        if known:
            await self._write("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (when, key_id))
        return known

    async def _write(self, sql: str, params: tuple) -> None:
        def write() -> None:
            with self._lock:
                self._db.execute(sql, params)

        await trio.to_thread.run_sync(write)
