"""From timestamps to phase durations. No I/O.

Timestamps are ``time.perf_counter()`` seconds taken by the harness's instrumentation (see
``instrument.py``); ``inject_ms`` and ``process_ms`` come from the agent's Exit message (``start_ms``:
the Run's arrival to the process's start, i.e. writing the files and handing the program to the
interpreter started ahead of time, or spawning one; ``duration_ms``: the process's start to its end).
Every phase is the gap between two consecutive marks, so the phases of a run add up to its latency.
"""

from __future__ import annotations


def _ms(marks: dict[str, float], start: str, end: str) -> float:
    return (marks[end] - marks[start]) * 1000


#: (phase, from mark, to mark) before the container is in hand, for each kind of run; then the run itself
#: (inject, process, collect: from "acquired" to "result"), then what follows it.
_WARM_BEFORE = (("prepare", "call", "lease"), ("acquire", "lease", "acquired"))
_COLD_BEFORE = (("prepare", "call", "create0"), ("create", "create0", "create1"), ("attach", "create1", "attach1"),
                ("start", "attach1", "start1"), ("ready", "start1", "ready"), ("configure", "ready", "acquired"))
_AFTER = (("release", "result", "released"), ("finish", "released", "return"))


def _phases(marks: dict[str, float], before: tuple, inject_ms: float | None,
            process_ms: float | None) -> dict[str, float] | None:
    needed = {mark for _, start, end in before + _AFTER for mark in (start, end)}
    if inject_ms is None or process_ms is None or not needed <= marks.keys():
        return None
    phases = {name: _ms(marks, start, end) for name, start, end in before}
    run = _ms(marks, "acquired", "result")
    phases.update(inject=inject_ms, process=process_ms, collect=run - inject_ms - process_ms)
    phases.update({name: _ms(marks, start, end) for name, start, end in _AFTER})
    return phases


def warm_phases(marks: dict[str, float], inject_ms: float | None, process_ms: float | None) -> dict[str, float] | None:
    """prepare (execute() to the pool lease: validation, planning), acquire (a container from the pool,
    including the wait for its verified reset), inject, process, collect (the rest of the round trip:
    sending the run and its files, the agent writing them, output, output files and Exit coming back,
    decoding), release (shaping the result, handing the container back and starting its reset), finish
    (the rest of execute())."""
    return _phases(marks, _WARM_BEFORE, inject_ms, process_ms)


def cold_phases(marks: dict[str, float], inject_ms: float | None, process_ms: float | None) -> dict[str, float] | None:
    """prepare (execute() to the container create call: validation, planning, the container's spec and
    seccomp filter), create, attach, start (the Docker API calls), ready (after /start returned, the wait
    for the agent's Ready), configure (sending the agent its Configure), then inject, process, collect,
    release and finish as in :func:`warm_phases`."""
    return _phases(marks, _COLD_BEFORE, inject_ms, process_ms)
