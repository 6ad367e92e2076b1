"""Stream a program's output to the terminal as it runs, with the trio engine itself.

    python examples/stream_to_terminal.py                       # a demo that reports progress
    python examples/stream_to_terminal.py -r bash -e 'for i in 1 2 3; do echo $i; sleep 1; done'
    python examples/stream_to_terminal.py script.py

stdout goes to stdout and stderr to stderr the moment they arrive; the program's exit code becomes this
script's. Ctrl-C kills the program and removes its container before the script exits.
"""

from __future__ import annotations

import argparse
import os
import sys

import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.runtimes import EXTENSIONS, RUNTIME_NAMES

DEMO = """
import time
for step in range(1, 6):
    print(f"step {step}/5 ...", flush=True)
    time.sleep(0.3)
print("done")
"""


async def stream(request: ExecutionRequest) -> int:
    exit_code = 1
    async with DockerIsol8(Isol8Options(network="none", timeout_ms=60_000)) as engine:
        async for event in engine.execute_stream(request):
            if event.type == "stdout":
                sys.stdout.write(event.data)
                sys.stdout.flush()
            elif event.type == "stderr":
                sys.stderr.write(event.data)
                sys.stderr.flush()
            elif event.type == "exit":
                exit_code = int(event.data)
            elif event.type == "error":
                print(f"isol8rt: {event.data}", file=sys.stderr)
    return exit_code


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream a sandboxed program's output to this terminal.")
    parser.add_argument("file", nargs="?", help="program file (its extension picks the runtime)")
    parser.add_argument("-e", "--eval", metavar="CODE", help="run this code")
    parser.add_argument("-r", "--runtime", choices=RUNTIME_NAMES, help="runtime (default: python)")
    args = parser.parse_args()
    runtime = args.runtime
    if args.file:
        with open(args.file, encoding="utf-8") as file:
            code = file.read()
        runtime = runtime or EXTENSIONS.get(os.path.splitext(args.file)[1].lower(), "python")
    else:
        code = args.eval if args.eval is not None else DEMO
    try:
        sys.exit(trio.run(stream, ExecutionRequest(code=code, runtime=runtime or "python")))
    except KeyboardInterrupt:
        # trio delivered Ctrl-C inside the stream: the engine killed the run and removed its container.
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
