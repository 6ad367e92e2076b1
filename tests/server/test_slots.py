"""Run slots on their own: a cap per key, and a freed slot goes to the waiting key that holds fewest."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from isol8rt.server.limits import Limited
from isol8rt.server.slots import RunSlots


async def test_a_freed_slot_goes_to_the_key_holding_fewest():
    slots = RunSlots(total=3, per_key=2)
    granted: list[str] = []
    release = {}

    async def hold(name: str) -> None:
        release[name] = trio.Event()
        async with slots.hold(name[0]):
            granted.append(name)
            await release[name].wait()

    async with trio.open_nursery() as nursery:
        for name in ("A1", "A2", "A3", "B1", "B2", "C1"):
            nursery.start_soon(hold, name)
            await trio.testing.wait_all_tasks_blocked()
        # A is at its cap (A3 waits for A), B1 took the last slot, B2 and C1 wait for one.
        assert granted == ["A1", "A2", "B1"] and slots.held == {"A": 2, "B": 1}
        release["B1"].set()
        await trio.testing.wait_all_tasks_blocked()
        assert granted[-1] == "B2"  # B and C hold none; B2 came first
        release["A1"].set()
        await trio.testing.wait_all_tasks_blocked()
        # A3 has waited longest, but A still holds one slot and C none.
        assert granted[-1] == "C1"
        release["C1"].set()
        await trio.testing.wait_all_tasks_blocked()
        assert granted[-1] == "A3"
        for event in release.values():
            event.set()
    assert slots.in_use == 0 and slots.held == {}


async def test_a_cancelled_waiter_gives_up_its_place():
    slots = RunSlots(total=1, per_key=1)

    async def wait_for_one(scope: trio.CancelScope) -> None:
        with scope:
            async with slots.hold("b"):
                pytest.fail("there is no free slot")

    async with trio.open_nursery() as nursery:
        async with slots.hold("a"):
            scope = trio.CancelScope()
            nursery.start_soon(wait_for_one, scope)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
    assert slots.in_use == 0 and slots.held == {}
    async with slots.hold("b"):
        assert slots.held == {"b": 1}


async def test_the_wait_for_a_slot_ends_at_the_deadline(autojump_clock):
    slots = RunSlots(total=1, per_key=1)
    async with slots.hold("a"):
        with pytest.raises(Limited, match="waited 5 s"):
            async with slots.hold("b", deadline=trio.current_time() + 5, wait_s=5):
                pytest.fail("there is no free slot")
        assert trio.current_time() == pytest.approx(5)
    assert slots.in_use == 0 and slots.held == {} and not slots._waiting
