"""Who is calling: ``Authorization: Bearer <key>`` to a :class:`Principal`.

There is one master key (from ``--key``), which may do everything, and any number of keys it handed out
(:mod:`.keys`). Each principal has an ``owner``: the namespace its sessions live in. Keys of one tenant
share it (a tenant is one customer with several keys); a key without a tenant has its own.

Every comparison is between SHA-256 digests with :func:`hmac.compare_digest`, so neither the time an
answer takes nor its content says how much of a guess was right.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..audit import Caller
from ._http_server import HTTPError
from .keys import KeyIndex, digest


class AuthError(HTTPError):
    pass


@dataclass(frozen=True, slots=True)
class Principal:
    #: What limits are counted against: "master" or the key's id.
    id: str
    #: The session namespace: "master", "tenant:<id>" or "key:<id>".
    owner: str
    is_master: bool = False
    #: The key's tenant, as the key store has it (for the audit log).
    tenant_id: str | None = None

    @property
    def caller(self) -> Caller:
        """Who this principal is, as the audit log records it."""
        return Caller(key_id=self.id, tenant_id=self.tenant_id)


MASTER = Principal(id="master", owner="master", is_master=True)


class Authenticator:
    """``open_access`` (``serve --no-auth``) makes every caller the master: for a trusted loopback only."""

    def __init__(self, master_key: str | None, store: KeyIndex | None = None, *, open_access: bool = False) -> None:
        if not master_key and not open_access:
            raise ValueError("a master key is needed unless open_access is set")
        self._master = digest(master_key) if master_key else None
        self._store = store
        self.open_access = open_access

    def authenticate(self, header: bytes | None) -> Principal:
        if self.open_access:
            return MASTER
        if header is None:
            raise AuthError(401, "Missing Authorization header", [(b"WWW-Authenticate", b"Bearer")])
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(403, "Invalid API key")
        if self._master is not None and hmac.compare_digest(digest(token), self._master):
            return MASTER
        record = self._store.lookup(token) if self._store is not None else None
        if record is None:
            raise AuthError(403, "Invalid API key")
        if record.expired():
            raise AuthError(403, "API key expired")
        assert self._store is not None  # the record came from it
        self._store.touch(record.id)
        owner = f"tenant:{record.tenant_id}" if record.tenant_id else f"key:{record.id}"
        return Principal(id=record.id, owner=owner, tenant_id=record.tenant_id)
