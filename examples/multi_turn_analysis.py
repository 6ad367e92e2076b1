"""Multi-turn analysis in one persistent session, from asyncio: each turn builds on the last one's files and
variables, the way an agent works through a data set step by step.

    python examples/multi_turn_analysis.py

Turn 1 uploads a CSV; turn 2 loads it into a variable; turn 3 uses that variable (the Python interpreter
lives on between runs); turn 4 writes a report that comes back to the host with get_file.
"""

from __future__ import annotations

import asyncio
import json
import random

import isol8rt.aio

TURNS = [
    ("load the data", """
import csv
rows = list(csv.DictReader(open("sales.csv")))
print(f"{len(rows)} rows, columns: {', '.join(rows[0])}")
"""),
    ("total per region (uses `rows` from the last turn)", """
from collections import defaultdict
totals = defaultdict(float)
for row in rows:
    totals[row["region"]] += float(row["amount"])
for region, total in sorted(totals.items()):
    print(f"{region:<6} {total:10.2f}")
"""),
    ("write a report", """
import json
best = max(totals, key=totals.get)
json.dump({"regions": len(totals), "best": best, "total": round(sum(totals.values()), 2)},
          open("report.json", "w"))
print("report.json written")
"""),
]


def sales_csv(rows: int = 200, seed: int = 7) -> str:
    generator = random.Random(seed)
    lines = ["region,product,amount"]
    for _ in range(rows):
        region = generator.choice(["north", "south", "east", "west"])
        lines.append(f"{region},{generator.choice(['tea', 'coffee', 'cocoa'])},{generator.uniform(1, 100):.2f}")
    return "\n".join(lines) + "\n"


async def main() -> None:
    async with isol8rt.aio.Isol8(network="none", timeout_ms=20_000) as engine:
        async with engine.session() as session:
            await session.put_file("sales.csv", sales_csv())
            for number, (title, code) in enumerate(TURNS, start=1):
                result = await session.execute(code=code, runtime="python")
                print(f"--- turn {number}: {title} (exit {result.exit_code}, {result.duration_ms:.0f} ms)")
                print(result.stdout + result.stderr, end="")
                if result.exit_code != 0:
                    raise SystemExit(result.exit_code)
            report = json.loads(await session.get_file("report.json"))
            print(f"--- report from the sandbox: {report}")


if __name__ == "__main__":
    asyncio.run(main())
