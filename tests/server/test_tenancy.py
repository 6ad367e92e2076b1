"""API keys, tenants and limits: sessions belong to their key (or tenant), only the master key manages
keys and cleans up, keys expire and are revoked, and per-key limits answer 429 with Retry-After."""

from __future__ import annotations

import sqlite3

import trio

from isol8rt import ExecutionRequest
from isol8rt.server.keys import digest

from .conftest import MASTER


async def make_key(live, name="agent", **fields) -> dict:
    answer = await live.request("POST", "/auth/keys", {"name": name, **fields})
    assert answer.status == 201, answer.body
    return answer.json()


async def test_key_lifecycle(live, tmp_path):
    created = await make_key(live, "ci", tenantId="acme")
    assert set(created) == {"id", "key", "name", "keyPrefix", "tenantId", "expiresAt"}
    assert created["key"].startswith(created["keyPrefix"]) and created["tenantId"] == "acme"
    assert created["expiresAt"].endswith("Z")  # the reference's default lifetime: 24 hours

    listed = (await live.request("GET", "/auth/keys")).json()["keys"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and created["key"] not in (await live.request("GET", "/auth/keys")).body.decode()

    # At rest: the digest, never the key.
    rows = sqlite3.connect(tmp_path / "keys.db").execute("SELECT key_hash, key_prefix FROM api_keys").fetchall()
    assert rows == [(digest(created["key"]), created["keyPrefix"])]
    assert created["key"].encode() not in (tmp_path / "keys.db").read_bytes()

    assert (await live.request("GET", "/sessions", key=created["key"])).status == 200
    assert (await live.request("DELETE", f"/auth/keys/{created['id']}")).json() == {"ok": True, "id": created["id"]}
    revoked = await live.request("GET", "/sessions", key=created["key"])
    assert (revoked.status, revoked.json()) == (403, {"error": "Invalid API key", "kind": "forbidden"})
    assert (await live.request("DELETE", f"/auth/keys/{created['id']}")).status == 404


async def test_expired_keys_are_refused(live):
    created = await make_key(live, ttlMs=300)
    assert created["expiresAt"].endswith("Z")
    assert (await live.request("GET", "/sessions", key=created["key"])).status == 200
    await trio.sleep(0.4)
    expired = await live.request("GET", "/sessions", key=created["key"])
    assert (expired.status, expired.json()) == (403, {"error": "API key expired", "kind": "forbidden"})


async def test_only_the_master_key_manages_keys_and_cleans_up(live):
    key = (await make_key(live))["key"]
    for method, path, body in (("POST", "/auth/keys", {"name": "x"}), ("GET", "/auth/keys", None),
                               ("DELETE", "/auth/keys/whatever", None), ("POST", "/cleanup", {})):
        answer = await live.request(method, path, body, key=key)
        assert (answer.status, answer.json()) == (403, {"error": "Master key required for this operation", "kind": "forbidden"})
    assert (await live.request("POST", "/auth/keys", {"name": ""})).status == 400


async def test_sessions_are_invisible_to_other_keys(live):
    alice = (await make_key(live, "alice", tenantId="alice"))["key"]
    bob = (await make_key(live, "bob", tenantId="bob"))["key"]
    async with live.client(alice, session_id="shared-name") as a:
        await a.execute(ExecutionRequest(code="secret = 'alice'"))
        await a.put_file("/sandbox/alice.txt", "alice's file")
        bob_sees = await live.request("GET", "/sessions", key=bob)
        assert bob_sees.json() == {"sessions": []}
        for method, path, body in (
            ("GET", "/file?sessionId=shared-name&path=/sandbox/alice.txt", None),
            ("POST", "/file", {"sessionId": "shared-name", "path": "x.txt", "content": "AA=="}),
        ):
            answer = await live.request(method, path, body, key=bob)
            assert (answer.status, answer.json()) == (404, {"error": "Session not found", "kind": "session_not_found"})
        deleted = await live.request("DELETE", "/session/shared-name", key=bob)  # "ok", and nothing removed
        assert deleted.json() == {"ok": True, "removed": False}
        # Bob's session of the same name is his own.
        async with live.client(bob, session_id="shared-name") as b:
            result = await b.execute(ExecutionRequest(code="print(globals().get('secret'))"))
            assert result.stdout == "None\n"
        assert [s.id for s in await a.list_sessions()] == ["shared-name"]
        assert (await a.execute(ExecutionRequest(code="print(secret)"))).stdout == "alice\n"


async def test_keys_of_one_tenant_share_sessions(live):
    one = (await make_key(live, "one", tenantId="t1"))["key"]
    two = (await make_key(live, "two", tenantId="t1"))["key"]
    other = (await make_key(live, "other", tenantId="t2"))["key"]
    await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": "team"}, key=one)
    assert [s["id"] for s in (await live.request("GET", "/sessions", key=two)).json()["sessions"]] == ["team"]
    assert (await live.request("GET", "/sessions", key=other)).json() == {"sessions": []}
    assert (await live.request("GET", "/sessions")).json() == {"sessions": []}  # not even the master's list


async def test_cleanup_ends_every_session(live):
    key = (await make_key(live))["key"]
    await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": "a"}, key=key)
    await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": "b"})
    # images: false, always, in tests: the default (true, as the reference) removes the sandbox images.
    answer = await live.request("POST", "/cleanup", {"images": False})
    assert answer.status == 200
    body = answer.json()
    assert body["ok"] is True and body["sessions"] == {"removed": 2, "failed": 0, "errors": []}
    # The sessions' containers are counted as sessions; containers are the rest (the warm pool's).
    assert body["containers"]["failed"] == 0 and body["containers"]["errors"] == [] and "images" not in body
    assert (await live.request("GET", "/sessions", key=key)).json() == {"sessions": []}


async def test_rate_limit_answers_429_with_retry_after(start_server):
    live = await start_server(rate_limit=1.0)  # burst 2
    statuses = [(await live.request("GET", "/sessions")).status for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    limited = await live.request("GET", "/sessions")
    assert limited.status == 429 and int(limited.headers[b"retry-after"]) >= 1
    assert "Rate limit" in limited.json()["error"]
    assert (await live.request("GET", "/health")).status == 200  # health is never limited


async def in_flight(live, key_id: str = "master", count: int = 1) -> None:
    """Until ``key_id`` has ``count`` requests in flight on the server."""
    with trio.fail_after(20):
        while live.server.app.limits._in_flight.get(key_id, 0) < count:
            await trio.sleep(0.01)


async def test_past_the_key_s_places_requests_wait_their_turn(start_server):
    """One place per key and a queue of one: the second request waits for the first, then runs (as the
    reference's queue would have it); a third, past the queue, is 429 with Retry-After."""
    live = await start_server(key_concurrency=1, queue_depth=1)
    slow = {"request": {"code": "import time; time.sleep(1.5)"}}
    answers = []

    async def run():
        answers.append(await live.request("POST", "/execute", slow))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await in_flight(live)
        nursery.start_soon(run)
        with trio.fail_after(20):
            while live.server.app.limits.waiting("master") < 1:
                await trio.sleep(0.01)
        blocked = await live.request("POST", "/execute", slow)
        assert blocked.status == 429 and blocked.headers[b"retry-after"] == b"1"
        assert "Too many concurrent requests" in blocked.json()["error"]
    assert [a.status for a in answers] == [200, 200]
    other = await live.request("GET", "/sessions", key=MASTER)
    assert other.status == 200


async def test_no_queue_answers_429_at_once(start_server):
    live = await start_server(key_concurrency=1, queue_depth=0)
    answers = []

    async def run():
        answers.append(await live.request("POST", "/execute", {"request": {"code": "import time; time.sleep(1.5)"}}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await in_flight(live)
        blocked = await live.request("POST", "/execute", {"request": {"code": "1"}})
    assert blocked.status == 429 and blocked.headers[b"retry-after"] == b"1"
    assert answers[0].status == 200


async def test_idle_sessions_are_pruned(start_server):
    live = await start_server(session_ttl_s=1.0)
    await live.request("POST", "/execute", {"request": {"code": "1"}, "sessionId": "brief"})
    assert len(live.server.sessions) == 1
    with trio.fail_after(15):
        while len(live.server.sessions):
            await trio.sleep(0.2)
    assert (await live.request("GET", "/sessions")).json() == {"sessions": []}
