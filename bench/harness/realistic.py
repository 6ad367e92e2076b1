"""The realistic section: what agents' code does, not hello worlds. pandas over a 100k-row CSV, a matplotlib
chart returned as a PNG, json and re over 10 MB of log lines (Python, on the data image that
``isol8rt setup --preset data`` builds) and a JSON transform in Node (its thin image).

Each workload gets a cold row (a fresh engine per run), a warm row (runs back to back on a warm pool) and a
row of 4 concurrent callers (its p50/p99 and throughput). A warm Python hello world on the same data-image
engine is the yardstick of the ratio. The data image's isol8rt.preload label turns its fork server on, so
its warm Python rows are forks of an interpreter that has imported numpy, pandas and matplotlib; the fork
section sets the same pandas workload preloaded against a fresh interpreter in one run (its target).
"""

from __future__ import annotations

import time
from typing import Callable

import trio

from isol8rt import DockerIsol8, ExecutionRequest, ExecutionResult, Isol8Options

from .results import Result, unavailable
from .stats import rate

_now = time.perf_counter
Check = Callable[[ExecutionResult], "str | None"]

CSV_ROWS = 100_000
TEXT_BYTES = 10 * 1024 * 1024


def csv_data(rows: int = CSV_ROWS) -> bytes:
    """A deterministic CSV: id, one of 20 groups, a value and a day."""
    lines = ["id,group,value,day"]
    lines += [f"{i},g{i % 20:02d},{(i * 7919) % 10007 / 100:.2f},2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
              for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


PANDAS = """
import pandas as pd
df = pd.read_csv("data.csv", parse_dates=["day"])
summary = df.groupby("group").agg(n=("value", "size"), mean=("value", "mean"), top=("value", "max"),
                                  months=("day", lambda days: days.dt.month.nunique()))
print(len(summary))
"""

CHART = """
import numpy as np
import matplotlib.pyplot as plt
x = np.linspace(0, 20, 2000)
fig, ax = plt.subplots(figsize=(8, 4))
for k in range(1, 4):
    ax.plot(x, np.sin(x * k) / k, label=f"k={k}")
ax.legend()
ax.set_title("three sines")
plt.show()
"""

TEXT = f"""
import json, re
levels = ["INFO", "WARN", "ERROR", "DEBUG"]
lines, size, i = [], 0, 0
while size < {TEXT_BYTES}:
    line = json.dumps({{"ts": f"2026-12-04T05:{{i % 60:02d}}:{{i * 7 % 60:02d}}Z", "level": levels[i % 4],
                       "path": f"/api/items/{{i % 5000}}", "status": 500 if i % 13 == 0 else 200,
                       "ms": i % 997, "user": f"user{{i % 300}}@example.com"}})
    lines.append(line)
    size += len(line) + 1
    i += 1
text = "\\n".join(lines)
item = re.compile(r"/api/items/(\\d+)")
ids, errors, slow = set(), 0, 0
for line in text.splitlines():
    record = json.loads(line)
    errors += record["status"] >= 500
    slow += record["ms"] > 900
    ids.add(item.search(record["path"]).group(1))
users = set(re.findall(r"[\\w.]+@[\\w.]+", text))
print(len(ids), len(users))
"""

NODE = """
const rows = Array.from({ length: 100000 }, (_, i) => ({ id: i, group: 'g' + (i % 20), value: ((i * 7919) % 10007) / 100,
  tags: ['a', 'b', String(i % 7)] }));
const parsed = JSON.parse(JSON.stringify(rows));
const totals = {};
for (const row of parsed) if (row.value > 10) totals[row.group] = (totals[row.group] || 0) + row.value;
const out = Object.entries(totals).map(([group, value]) => ({ group, value: Math.round(value) }))
  .sort((a, b) => a.group.localeCompare(b.group));
console.log(JSON.parse(JSON.stringify(out)).length);
"""


def _stdout_is(expected: str) -> Check:
    def check(result: ExecutionResult) -> str | None:
        if result.exit_code != 0 or result.stdout != expected:
            return f"exit {result.exit_code}, stdout {result.stdout[:60]!r}, stderr {result.stderr[-160:]!r}"
        return None
    return check


def _one_png(result: ExecutionResult) -> str | None:
    if result.exit_code != 0 or len(result.images or ()) != 1 or not result.images[0].startswith(b"\x89PNG"):
        return f"exit {result.exit_code}, {len(result.images or ())} images, stderr {result.stderr[-160:]!r}"
    return None


def workloads() -> list[tuple[str, str, ExecutionRequest, Check]]:
    """(name, label, request, check); the first three run on the data image."""
    return [
        ("pandas", "pandas: read a 100k-row CSV, group by, aggregate",
         ExecutionRequest(code=PANDAS, files={"data.csv": csv_data()}), _stdout_is("20\n")),
        ("matplotlib", "matplotlib: a line chart, returned as a PNG", ExecutionRequest(code=CHART), _one_png),
        ("text", "json + re over 10 MB of log lines", ExecutionRequest(code=TEXT), _stdout_is("5000 300\n")),
        ("node", "node: a JSON transform of 100k objects", ExecutionRequest(code=NODE, runtime="node"),
         _stdout_is("20\n")),
    ]


async def data_image(client, settings) -> str | None:
    """The image the Python workloads run on: --data-image, or the preset `isol8rt setup --preset data` built."""
    if settings.data_image:
        return settings.data_image
    from isol8rt.images import find_baked_image

    return await find_baked_image(client, "python", ["pandas", "matplotlib"])



async def _timed(engine, request: ExecutionRequest, check: Check) -> tuple[float | None, str | None]:
    started = _now()
    try:
        outcome = await engine.execute(request)
    except Exception as exc:  # noqa: BLE001 - counted and reported
        return None, f"{type(exc).__name__}: {exc}"
    return (_now() - started) * 1000, check(outcome)


async def _warm(engine, name: str, label: str, request: ExecutionRequest, check: Check, settings,
                **params) -> list[Result]:
    s = settings
    warm = Result(id=f"realistic.{name}.warm", group="realistic", label=f"{label}, warm, back to back",
                  params={**params, "warmup": s.realistic_warmup})
    started = _now()
    for index in range(s.realistic_warmup + s.realistic_runs):
        latency, problem = await _timed(engine, request, check)
        warm.record(problem, latency or 0.0, keep=index >= s.realistic_warmup)
        if _now() - started > s.loop_cap_s and len(warm.samples) >= 3:
            warm.note = f"stopped at the {s.loop_cap_s:g} s cap"
            break
    warm.wall_s = _now() - started
    crowd = Result(id=f"realistic.{name}.c4", group="realistic", label=f"{label}, 4 concurrent callers",
                   params={**params, "concurrency": 4, "seconds": s.realistic_seconds})
    deadline = _now() + s.realistic_seconds
    started = _now()

    async def caller() -> None:
        while _now() < deadline:
            latency, problem = await _timed(engine, request, check)
            crowd.record(problem, latency or 0.0)

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(caller)
    crowd.wall_s = _now() - started
    crowd.throughput = rate(len(crowd.samples), crowd.wall_s)
    return [warm, crowd]


async def _cold(name: str, label: str, request: ExecutionRequest, check: Check, settings, run_image: str | None,
                **params) -> Result:
    result = Result(id=f"realistic.{name}.cold", group="realistic", label=f"{label}, cold (a fresh engine per run)",
                    params={**params, "pool_size": 0, "pool_strategy": "secure"})
    started = _now()
    for _ in range(settings.realistic_cold_runs):
        engine = DockerIsol8(Isol8Options(pool_size=0, pool_strategy="secure", image=run_image))
        try:
            await engine.start()
            latency, problem = await _timed(engine, request, check)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the row goes on
            latency, problem = None, f"{type(exc).__name__}: {exc}"
        finally:
            await engine.stop()
        result.record(problem, latency or 0.0)
    result.wall_s = _now() - started
    return result


async def section_realistic(ctx) -> list[Result]:
    s = ctx.settings
    image = await data_image(ctx.client, s)
    out: list[Result] = []
    python_rows = [w for w in workloads() if w[2].runtime == "python"]
    node_rows = [w for w in workloads() if w[2].runtime == "node"]
    if image is None:
        out += [unavailable(f"realistic.{name}.warm", "realistic", label, "no data image: run `isol8rt build --preset "
                            "data` (or `isol8rt setup --preset data`), or pass --data-image")
                for name, label, _, _ in python_rows]
    else:
        engine = DockerIsol8(Isol8Options(image=image, pool_size=s.pool_size, max_concurrent=s.max_concurrent))
        try:
            await engine.start(prewarm=["python"])
            ctx.progress(f"realistic: warm python hello on {image}")
            hello = Result(id="realistic.hello.warm", group="realistic",
                           label="python hello, warm, on the data image (the yardstick)", params={"image": image})
            for index in range(s.realistic_warmup + s.realistic_runs * 3):
                latency, problem = await _timed(engine, ExecutionRequest(code="print('hello')"),
                                                _stdout_is("hello\n"))
                hello.record(problem, latency or 0.0, keep=index >= s.realistic_warmup)
            out.append(hello)
            for name, label, request, check in python_rows:
                ctx.progress(f"realistic {name}: {s.realistic_runs} warm runs, then 4 callers for "
                             f"{s.realistic_seconds:g} s")
                out += await _warm(engine, name, label, request, check, s, image=image)
        finally:
            await engine.stop()
        for name, label, request, check in python_rows:
            ctx.progress(f"realistic {name}: {s.realistic_cold_runs} cold runs")
            out.append(await _cold(name, label, request, check, s, image, image=image))
    engine = DockerIsol8(Isol8Options(pool_size=s.pool_size, max_concurrent=s.max_concurrent))
    try:
        await engine.start(prewarm=["node"])
        for name, label, request, check in node_rows:
            ctx.progress(f"realistic {name}: warm runs, 4 callers, cold runs")
            out += await _warm(engine, name, label, request, check, s, image="isol8rt:node")
    finally:
        await engine.stop()
    for name, label, request, check in node_rows:
        out.append(await _cold(name, label, request, check, s, None, image="isol8rt:node"))
    return out
