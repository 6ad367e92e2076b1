"""The programs the benchmark runs. Every hello world prints exactly ``hello\\n``."""

from __future__ import annotations

import shlex

from isol8rt import ExecutionRequest

HELLO_CODE = {
    "python": "print('hello')",
    "bash": "echo hello",
    "node": "console.log('hello')",
    "bun": "console.log('hello')",
    "deno": "console.log('hello')",
}
EXPECTED = b"hello\n"

#: The same hello world as a command line, for the docker exec / docker run baselines.
HELLO_ARGV = {
    "python": ["python3", "-c", "print('hello')"],
    "bash": ["bash", "-c", "echo hello"],
    "node": ["node", "-e", "console.log('hello')"],
    "bun": ["bun", "-e", "console.log('hello')"],
    "deno": ["deno", "eval", "console.log('hello')"],
}


def hello(runtime: str) -> ExecutionRequest:
    return ExecutionRequest(runtime=runtime, code=HELLO_CODE[runtime])


#: The fork section's data workload: a 100k-row frame, grouped and aggregated (pandas and numpy).
PANDAS_CODE = ("import numpy as np, pandas as pd\n"
               "frame = pd.DataFrame({'key': np.arange(100_000) % 100, 'value': np.arange(100_000, dtype=float)})\n"
               "print(frame.groupby('key')['value'].agg(['sum', 'mean']).shape)\n")
PANDAS_OUTPUT = "(100, 2)\n"


def pandas_workload(*, fresh_interpreter: bool = False) -> ExecutionRequest:
    """The data workload; ``fresh_interpreter``: as a shell command starting its own python3 (no fork, no
    preload: every import paid), in the same pool."""
    if fresh_interpreter:
        return ExecutionRequest(runtime="python", cmd="python3 -c " + shlex.quote(PANDAS_CODE))
    return ExecutionRequest(runtime="python", code=PANDAS_CODE)


def output_of(size: int) -> ExecutionRequest:
    """A python program that writes ``size`` bytes to stdout."""
    return ExecutionRequest(runtime="python", code=f"import sys\nsys.stdout.write('x' * {size})\n")


def file_in(size: int) -> ExecutionRequest:
    """``size`` bytes handed in as /sandbox/in.bin; the program prints its size."""
    return ExecutionRequest(runtime="python", files={"/sandbox/in.bin": b"\x07" * size},
                            code="import os\nprint(os.path.getsize('/sandbox/in.bin'))\n")


def file_out(size: int) -> ExecutionRequest:
    """The program writes ``size`` bytes to /sandbox/out.bin, read back through output_paths."""
    return ExecutionRequest(runtime="python", output_paths=["/sandbox/out.bin"],
                            code=f"open('/sandbox/out.bin', 'wb').write(b'\\x07' * {size})\n")


def size_name(size: int) -> str:
    for unit, factor in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def parse_size(text: str) -> int:
    """``1KiB``, ``64k``, ``10MiB``, ``10m`` or a number of bytes."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    factor = 1
    if value and value[-1] in "km":
        factor = 1 << (10 if value[-1] == "k" else 20)
        value = value[:-1]
    try:
        size = int(float(value) * factor)
    except ValueError:
        raise ValueError(f"{text!r} is not a size like 1KiB or 10MiB") from None
    if size <= 0:
        raise ValueError(f"{text!r} must be more than zero bytes")
    return size
