"""Runs the benchmark's sections and gathers their results into a document (see ``results.py``).

Every latency is wall time around one call (``execute()``, a RemoteIsol8 call, or the Docker API calls of
a baseline) measured with ``time.perf_counter`` in this process; warm-up runs are left out. A section that
fails is reported as failed (with its error) and the rest still runs.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
import sys
import time
from typing import Any, Awaitable, Callable

import trio

from isol8rt import ExecutionRequest, ExecutionResult, Isol8Options, SecurityConfig
from isol8rt.docker import DockerClient

from . import baselines, machine, server
from .cli_runs import section_cli
from .instrument import HOOKS, TimedBackend, TimedIsol8, timed_execute
from .phases import cold_phases, warm_phases
from .realistic import section_realistic
from .results import COLD_PHASES, WARM_PHASES, Result, build_document, unavailable
from .settings import Settings
from .stats import percentile, rate
from .workloads import PANDAS_OUTPUT, file_in, file_out, hello, output_of, pandas_workload, size_name

_now = time.perf_counter
Check = Callable[[ExecutionResult], str | None]


def hello_check(result: ExecutionResult) -> str | None:
    if result.exit_code != 0 or result.stdout != "hello\n":
        return f"exit {result.exit_code}, stdout {result.stdout[:60]!r}, stderr {result.stderr[-120:]!r}"
    return None


class Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = _now()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{_now() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ loops


async def _one(engine, request: ExecutionRequest, check: Check, result: Result, keep: bool, **kwargs) -> None:
    """One timed run, added to ``result`` when ``keep`` (a warm-up run is not)."""
    try:
        outcome, marks = await timed_execute(engine, request, **kwargs)
    except Exception as exc:  # noqa: BLE001 - counted and reported, the loop goes on
        result.fail(exc)
        return
    phases = warm_phases(marks.t, marks.inject_ms, marks.process_ms)
    if phases is None and marks.inject_ms is not None and marks.process_ms is not None:
        phases = {"inject": marks.inject_ms, "process": marks.process_ms}  # a session run: no pool lease
    result.record(check(outcome), marks.latency_ms(), phases, keep=keep)


async def sequential(engine, request: ExecutionRequest, result: Result, settings: Settings, *, runs: int,
                     warmup: int, check: Check = hello_check, think_s: float = 0.0, **kwargs) -> Result:
    """Runs one after the other (``think_s`` of idle time after each)."""
    started = _now()
    for index in range(warmup + runs):
        await _one(engine, request, check, result, index >= warmup, **kwargs)
        if think_s:
            await trio.sleep(think_s)
        if _now() - started > settings.loop_cap_s and len(result.samples) >= 5:
            result.note = (result.note + "; " if result.note else "") + (
                f"stopped at the {settings.loop_cap_s:g} s cap after {len(result.samples)} runs")
            break
    result.wall_s = _now() - started
    return result


Execute = Callable[[], Awaitable[float | None]]


async def callers(executes: list[Execute], seconds: float) -> tuple[list[float], int, float]:
    """One caller per ``execute`` (each returns a latency, or None on error), each calling back to back
    until ``seconds`` have passed; returns (latencies, errors, elapsed) with elapsed up to the last end."""
    samples: list[float] = []
    errors = 0
    deadline = _now() + seconds

    async def caller(execute: Execute) -> None:
        nonlocal errors
        while _now() < deadline:
            latency = await execute()
            if latency is None:
                errors += 1
            else:
                samples.append(latency)

    started = _now()
    async with trio.open_nursery() as nursery:
        for execute in executes:
            nursery.start_soon(caller, execute)
    return samples, errors, _now() - started


def engine_call(engine, request: ExecutionRequest, result: Result | None = None,
                check: Check = hello_check) -> Execute:
    """An ``execute`` for :func:`callers`: one timed engine run (phases into ``result`` when given)."""

    async def execute() -> float | None:
        try:
            outcome, marks = await timed_execute(engine, request)
        except Exception:  # noqa: BLE001
            return None
        if check(outcome):
            return None
        if result is not None:
            result.add_phases(warm_phases(marks.t, marks.inject_ms, marks.process_ms))
        return marks.latency_ms()

    return execute


def client_call(client, request: ExecutionRequest, check: Check = hello_check) -> Execute:
    """An ``execute`` for :func:`callers` through a RemoteIsol8."""

    async def execute() -> float | None:
        started = _now()
        try:
            outcome = await client.execute(request)
        except Exception:  # noqa: BLE001
            return None
        if check(outcome):
            return None
        return (_now() - started) * 1000

    return execute


# ------------------------------------------------------------------------------------------------ sections


def _warm_result(result_id: str, label: str, **params) -> Result:
    return Result(id=result_id, group=params.pop("group", "warm"), label=label, params=params,
                  phase_order=list(WARM_PHASES))


async def section_warm(ctx: Context) -> list[Result]:
    out = []
    for runtime in ctx.settings.runtimes:
        ctx.progress(f"warm {runtime}: {ctx.settings.runs} runs in sequence")
        result = _warm_result(f"warm.{runtime}.sequential", f"warm {runtime} hello, back to back",
                              runtime=runtime, mode="sequential", pool_size=ctx.settings.pool_size,
                              warmup=ctx.settings.warmup)
        out.append(await sequential(ctx.engine, hello(runtime), result, ctx.settings, runs=ctx.settings.runs,
                                    warmup=ctx.settings.warmup))
    return out


async def section_modes(ctx: Context) -> list[Result]:
    s = ctx.settings
    ctx.progress(f"staggered python: {s.runs} runs, {s.think_ms:g} ms apart")
    staggered = _warm_result("mode.python.staggered", f"warm python hello, {s.think_ms:g} ms think time between runs",
                             group="mode", runtime="python", mode="staggered", think_ms=s.think_ms,
                             warmup=s.warmup)
    await sequential(ctx.engine, hello("python"), staggered, s, runs=s.runs, warmup=s.warmup,
                     think_s=s.think_ms / 1000)
    ctx.progress(f"burst python: {s.bursts} bursts of {s.burst_size}")
    burst = _warm_result(f"mode.python.burst{s.burst_size}",
                         f"warm python hello, bursts of {s.burst_size} at once from idle", group="mode",
                         runtime="python", mode="burst", burst_size=s.burst_size, bursts=s.bursts,
                         pause_s=s.burst_pause_s, warmup_bursts=1)
    makespans = []
    started = _now()
    for index in range(1 + s.bursts):
        await trio.sleep(s.burst_pause_s)
        target = burst if index else Result(id="", group="", label="")
        begun = _now()
        async with trio.open_nursery() as nursery:
            for _ in range(s.burst_size):
                nursery.start_soon(_one, ctx.engine, hello("python"), hello_check, target, True)
        if index:
            makespans.append(_now() - begun)
        else:
            burst.errors += target.errors
    burst.wall_s = _now() - started
    burst.throughput = rate(len(burst.samples), sum(makespans))
    burst.extra["makespan_ms_p50"] = round(percentile(makespans, 50) * 1000, 3) if makespans else None
    return [staggered, burst]


async def section_sweep(ctx: Context) -> list[Result]:
    s = ctx.settings
    out = []
    for count in s.concurrency:
        ctx.progress(f"sweep python: {count} concurrent callers for {s.sweep_seconds:g} s")
        result = _warm_result(f"sweep.python.c{count}", f"warm python hello, {count} concurrent callers",
                              group="sweep", runtime="python", concurrency=count, seconds=s.sweep_seconds,
                              warmup_s=s.sweep_warmup_s, pool_size=s.pool_size, max_concurrent=s.max_concurrent)
        await callers([engine_call(ctx.engine, hello("python"))] * count, s.sweep_warmup_s)
        samples, errors, elapsed = await callers([engine_call(ctx.engine, hello("python"), result)] * count,
                                                 s.sweep_seconds)
        result.samples, result.errors, result.wall_s = samples, errors, elapsed
        result.throughput = rate(len(samples), elapsed)
        out.append(result)
    return out


async def section_session(ctx: Context) -> list[Result]:
    s = ctx.settings
    ctx.progress(f"persistent session python: {s.session_runs} runs")
    result = Result(id="session.python", group="session", label="python hello in a persistent session "
                    "(its live interpreter)", params={"runtime": "python", "warmup": s.warmup},
                    phase_order=[])
    session_id = "isol8rt-bench"
    try:
        await sequential(ctx.engine, hello("python"), result, s, runs=s.session_runs, warmup=max(s.warmup, 1),
                         session_id=session_id)
    finally:
        await ctx.engine.close_session(session_id)
    return [result]


async def _interleaved(pairs: list[tuple[Execute, Result]], runs: int, warmup: int,
                       cap_s: float) -> None:
    """Alternate between the callables (the order swapped every round), so that both see the same
    moments of a noisy machine."""
    started = _now()
    for index in range(warmup + runs):
        order = pairs if index % 2 == 0 else pairs[::-1]
        for execute, result in order:
            latency = await execute()
            if latency is None:
                result.errors += 1
            elif index >= warmup:
                result.samples.append(latency)
        if _now() - started > cap_s and len(pairs[0][1].samples) >= 5:
            for _, result in pairs:
                result.note = f"stopped at the {cap_s:g} s cap"
            break
    for _, result in pairs:
        result.wall_s = _now() - started


async def section_network(ctx: Context) -> list[Result]:
    s = ctx.settings
    ctx.progress("filtered networking: starting an engine")
    none = _warm_result("network.python.none", "warm python hello, network none (interleaved with filtered)",
                        group="network", runtime="python", network="none", warmup=s.warmup)
    filtered = _warm_result("network.python.filtered", "warm python hello, network filtered, no request made "
                            "(interleaved with none)", group="network", runtime="python", network="filtered",
                            warmup=s.warmup)
    engine = TimedIsol8(Isol8Options(network="filtered", pool_size=s.pool_size, max_concurrent=s.max_concurrent))
    try:
        await engine.start(prewarm=["python"])
        ctx.progress(f"filtered vs none: {s.network_runs} runs each, interleaved")
        await _interleaved([(engine_call(ctx.engine, hello("python"), none), none),
                            (engine_call(engine, hello("python"), filtered), filtered)],
                           s.network_runs, s.warmup, s.loop_cap_s * 2)
    finally:
        await engine.stop()
    return [none, filtered]


async def section_server(ctx: Context) -> list[Result]:
    s = ctx.settings
    c = s.server_concurrency
    ids = ("server.python.library", "server.python.server", "server.python.library.staggered",
           "server.python.server.staggered", f"server.python.library.c{c}", f"server.python.server.c{c}")
    labels = ("library call, back to back (interleaved with the server)", "RemoteIsol8 -> isol8rt serve on "
              "loopback, back to back (interleaved with the library)",
              f"library call, {s.think_ms:g} ms think time (interleaved with the server)",
              f"RemoteIsol8 -> isol8rt serve, {s.think_ms:g} ms think time (interleaved with the library)",
              f"library, {c} concurrent callers", f"server, {c} concurrent callers")
    reason = server.available()
    if reason:
        return [unavailable(i, "server", label, reason) for i, label in zip(ids, labels)]
    ctx.progress("server: starting isol8rt serve")
    try:
        process = await server.start(ctx.nursery, pool_size=s.pool_size, max_concurrent=s.max_concurrent)
    except RuntimeError as exc:
        return [unavailable(i, "server", label, str(exc)) for i, label in zip(ids, labels)]
    params = {"runtime": "python", "pool_size": s.pool_size, "max_concurrent": s.max_concurrent}
    library, remote, library_s, remote_s, library_c, remote_c = (
        Result(id=i, group="server", label=label, params=dict(params)) for i, label in zip(ids, labels))
    clients = [process.client() for _ in range(c)]
    think_s = s.think_ms / 1000
    try:
        for client in clients:
            await client.start()
        ctx.progress(f"server vs library: {s.server_runs} runs each, back to back, interleaved")
        await _interleaved([(engine_call(ctx.engine, hello("python")), library),
                            (client_call(clients[0], hello("python")), remote)], s.server_runs, s.warmup,
                           s.loop_cap_s * 2)
        staggered_runs = min(s.server_runs, s.runs)
        ctx.progress(f"server vs library: {staggered_runs} runs each, {s.think_ms:g} ms apart, interleaved")
        await _interleaved([(_then_think(engine_call(ctx.engine, hello("python")), think_s), library_s),
                            (_then_think(client_call(clients[0], hello("python")), think_s), remote_s)],
                           staggered_runs, s.warmup, s.loop_cap_s)
        for result in (library_s, remote_s):
            result.params["think_ms"] = s.think_ms
        ctx.progress(f"server vs library: {c} concurrent callers, {s.server_seconds:g} s each, in rounds")
        await _throughput_rounds(library_c, [engine_call(ctx.engine, hello("python"))] * c,
                                 remote_c, [client_call(client, hello("python")) for client in clients],
                                 SERVER_ROUNDS, s.server_seconds / SERVER_ROUNDS,
                                 max(s.sweep_warmup_s, s.server_seconds / SERVER_ROUNDS))
    finally:
        for client in clients:
            with trio.CancelScope(shield=True):
                await client.stop()
        await process.stop()
        ctx.progress("server: stopped")
    for result in (library_c, remote_c):
        result.params["concurrency"] = c
    return [library, remote, library_s, remote_s, library_c, remote_c]


#: Rounds of the server's throughput comparison, each side in turn (the order swapped every round), so
#: that a slow moment of the machine falls on both.
SERVER_ROUNDS = 4


def _then_think(execute: Execute, think_s: float) -> Execute:
    """``execute``, then ``think_s`` of idle time (not part of the latency)."""

    async def staggered() -> float | None:
        latency = await execute()
        await trio.sleep(think_s)
        return latency

    return staggered


async def _throughput_rounds(first: Result, first_calls: list[Execute], second: Result, second_calls: list[Execute],
                             rounds: int, seconds: float, warmup_s: float) -> None:
    """Closed-loop throughput of two sets of callers, alternating in ``rounds`` (the order swapped every
    round), after a warm-up of each."""
    for calls in (first_calls, second_calls):
        await callers(calls, warmup_s)
    for index in range(rounds):
        order = [(first, first_calls), (second, second_calls)]
        for result, calls in (order if index % 2 == 0 else order[::-1]):
            samples, errors, took = await callers(calls, seconds)
            result.samples += samples
            result.errors += errors
            result.wall_s += took
    for result in (first, second):
        result.throughput = rate(len(result.samples), result.wall_s)


def tenant_call(engine, request: ExecutionRequest, tenants: list[str]) -> Execute:
    """An ``execute`` for :func:`callers` whose runs go to ``tenants`` in turn (tenant-bound containers:
    each tenant's runs reuse only that tenant's containers)."""
    turns = itertools.cycle(tenants)

    async def execute() -> float | None:
        started = _now()
        try:
            outcome = await engine.execute(request, tenant=next(turns))
        except Exception:  # noqa: BLE001
            return None
        if hello_check(outcome):
            return None
        return (_now() - started) * 1000

    return execute


#: The keys of the tenants section: one, and four taking turns.
_KEYS = ["key-1", "key-2", "key-3", "key-4"]


async def section_tenants(ctx: Context) -> list[Result]:
    """What binding pooled containers to tenants costs: one key against four keys taking turns, back to
    back (interleaved) and with 4 concurrent callers (in rounds). The warm engine's pool holds room for
    every key's containers (max_concurrent), as a server's does."""
    s = ctx.settings
    params = {"runtime": "python", "pool_size": s.pool_size, "max_concurrent": s.max_concurrent}
    one = Result(id="tenants.python.one_key", group="tenants", label="warm python hello, one key (interleaved "
                 "with four)", params={**params, "keys": 1})
    four = Result(id="tenants.python.four_keys", group="tenants", label="warm python hello, four keys taking "
                  "turns (interleaved with one)", params={**params, "keys": 4})
    one_c = Result(id="tenants.python.one_key.c4", group="tenants", label="4 concurrent callers, one key",
                   params={**params, "keys": 1, "concurrency": 4})
    four_c = Result(id="tenants.python.four_keys.c4", group="tenants", label="4 concurrent callers, four keys "
                    "taking turns", params={**params, "keys": 4, "concurrency": 4})
    ctx.progress(f"tenants: one key vs four, {s.tenant_runs} runs each, interleaved")
    await _interleaved([(tenant_call(ctx.engine, hello("python"), _KEYS[:1]), one),
                        (tenant_call(ctx.engine, hello("python"), _KEYS), four)], s.tenant_runs, s.warmup,
                       s.loop_cap_s)
    ctx.progress(f"tenants: 4 concurrent callers, one key vs four, {s.tenant_seconds:g} s each, in rounds")
    await _throughput_rounds(one_c, [tenant_call(ctx.engine, hello("python"), _KEYS[:1]) for _ in range(4)],
                             four_c, [tenant_call(ctx.engine, hello("python"), _KEYS[i:] + _KEYS[:i])
                                      for i in range(4)],
                             SERVER_ROUNDS, s.tenant_seconds / SERVER_ROUNDS,
                             max(s.sweep_warmup_s, s.tenant_seconds / SERVER_ROUNDS))
    return [one, four, one_c, four_c]


def pandas_check(result: ExecutionResult) -> str | None:
    if result.exit_code != 0 or result.stdout != PANDAS_OUTPUT:
        return f"exit {result.exit_code}, stdout {result.stdout[:60]!r}, stderr {result.stderr[-200:]!r}"
    return None


async def section_fork(ctx: Context) -> list[Result]:
    """The fork server (Isol8Options.fork_server, agent/zygote.py). Python hello throughput with 4 callers:
    the warm engine (fresh interpreters) against an engine of the same pool size whose runs are forks,
    nothing preloaded, in alternating rounds. With ``preload_image`` (an image whose isol8rt.preload
    label names pandas): the pandas workload forked from its preloaded server, the same workload in a
    fresh ``python3`` (every import paid), and the warm engine's python hello, interleaved."""
    s = ctx.settings
    params = {"runtime": "python", "pool_size": s.pool_size, "concurrency": 4}
    default = Result(id="fork.python.default.c4", group="fork", label="warm python hello, 4 callers, fresh "
                     "interpreters (default)", params={**params, "fork_server": False})
    forked = Result(id="fork.python.fork.c4", group="fork", label="warm python hello, 4 callers, fork server "
                    "(nothing preloaded)", params={**params, "fork_server": True})
    ctx.progress(f"fork: 4 callers, fresh interpreters against forks, {s.fork_seconds:g} s each, in rounds")
    engine = TimedIsol8(Isol8Options(pool_size=s.pool_size, max_concurrent=s.max_concurrent, fork_server=True))
    await engine.start(prewarm=["python"])
    try:
        rounds = SERVER_ROUNDS
        await _throughput_rounds(default, [engine_call(ctx.engine, hello("python")) for _ in range(4)],
                                 forked, [engine_call(engine, hello("python")) for _ in range(4)],
                                 rounds, s.fork_seconds / rounds, s.sweep_warmup_s)
    finally:
        await engine.stop()
    if default.throughput:
        forked.extra["throughput_over_default"] = round(forked.throughput / default.throughput, 2)
    out = [default, forked]
    # The pandas rows run in an image that preloads pandas: --preload-image, else the data preset's (its
    # isol8rt.preload label names numpy, pandas and matplotlib.pyplot) when it is built.
    from .realistic import data_image

    image = s.preload_image or await data_image(ctx.client, replace(s, data_image=None))
    if not image:
        return out
    hello_row = Result(id="fork.python.hello", group="fork", label="warm python hello (interleaved with the "
                       "pandas rows)", params={"runtime": "python"})
    preloaded = Result(id="fork.python.pandas.preload", group="fork", label=f"pandas 100k-row group-by, forked "
                       f"from {image}'s preloaded server", params={"runtime": "python", "image": image})
    fresh = Result(id="fork.python.pandas.fresh", group="fork", label=f"pandas 100k-row group-by, a fresh python3 "
                   f"in {image} (imports paid)", params={"runtime": "python", "image": image})
    ctx.progress(f"fork: pandas in {image}, preloaded against fresh, {s.fork_runs} runs each, interleaved")
    pandas_engine = TimedIsol8(Isol8Options(image=image, pool_size=2, max_concurrent=4))
    await pandas_engine.start(prewarm=["python"])
    try:
        await _interleaved([(engine_call(ctx.engine, hello("python")), hello_row),
                            (engine_call(pandas_engine, pandas_workload(), check=pandas_check), preloaded),
                            (engine_call(pandas_engine, pandas_workload(fresh_interpreter=True), check=pandas_check),
                             fresh)], s.fork_runs, min(s.warmup, 5), s.loop_cap_s)
    finally:
        await pandas_engine.stop()
    if hello_row.samples and preloaded.samples:
        preloaded.extra["p50_over_hello_p50"] = round(percentile(preloaded.samples, 50)
                                                      / percentile(hello_row.samples, 50), 2)
    return out + [hello_row, preloaded, fresh]


