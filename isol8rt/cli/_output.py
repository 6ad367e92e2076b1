"""How `isol8rt run` prints a run: its events as they come, or its whole result at the end. One place,
used by both ways a run is made (here, or through the local engine), so the two print the same."""

from __future__ import annotations

import os
import sys


def whole_result(args) -> bool:
    """Whether the run's output is printed from its whole result, at the end, rather than streamed: asked
    for, or needed for what only the result carries (the network log, the kept container's id)."""
    return args.no_stream or args.log_network or args.persist


class Figures:
    """The run's figures: saved in --figures DIR, or else each announced on stderr."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self.count = 0

    def save(self, png: bytes) -> None:
        self.count += 1
        if self.directory is None:
            _write(sys.stderr, f"isol8rt: figure {self.count}: {len(png)}-byte PNG (--figures DIR saves it)\n")
            return
        path = os.path.join(self.directory, f"figure-{self.count}.png")
        with open(path, "wb") as file:
            file.write(png)
        _write(sys.stderr, f"isol8rt: figure {self.count}: {path}\n")


def print_result(result, args, out_file, figures: Figures) -> int:
    """Print a whole result as a run prints it; its exit code."""
    _write(sys.stdout, result.stdout, out_file)
    _write(sys.stderr, result.stderr)
    for shown in result.displays or ():
        _write(sys.stdout, f"{shown.text}\n", out_file)
    for png in result.images or ():
        figures.save(png)
    for entry in result.network_logs or ():
        target = f"{entry.host}:{entry.port}{entry.path or ''}"
        _write(sys.stderr, f"isol8rt: network {entry.action} {entry.method} {target}"
                           f"{f' ({entry.reason})' if entry.reason else ''}\n")
    if args.persist and result.container_id:
        _write(sys.stderr, f"isol8rt: container kept for inspection: {result.container_id[:12]}\n")
    return result.exit_code


def print_event(event, out_file, exit_code: int, figures: Figures) -> int:
    """Print one event of a streamed run; the exit code so far (1 until the exit event says otherwise)."""
    if event.phase == "setup" and event.type in ("stdout", "stderr"):
        # Installer chatter is not the program's output: keep stdout for the program.
        _write(sys.stderr, event.data)
    elif event.type == "stdout":
        _write(sys.stdout, event.data, out_file)
    elif event.type == "stderr":
        _write(sys.stderr, event.data)
    elif event.type == "display":
        _write(sys.stdout, f"{event.data}\n", out_file)
    elif event.type == "image":
        import base64

        figures.save(base64.b64decode(event.data))
    elif event.type == "exit":
        return int(event.data)
    elif event.type == "error":
        _write(sys.stderr, f"isol8rt: {event.data}\n")
        return 1
    return exit_code


def _write(stream, text: str, copy=None) -> None:
    stream.write(text)
    stream.flush()
    if copy is not None:
        copy.write(text)

