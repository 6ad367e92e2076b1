"""What ``isol8rt setup`` says while it works: which image of how many it is building
(``[2/5] building isol8rt:node ...``), and during a step that says nothing for a while (a pull, a long
package install) a heartbeat line, so a three-minute setup never looks hung.

Sans-Docker: a step is any awaitable function, so the tests drive it with a fake build under trio's
MockClock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

#: How long a step may go without a word before the heartbeat says it is still at work, and how often.
HEARTBEAT_S = 15.0

T = TypeVar("T")


def duration(seconds: float) -> str:
    """``42s``, ``2m05s``."""
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


async def with_heartbeat(emit: Callable[[str], None], what: str, work: Callable[[], Awaitable[T]],
                         every_s: float = HEARTBEAT_S) -> T:
    """``await work()``, saying ``... still <what> (<time>)`` every ``every_s`` while it runs. A failure
    of ``work`` is raised as itself (not wrapped in an exception group)."""
    started = trio.current_time()

    async def beat() -> None:
        while True:
            await trio.sleep(every_s)
            emit(f"      ... still {what} ({duration(trio.current_time() - started)})")

    failure: Exception | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(beat)
        try:
            result = await work()
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the nursery, as itself
            failure = exc
        finally:
            nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


class BuildSteps:
    """Numbers the images being built, ``[n/total]``, each step with a heartbeat."""

    def __init__(self, total: int, emit: Callable[[str], None], every_s: float = HEARTBEAT_S) -> None:
        self.total = total
        self.emit = emit
        self.every_s = every_s
        self.current = 0

    async def run(self, image: str, work: Callable[[], Awaitable[T]], verb: str = "building") -> T:
        self.current += 1
        counter = f"[{self.current}/{self.total}]"
        self.emit(f"{counter} {verb} {image} ...")
        started = trio.current_time()
        result = await with_heartbeat(self.emit, f"{verb} {image}", work, self.every_s)
        self.emit(f"{counter} {image}: done in {duration(trio.current_time() - started)}")
        return result