async def section_sizes(ctx: Context, kinds: tuple[str, ...]) -> list[Result]:
    s = ctx.settings
    largest = max(s.output_sizes + [1 << 20]) + 4096
    engine = TimedIsol8(Isol8Options(pool_size=2, max_concurrent=4, max_output_size=largest))
    out = []
    try:
        await engine.start(prewarm=["python"])
        plan = []
        if "output" in kinds:
            plan += [("output", size, output_of(size), _output_check(size)) for size in s.output_sizes]
        if "files" in kinds:
            plan += [("files.in", size, file_in(size), _file_in_check(size)) for size in s.file_sizes]
            plan += [("files.out", size, file_out(size), _file_out_check(size)) for size in s.file_sizes]
        for kind, size, request, check in plan:
            name = size_name(size)
            ctx.progress(f"{kind} {name}: {s.size_runs} runs")
            what = {"output": f"python writes {name} to stdout", "files.in": f"{name} file handed in (files)",
                    "files.out": f"{name} file read back (output_paths)"}[kind]
            result = _warm_result(f"{kind}.python.{name}", what, group=kind.split(".")[0], runtime="python",
                                  bytes=size, max_output_size=largest, warmup=2)
            await sequential(engine, request, result, s, runs=s.size_runs, warmup=2, check=check)
            if result.samples:
                result.extra["mib_per_s_at_p50"] = round(size / 2**20 / (percentile(result.samples, 50) / 1000), 2)
            out.append(result)
    finally:
        await engine.stop()
    return out


