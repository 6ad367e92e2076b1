"""The process: bind, say where, serve until stdin ends, then close everything and flush stdout.

stdin's EOF is the only way to stop (the agent closes it, or dies and the kernel closes it); SIGTERM
and SIGKILL work too, without the final flush.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Sequence

import trio

from isol8rt.agent.proxy_protocol import Error, Listening, SetPolicy, encoder
from isol8rt_proxy.config import Settings, parse_args
from isol8rt_proxy.output import Output
from isol8rt_proxy.policy import Policy, PolicyError
from isol8rt_proxy.server import Proxy, compile_policy


def main(argv: Sequence[str]) -> int:
    settings, initial = parse_args(argv)
    try:
        policy = compile_policy(initial)
    except PolicyError as exc:
        sys.stdout.buffer.write(encoder.encode(Error(message=str(exc), run=initial.run)) + b"\n")
        return 2
    _raise_fd_limit()
    trio.run(_serve, settings, policy, initial)
    return 0


async def _serve(settings: Settings, policy: Policy, initial: SetPolicy) -> None:
    # Both ends are pipes to the agent. dup()s, so that closing the streams leaves fds 0 and 1 alone.
    output = Output(trio.lowlevel.FdStream(os.dup(1)))
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_write, output, nursery.cancel_scope)
        try:
            listeners = await trio.open_tcp_listeners(settings.listen_port, host=settings.listen_host)
            proxy = Proxy(settings, policy, initial.run, output)
            output.emit(Listening(port=listeners[0].socket.getsockname()[1]))
            async with trio.open_nursery() as serving:
                serving.start_soon(proxy.serve, listeners)
                await proxy.obey(stdin)
                serving.cancel_scope.cancel()  # connections end, writing their log lines
        finally:
            output.close()


async def _write(output: Output, everything: trio.CancelScope) -> None:
    await output.run()
    everything.cancel()  # returns early only if stdout is gone: nobody to answer to, so stop


def _raise_fd_limit() -> None:
    # Two descriptors per connection (client and origin); the soft limit may be as low as 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
