"""The shared key store on a real PostgreSQL server (a throwaway cluster, :mod:`.postgres`): two stores on
one database stand for two nodes."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from isol8rt.server.app import error_answer
from isol8rt.server.auth import AuthError, Authenticator
from isol8rt.server.keys_pg import DEFAULT_MAX_STALE_S, KeyStoreUnavailable, PostgresKeyStore, connect_params

from .conftest import MASTER, raw_request
from .postgres import postgres  # noqa: F401 - the fixture

pytestmark = pytest.mark.cluster


@pytest.fixture
def database(postgres):  # noqa: F811
    return postgres.url(postgres.new_database())


def opened(url: str, **kwargs) -> PostgresKeyStore:
    store = PostgresKeyStore(url, **kwargs)
    store.open()
    return store


def bearer(key: str) -> bytes:
    return f"Bearer {key}".encode()


async def test_a_key_works_on_every_node_and_a_revocation_reaches_every_node(database):
    one, two = opened(database), opened(database)
    try:
        nodes = [Authenticator(MASTER, one), Authenticator(MASTER, two)]
        record, key = await one.create("agent", "acme", None)
        await two.refresh()
        for node in nodes:
            principal = node.authenticate(bearer(key))
            assert (principal.id, principal.owner) == (record.id, "tenant:acme")
        # Revoked on the node that did not make it; the maker refuses it after its next read.
        assert await two.revoke(record.id)
        assert not await two.revoke(record.id)  # no longer a live key
        await one.refresh()
        for node in nodes:
            with pytest.raises(AuthError) as refused:
                node.authenticate(bearer(key))
            assert refused.value.status == 403
    finally:
        one.close()
        two.close()


async def test_a_node_revokes_a_key_it_has_not_read_yet(database):
    one, two = opened(database), opened(database)
    try:
        record, _ = await one.create("fresh")
        assert await two.revoke(record.id)
        await one.refresh()
        assert one.records() == []
    finally:
        one.close()
        two.close()


async def test_the_refresh_loop_bounds_how_long_a_revoked_key_works_elsewhere(database):
    one, two = opened(database, refresh_s=0.05), opened(database, refresh_s=0.05)
    try:
        record, key = await one.create("bounded")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one.keep_fresh)
            nursery.start_soon(two.keep_fresh)
            await two.next_refresh()
            assert two.lookup(key) is not None
            revoked_at = trio.current_time()
            assert await one.revoke(record.id)
            # A read that began before the revocation may miss it; the one after cannot.
            await two.next_refresh()
            await two.next_refresh()
            assert two.lookup(key) is None
            assert trio.current_time() - revoked_at < DEFAULT_MAX_STALE_S
            nursery.cancel_scope.cancel()
    finally:
        one.close()
        two.close()


def test_schema_creation_is_idempotent_and_safe_when_nodes_start_together(postgres):  # noqa: F811
    name = postgres.new_database()
    url = postgres.url(name)
    failures: list[BaseException] = []

    def start() -> None:
        try:
            opened(url).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    opened(url).close()  # and once more, on a table that is there
    assert postgres.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'api_keys'", database=name) == [[1]]


async def test_a_lost_connection_is_opened_again(postgres):  # noqa: F811
    name = postgres.new_database()
    store = opened(postgres.url(name))
    try:
        postgres.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        record, key = await store.create("after a restart of the database")
        assert store.lookup(key) == record
    finally:
        store.close()


async def test_an_unreachable_database_refuses_issued_keys_with_a_503_once_stale(postgres, autojump_clock):  # noqa: F811
    name = postgres.new_database()
    store = opened(postgres.url(name), refresh_s=1, max_stale_s=5)
    node = Authenticator(MASTER, store)
    try:
        _, key = await store.create("doomed")
        postgres.sql(f"DROP DATABASE {name} WITH (FORCE)")
        # Virtual time (the clock jumps whenever every task waits, worker threads included), so no
        # deadline here: a bounded number of reads instead.
        refused = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.keep_fresh)
            await store.next_refresh()
            node.authenticate(bearer(key))  # what was read is still trusted for a while
            for _ in range(10):
                await store.next_refresh()
                try:
                    node.authenticate(bearer(key))
                except KeyStoreUnavailable as exc:
                    refused = exc
                    break
            nursery.cancel_scope.cancel()
        assert refused is not None
        status, kind, message, headers = error_answer(refused)
        assert (status, kind) == (503, "unavailable")
        assert "shared key store has not been read for over 5 s" in message
        assert f"(the shared key store at postgresql://{postgres.user}@localhost:{postgres.port}/{name}?" in message
        assert (b"Retry-After", b"5") in headers
        assert node.authenticate(bearer(MASTER)).is_master  # the master key does not depend on the store
    finally:
        store.close()


async def test_writes_to_an_unreachable_database_fail_with_a_503():
    store = PostgresKeyStore("postgresql://me:secret@127.0.0.1:1/nowhere")
    with pytest.raises(KeyStoreUnavailable) as failed:
        await store.create("never")
    assert failed.value.status == 503
    assert failed.value.message.startswith("the shared key store at postgresql://me:***@127.0.0.1:1/nowhere failed")
    assert "Can't create a connection to host 127.0.0.1 and port 1" in failed.value.message


def test_the_url_says_what_is_wrong_with_it():
    for url, problem in (("postgresql://host/db", "name the user and the database"),
                         ("postgresql://u@host", "name the user and the database"),
                         ("postgresql://u@host:x/db", "the port is not a number"),
                         ("postgresql://u@h/db?sslmode=sometimes", "sslmode=sometimes is not one of"),
                         ("postgresql://u@h/db?pool=3", "unknown parameter(s) pool")):
        with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            connect_params(url)
    params = connect_params("postgres://me:p%40ss@db.example:6432/keys?sslmode=require")
    assert (params["user"], params["password"], params["host"], params["port"], params["database"]) == (
        "me", "p@ss", "db.example", 6432, "keys")
    assert params["ssl_context"] is not None
    assert connect_params("postgresql://me@x/keys?host=/run/pg")["unix_sock"] == "/run/pg/.s.PGSQL.5432"


@pytest.mark.docker
async def test_two_servers_share_their_keys(postgres, tmp_path, nursery):  # noqa: F811
    from isol8rt import Isol8Options
    from isol8rt.server import Server, ServerConfig

    name = postgres.new_database()
    servers, ports = [], []
    for node in ("one", "two"):
        config = ServerConfig(port=0, api_key=MASTER, keys_db=postgres.url(name), state_dir=tmp_path / node,
                              prewarm=[], options=Isol8Options(pool_size=0), keys_refresh_s=0.05,
                              keys_max_stale_s=1)
        servers.append(Server(config))
        ports.append(await nursery.start(servers[-1].run))
    (one, two), (one_keys, two_keys) = ports, [server.keys for server in servers]

    async def after_next_read(store) -> None:
        await store.next_refresh()  # one that may have begun before the write,
        await store.next_refresh()  # and one that began after it

    made = await raw_request(one, "POST", "/auth/keys", {"name": "everywhere"})
    assert made.status == 201
    key, key_id = made.json()["key"], made.json()["id"]
    await after_next_read(two_keys)
    assert (await raw_request(two, "GET", "/sessions", key=key)).status == 200
    assert (await raw_request(two, "DELETE", f"/auth/keys/{key_id}")).status == 200
    await after_next_read(one_keys)
    refused = await raw_request(one, "GET", "/sessions", key=key)
    assert (refused.status, refused.json()["error"]) == (403, "Invalid API key")

    # The database goes away: once what node one read is over 1 s old, issued keys get a 503 with a body.
    doomed = (await raw_request(one, "POST", "/auth/keys", {"name": "doomed"})).json()["key"]
    postgres.sql(f"DROP DATABASE {name} WITH (FORCE)")
    with trio.fail_after(30):
        while (answer := await raw_request(one, "GET", "/sessions", key=doomed)).status == 200:
            await one_keys.next_refresh()
    assert (answer.status, answer.json()["kind"]) == (503, "unavailable"), answer
    assert answer.json()["error"].startswith("the shared key store has not been read for over 1 s")
    assert answer.headers[b"retry-after"] == b"5"
    assert (await raw_request(one, "GET", "/sessions")).status == 200  # the master key still works
    nursery.cancel_scope.cancel()


async def test_a_read_begun_before_a_revocation_does_not_bring_the_key_back(database):
    # Attack: the node's refresh has read the keys (the key still live) when the revocation is made on this
    # node; the read then lands and replaced the index, so the revoked key worked here again until the next
    # read, although revoke() says "from this moment on the key authenticates nothing here".
    store = opened(database)
    try:
        node = Authenticator(MASTER, store)
        record, key = await store.create("victim")
        read, release = threading.Event(), threading.Event()
        real_load = store._load

        def slow_load(conn):
            keys = real_load(conn)
            read.set()
            release.wait()
            return keys

        store._load = slow_load
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.refresh)
            await trio.to_thread.run_sync(read.wait)
            nursery.start_soon(store.revoke, record.id)
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        with pytest.raises(AuthError) as refused:
            node.authenticate(bearer(key))
        assert refused.value.status == 403
        # A key made while a read is under way is not dropped by it either (a guard: which of the two lands
        # first decides whether this one shows without the journal, and here the read usually does).
        store._load = slow_load
        read.clear()
        release.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.refresh)
            await trio.to_thread.run_sync(read.wait)
            made = []
            nursery.start_soon(lambda: _append(made, store.create("fresh")))
            await trio.testing.wait_all_tasks_blocked()
            release.set()
        assert node.authenticate(bearer(made[0][1])).id == made[0][0].id
        # The next read (nothing under way) agrees with the database.
        store._load = real_load
        await store.refresh()
        assert [r.name for r in store.records()] == ["fresh"]
    finally:
        store.close()


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)