def _output_check(size: int) -> Check:
    def check(result: ExecutionResult) -> str | None:
        if result.exit_code != 0 or len(result.stdout) != size or result.truncated:
            return f"exit {result.exit_code}, {len(result.stdout)} bytes of stdout, truncated {result.truncated}"
        return None
    return check


def _file_in_check(size: int) -> Check:
    def check(result: ExecutionResult) -> str | None:
        if result.exit_code != 0 or result.stdout.strip() != str(size):
            return f"exit {result.exit_code}, stdout {result.stdout[:60]!r} {result.stderr[-120:]!r}"
        return None
    return check


def _file_out_check(size: int) -> Check:
    def check(result: ExecutionResult) -> str | None:
        data = (result.files or {}).get("/sandbox/out.bin")
        if result.exit_code != 0 or data is None or len(data) != size:
            return f"exit {result.exit_code}, file {None if data is None else len(data)} bytes, {result.file_errors}"
        return None
    return check


async def section_cold(ctx: Context) -> list[Result]:
    """Cold runs; with the baselines section on, each alternates with a ``docker run --rm`` of the same
    hello world, so that the ratio of the two compares the same moments of the machine."""
    s = ctx.settings
    out = []
    paired = "baselines" in s.sections
    for runtime in s.cold_runtimes:
        # One row (and partner) per OCI runtime, all interleaved run by run: Docker's default first.
        rows = []
        for oci in [None, *s.oci_runtimes]:
            suffix, under = (f".{oci}", f" under {oci}") if oci else ("", "")
            result = Result(id=f"cold.{runtime}{suffix}", group="cold",
                            label=f"cold {runtime} hello{under}: a fresh engine (pool size 0) per run; latency is "
                                  "execute()",
                            params={"runtime": runtime, "warmup": s.cold_warmup, "pool_size": 0,
                                    "pool_strategy": "secure", "oci_runtime": oci},
                            phase_order=list(COLD_PHASES))
            partner = (baselines.DockerRun(ctx.client, runtime, note=f"interleaved with cold.{runtime}{suffix}",
                                           oci_runtime=oci) if paired else None)
            if partner:
                partner.result.params["warmup"] = s.cold_warmup
            rows.append((oci, result, partner))
        ctx.progress(f"cold {runtime}: {s.cold_runs} fresh engines" + (", each followed by a docker run --rm"
                                                                        if paired else "")
                     + (f", under {', '.join(['default', *s.oci_runtimes])} in turn" if s.oci_runtimes else ""))
        started = _now()
        for index in range(s.cold_warmup + s.cold_runs):
            keep = index >= s.cold_warmup
            for oci, result, partner in rows:
                await _cold_once(runtime, result, keep=keep, oci_runtime=oci)
                if partner:
                    try:
                        await partner.once(keep=keep)
                    except Exception as exc:  # noqa: BLE001
                        partner.result.fail(exc)
            if _now() - started > s.loop_cap_s and len(rows[0][1].samples) >= 3:
                for _, result, _ in rows:
                    result.note = f"stopped at the {s.loop_cap_s:g} s cap"
                break
        for _, result, partner in rows:
            result.wall_s = _now() - started
            out.append(result)
            if partner:
                out.append(partner.result)
    return out


