"""Per-key limits on trio's mock clock: the token bucket refills with time, concurrency is held for the
body of the ``with``, and keys are limited one by one."""

from __future__ import annotations

import pytest
import trio

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
