"""Profile the agent as PID 1 in its container, on the warm path: runs of ``print(1)``, each followed by its reset.

    python bench/profile_agent.py --tag isol8rt-agentperf-prof:python [--image isol8rt:python] [--runs 300]
        [--fork-server]

Builds ``--tag`` (an image of your own: it is removed at the end) from ``--image`` with one more file, an
entry point that runs the image's agent under cProfile and writes the profile when sent SIGUSR1; drives
one container through the engine (Container.create, operate, begin_reset, settle, as bench_reset.py does),
then signals it, reads the profile with ``docker exec`` and prints where the agent's time went. Works with
agents of before and after the core's rewrite (both have supervisor.main(argv)).
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time

_PROFILED_MAIN = r'''
import cProfile, signal, sys
sys.path[:0] = ["/opt/isol8rt/lib", "/opt/isol8rt/site"]
profile = cProfile.Profile()
def dump(signum, frame):
    profile.disable()
    profile.dump_stats("/run/isol8rt/agent.prof")
    profile.enable()
signal.signal(signal.SIGUSR1, dump)
profile.enable()
from isol8rt.agent.supervisor import main
main(sys.argv[1:])
'''


def _build(image: str, tag: str) -> None:
    with tempfile.TemporaryDirectory() as context:
        with open(os.path.join(context, "profiled_main.py"), "w") as out:
            out.write(_PROFILED_MAIN)
        with open(os.path.join(context, "Dockerfile"), "w") as out:
            out.write(f"FROM {image}\nCOPY profiled_main.py /opt/isol8rt/profiled_main.py\n"
                      'ENTRYPOINT ["/usr/bin/python3", "-I", "-B", "/opt/isol8rt/profiled_main.py"]\n')
        subprocess.run(["docker", "build", "-q", "-t", tag, context], check=True, capture_output=True)


async def _drive(tag: str, runs: int, fork_server: bool = False) -> bytes:
    import trio

    from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
    from isol8rt.engine.plan import plan_execution
    try:
        from isol8rt.engine.container import Container
    except ImportError:  # a checkout from before the rename
        from isol8rt.engine.sandbox import Sandbox as Container
    from isol8rt.runtimes import RUNTIMES

    options = Isol8Options(pool_size=0, image=tag, fork_server=fork_server)
    async with DockerIsol8(options) as engine:
        spec, configure = engine._container_for(RUNTIMES["python"], tag)
        container = await Container.create(engine._backend, spec, configure)
        try:
            plan = plan_execution(ExecutionRequest(code="print(1)"), options, session=False)
            started = time.perf_counter()
            for _ in range(runs):
                op_id = container.next_id()
                async for _ in container.operate(plan.code.messages(op_id, stdin_open=False), op_id, 10.0):
                    pass
                await container.begin_reset()
                await container.settle()
            print(f"{runs} runs and resets in {time.perf_counter() - started:.2f} s", file=sys.stderr)
            container_id = container.container_id
            subprocess.run(["docker", "kill", "-s", "USR1", container_id], check=True, capture_output=True)
            for _ in range(100):
                done = subprocess.run(["docker", "exec", container_id, "cat", "/run/isol8rt/agent.prof"],
                                      capture_output=True)
                if done.returncode == 0 and done.stdout:
                    return done.stdout
                await trio.sleep(0.1)  # polling a file another process writes; not a test
            raise SystemExit("the agent wrote no profile")
        finally:
            await container.discard()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="isol8rt:python")
    parser.add_argument("--tag", required=True, help="the profiling image to build (a repository of your own)")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--fork-server", action="store_true", help="runs forked from the fork server "
                        "(Isol8Options.fork_server)")
    parser.add_argument("--save", metavar="PATH", help="keep the raw profile (pstats) here")
    args = parser.parse_args()
    if args.tag.split(":")[0] in ("isol8rt", "isol8rt-base", "isol8rt-runtime", "isol8rt-prev", "isol8rt-old"):
        parser.error(f"{args.tag}: not an image of your own")
    import trio

    _build(args.image, args.tag)
    try:
        data = trio.run(_drive, args.tag, args.runs, args.fork_server)
    finally:
        subprocess.run(["docker", "rmi", "-f", args.tag], capture_output=True)
    path = args.save or tempfile.mktemp(suffix=".prof")
    with open(path, "wb") as out:
        out.write(data)
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(path, stream=text).sort_stats(order).print_stats(args.top)
        print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