async def _cold_once(runtime: str, result: Result, keep: bool, oci_runtime: str | None = None) -> None:
    backend = TimedBackend()
    t0 = _now()
    options = Isol8Options(pool_size=0, pool_strategy="secure", security=SecurityConfig(oci_runtime=oci_runtime))
    engine = TimedIsol8(options, backend=backend)
    try:
        await engine.start()
        t1 = _now()
        try:
            outcome, marks = await timed_execute(engine, hello(runtime))
        except Exception as exc:  # noqa: BLE001
            result.fail(exc)
            return
        with trio.move_on_after(30):
            await backend.removed.wait()
        t2 = _now()
    finally:
        await engine.stop()
        await backend.aclose()
    t3 = _now()
    phases = cold_phases(marks.t, marks.inject_ms, marks.process_ms)
    if result.record(hello_check(outcome), marks.latency_ms(), phases, keep=keep) and keep:
        side = {"engine_start": (t1 - t0) * 1000, "engine_stop": (t3 - t2) * 1000}
        if backend.removals:
            begun, ended = backend.removals[0]
            side["remove"] = (ended - begun) * 1000
        result.add_phases(side)


async def section_baselines(ctx: Context) -> list[Result]:
    """docker exec for each runtime; docker run --rm too, unless the cold section ran it alongside."""
    s = ctx.settings
    out = []
    measures = [("exec", baselines.docker_exec, s.exec_runs)]
    if "cold" not in s.sections:
        measures.append(("run", baselines.docker_run, s.docker_run_runs))
    for runtime in s.cold_runtimes:
        ctx.progress(f"baseline {runtime}: " + ", ".join(f"docker {kind} x{runs}" for kind, _, runs in measures))
        for kind, measure, runs in measures:
            try:
                out.append(await measure(ctx.client, runtime, runs, warmup=1))
            except Exception as exc:  # noqa: BLE001
                out.append(unavailable(f"baseline.{runtime}.{kind}", "baseline", f"docker {kind} baseline",
                                       f"{type(exc).__name__}: {exc}"[:300], status="failed"))
    return out


