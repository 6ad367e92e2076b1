"""Per-key limits on trio's mock clock: the token bucket refills with time, concurrency is held for the
body of the ``with``, and keys are limited one by one."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from isol8rt.server.limits import KeyLimits, Limited


def admitted(limits: KeyLimits, key: str = "k") -> bool:
    try:
        with limits.admit(key):
            return True
    except Limited:
        return False


async def test_token_bucket_and_concurrency(autojump_clock):
    limits = KeyLimits(rate=1.0, burst=2, concurrency=1)
    with limits.admit("k"):
        with pytest.raises(Limited, match="concurrent"):
            with limits.admit("k"):
                pass
        with limits.admit("other"):  # keys are limited one by one
            pass
    with limits.admit("k"):  # the burst's second token
        pass
    with pytest.raises(Limited, match=r"1 requests per second") as caught:
        with limits.admit("k"):
            pass
    assert caught.value.retry_after == 1


async def test_the_bucket_refills_at_its_rate_up_to_its_burst(autojump_clock):
    limits = KeyLimits(rate=0.5, burst=3)
    assert [admitted(limits) for _ in range(4)] == [True, True, True, False]
    await trio.sleep(1.9)  # not yet a whole token back (0.95): still refused, and told to wait 1 s more
    with pytest.raises(Limited) as caught:
        with limits.admit("k"):
            pass
    assert caught.value.retry_after == 1
    await trio.sleep(0.2)
    assert admitted(limits) and not admitted(limits)
    await trio.sleep(3600)  # a long pause saves up no more than the burst
    assert [admitted(limits) for _ in range(4)] == [True, True, True, False]


async def test_retry_after_says_when_the_next_token_comes(autojump_clock):
    limits = KeyLimits(rate=0.1, burst=1)
    assert admitted(limits)
    with pytest.raises(Limited) as caught:
        with limits.admit("k"):
            pass
    assert caught.value.retry_after == 10
    await trio.sleep(caught.value.retry_after)
    assert admitted(limits)


async def test_no_rate_and_no_concurrency_limit_nothing():
    limits = KeyLimits()
    assert all(admitted(limits) for _ in range(1000))
    with limits.admit("k"), limits.admit("k"), limits.admit("k"):
        pass


async def test_a_refused_request_holds_no_slot(autojump_clock):
    limits = KeyLimits(rate=1.0, burst=1, concurrency=1)
    assert admitted(limits) and not admitted(limits)  # refused by the rate...
    await trio.sleep(1)
    with limits.admit("k"):  # ...which left the concurrency slot free
        pass
    with pytest.raises(ZeroDivisionError):
        with limits.admit("other"):
            1 / 0
    await trio.sleep(1)
    assert admitted(limits, "other")  # a failing request gives its slot back


# --------------------------------------------------------------------------------------------------
# the queue: requests past a key's places wait their turn, boundedly


async def take(limits: KeyLimits, key: str, taken: list[str], name: str, release: trio.Event) -> None:
    """A request: enter (waiting for a turn if queued), hold its place until ``release``."""
    ticket = limits.enter(key)
    if ticket is not None:
        await limits.wait(key, ticket)
    taken.append(name)
    await release.wait()
    limits.leave(key)


async def test_a_queued_request_gets_the_next_free_place_in_order(autojump_clock):
    limits = KeyLimits(concurrency=1, queue_depth=2, queue_wait_s=60)
    taken: list[str] = []
    releases = {name: trio.Event() for name in "abc"}
    async with trio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(take, limits, "k", taken, name, releases[name])
            await trio.testing.wait_all_tasks_blocked()
        assert taken == ["a"] and limits.waiting("k") == 2
        with limits.admit("other"):  # another key is not behind this one's queue
            pass
        with pytest.raises(Limited, match="2 waiting") as full:  # the queue is full: 429 at once
            limits.enter("k")
        assert full.value.retry_after == 1
        releases["a"].set()
        await trio.testing.wait_all_tasks_blocked()
        assert taken == ["a", "b"]
        releases["b"].set()
        await trio.testing.wait_all_tasks_blocked()
        assert taken == ["a", "b", "c"] and limits.waiting("k") == 0
        releases["c"].set()
    assert limits._in_flight == {} and limits._queues == {}


async def test_the_wait_is_bounded_on_the_mock_clock(autojump_clock):
    limits = KeyLimits(concurrency=1, queue_depth=5, queue_wait_s=30)
    assert limits.enter("k") is None  # holds the one place, and never gives it back in time
    ticket = limits.enter("k")
    assert ticket is not None
    started = trio.current_time()
    with pytest.raises(Limited, match="waited 30 s") as expired:
        await limits.wait("k", ticket)
    assert trio.current_time() - started == pytest.approx(30)
    assert expired.value.retry_after >= 1 and limits.waiting("k") == 0  # it left the queue
    limits.leave("k")
    assert limits.enter("k") is None


async def test_a_cancelled_waiter_leaves_the_queue_and_a_granted_one_hands_its_place_on(autojump_clock):
    limits = KeyLimits(concurrency=1, queue_depth=5, queue_wait_s=0)  # 0: no bound
    assert limits.enter("k") is None
    ticket = limits.enter("k")
    with trio.move_on_after(3600):
        await limits.wait("k", ticket)
        pytest.fail("no place was freed")
    assert limits.waiting("k") == 0
    # Granted and cancelled in the same moment: the place passes on rather than being lost.
    second = limits.enter("k")
    limits.leave("k")  # the place passes to `second`...
    with trio.CancelScope() as scope:
        scope.cancel()
        await limits.wait("k", second)  # ...which is cancelled before it runs: it hands it back
    assert limits._in_flight == {} and limits._queues == {}
