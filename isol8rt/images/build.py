"""Running one recipe through the daemon's builder, reporting one line per Dockerfile step."""

from __future__ import annotations

import re
from collections.abc import Callable

import trio

from ..docker import BuildError, DockerClient, tar_stream
from ..errors import SetupError
from .recipe import Recipe

# The classic builder announces each instruction as "Step 3/9 : RUN ...", and reports a failed RUN as
# "The command '/bin/sh -c <the whole script>' returned a non-zero code: 100".
_STEP = re.compile(r"Step (\d+)/(\d+) : (.*)")
_FAILED_COMMAND = re.compile(r"returned a non-zero code: (\d+)")
_SHOWN_INSTRUCTION = 72


class BuildFailed(SetupError):
    """A build step failed. ``log`` holds the build's last lines of output, for the user to read."""

    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


async def build(
    client: DockerClient, recipe: Recipe, *, nocache: bool = False, progress: Callable[[str], None] = print
) -> None:
    started = trio.current_time()
    step = "before the first step"
    # The builder appends one LABEL step per label passed to it; they are not the recipe's steps.
    appended = len(recipe.build_labels())
    try:
        async with client.build_image(
            tar_stream(recipe.tar_entries()),
            tag=recipe.image,
            buildargs=recipe.buildargs or None,
            labels=recipe.build_labels(),
            nocache=nocache,
        ) as events:
            async for event in events:
                for line in (event.stream or "").splitlines():
                    if (match := _STEP.match(line)) is None:
                        continue
                    number, total = int(match[1]), int(match[2]) - appended
                    if number <= total:
                        step = f"step {number}/{total} ({_shorten(match[3])})"
                        elapsed = trio.current_time() - started
                        progress(f"{recipe.image}: step {number}/{total} {elapsed:5.1f}s  {_shorten(match[3])}")
    except BuildError as exc:
        failed = _FAILED_COMMAND.search(exc.message)
        reason = f"the command exited with status {failed[1]}" if failed else _shorten(exc.message, 200)
        raise BuildFailed(
            f"building {recipe.image} failed at {step}: {reason}; "
            "fix the cause shown above (network, disk space) and run `isol8rt setup` again",
            exc.log,
        ) from None


def _shorten(text: str, limit: int = _SHOWN_INSTRUCTION) -> str:
    # "RUN set -eux;     apt-get ..." -> one readable line.
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