# ------------------------------------------------------------------------------------------------ the run


class Context:
    def __init__(self, settings: Settings, client: DockerClient, nursery: trio.Nursery, progress: Progress) -> None:
        self.settings = settings
        self.client = client
        self.nursery = nursery
        self.progress = progress
        self.engine: Any = None  # the warm TimedIsol8, once started


_ENGINE_SECTIONS = {"warm", "modes", "sweep", "session", "network", "server", "tenants", "fork"}


async def run(settings: Settings, *, command: str = "isol8rt bench", quiet: bool = False) -> dict:
    """Run the benchmark and return its result document."""
    progress = Progress(quiet)
    started = _now()
    results: list[Result] = []
    async with DockerClient() as client:
        await client.ping()
        description = await machine.describe(client)
        if not HOOKS:
            progress("note: the engine's internals changed; phase timings are not available")
        async with trio.open_nursery() as nursery:
            ctx = Context(settings, client, nursery, progress)
            try:
                if _ENGINE_SECTIONS & set(settings.sections):
                    warm = sorted(set(settings.runtimes) | {"python"})
                    progress(f"starting the warm engine (pool {settings.pool_size}, prewarm {','.join(warm)})")
                    ctx.engine = TimedIsol8(Isol8Options(pool_size=settings.pool_size,
                                                         max_concurrent=settings.max_concurrent))
                    await ctx.engine.start(prewarm=warm)
                    await trio.sleep(0.5)  # let the last refills and resets finish
                sizes = tuple(kind for kind in ("output", "files") if kind in settings.sections)
                sections = {
                    "warm": section_warm, "modes": section_modes, "sweep": section_sweep,
                    "session": section_session, "network": section_network, "server": section_server,
                    "tenants": section_tenants, "fork": section_fork,
                    # One engine (with a larger output cap) serves both size variants.
                    sizes[0] if sizes else "output": lambda c: section_sizes(c, sizes),
                    "realistic": section_realistic, "cold": section_cold, "baselines": section_baselines,
                    "cli": section_cli,
                }
                for name, section in sections.items():
                    if name not in settings.sections:
                        continue
                    try:
                        results += await section(ctx)
                    except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
                        progress(f"{name} failed: {type(exc).__name__}: {exc}")
                        results.append(unavailable(f"{name}.failed", name, f"the {name} section",
                                                   f"{type(exc).__name__}: {exc}"[:300], status="failed"))
            finally:
                if ctx.engine is not None:
                    await ctx.engine.stop()
                nursery.cancel_scope.cancel()
    description["load_end"] = machine.load_average()
    return build_document(results, machine=description, settings=settings.to_json(), command=command,
                          wall_s=_now() - started)

