"""The agent's entry point, run by the container as ``python3 -I -S -B /opt/isol8rt/lib/isol8rt/agent/main.py``.

Isolated mode without site (-I -S) keeps the environment, the user's site-packages and the system's
sitecustomize out of the agent and out of its boot; this file then puts back exactly what the agent needs:
its own sources and the image's private site (msgspec).

The first thing it does is greet the host (see :mod:`isol8rt.agent.greeting`): the greeting needs
nothing loaded, and the rest of the agent loads while the host's Configure is on its way.
"""

import posix
import sys

_LIB = __file__.rsplit("/", 3)[0]
if __name__ == "__main__":
    sys.path[:0] = [_LIB, "/opt/isol8rt/site"]
    from isol8rt.agent import greeting

    _frame = memoryview(greeting.frame(posix.getpid()))
    while _frame:
        _frame = _frame[posix.write(1, _frame):]

    from isol8rt.agent.supervisor import main  # noqa: E402

    main(sys.argv[1:], greeted=True)
