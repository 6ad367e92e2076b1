"""The agent's boot, exec to Ready, on its own; and the floor, ``python3 -I -S -c pass``, in the same container.

    python bench/bench_agent_boot.py [--image isol8rt:python] [-n 50] [--json PATH]

Both are timed inside one container of the image (its entrypoint kept idle), by a timer that runs there:
it starts the image's own entrypoint as a child with pipes for stdin and stdout and reads until the
agent's first frame (its Ready) is complete (``agent``), then sends a Ping and reads until its answer
(``serving``: the agent has loaded everything and handles messages), then kills it; and it starts the
floor and waits for its exit. ``serving`` keeps the first number honest: an agent that greets before it
has loaded its code moves that cost after Ready, where the host's Configure waits for it.
Timing in the container leaves Docker's start and attach out: what is left is the exec, the interpreter's
start and everything the agent does before its first word. Rounds alternate between the two, so a noisy
moment of the machine falls on both. The agent runs as a child (pid > 1), as root, as it would as PID 1:
it takes its baseline and task census, then greets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

# Runs inside the container (python3 -I -S): only the standard library.
_TIMER = r"""
import json, os, subprocess, sys, time
argv, runs = json.loads(sys.argv[1]), int(sys.argv[2])
floor, agent, serving = [], [], []
# Ping(id=1), msgpack: {"t": "ping", "id": 1}
PING = bytes([0, 0, 0, 12, 0x82, 0xA1]) + b"t" + bytes([0xA4]) + b"ping" + bytes([0xA2]) + b"id" + bytes([1])
def read_frame(fd):
    head = b""
    while len(head) < 4:
        chunk = os.read(fd, 4 - len(head))
        if not chunk:
            raise SystemExit("the agent exited before it answered")
        head += chunk
    need = int.from_bytes(head, "big")
    while need:
        need -= len(os.read(fd, need))
def boot():
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    read_frame(child.stdout.fileno())
    greeted = time.perf_counter()
    os.write(child.stdin.fileno(), PING)
    read_frame(child.stdout.fileno())
    served = time.perf_counter()
    child.kill()
    child.wait()
    return greeted - started, served - started
for index in range(runs + 3):
    started = time.perf_counter()
    subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", "pass"], check=True)
    f = time.perf_counter() - started
    a, s = boot()
    if index >= 3:
        floor.append(f * 1000)
        agent.append(a * 1000)
        serving.append(s * 1000)
print(json.dumps({"floor_ms": floor, "agent_ms": agent, "serving_ms": serving}))
"""


def _p(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(image: str, runs: int) -> dict:
    """Boot and floor samples (ms) of ``image``'s agent, timed in one of its containers."""
    inspected = json.loads(subprocess.run(["docker", "image", "inspect", image], check=True,
                                          capture_output=True).stdout)[0]["Config"]
    argv = (inspected.get("Entrypoint") or []) + (inspected.get("Cmd") or [])
    container = subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", "--user", "0:0",
                                "--entrypoint", "/bin/sleep", image, "infinity"],
                               check=True, capture_output=True, text=True).stdout.strip()
    try:
        out = subprocess.run(["docker", "exec", "-u", "0", container, "/usr/bin/python3", "-I", "-S", "-c", _TIMER,
                              json.dumps(argv), str(runs)], check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    samples = json.loads(out)
    return {"image": image, "runs": runs,
            **{f"{name}_p50": round(_p(samples[f"{name}_ms"], 0.5), 2) for name in ("floor", "agent", "serving")},
            **{f"{name}_p90": round(_p(samples[f"{name}_ms"], 0.9), 2) for name in ("floor", "agent", "serving")},
            "samples": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="append", help="image(s) to time (default isol8rt:python)")
    parser.add_argument("-n", "--runs", type=int, default=50)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    results = [measure(image, args.runs) for image in args.image or ["isol8rt:python"]]
    for result in results:
        print(f"{result['image']}: agent exec->Ready p50 {result['agent_p50']:.1f} ms (p90 {result['agent_p90']:.1f}); "
              f"exec->serving p50 {result['serving_p50']:.1f} ms (p90 {result['serving_p90']:.1f}); "
              f"floor python3 -I -S -c pass p50 {result['floor_p50']:.1f} ms (p90 {result['floor_p90']:.1f})",
              file=sys.stderr)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
