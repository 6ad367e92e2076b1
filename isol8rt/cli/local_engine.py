"""`isol8rt run` through the local engine, when one answers on its socket (see :mod:`isol8rt.local`).

The policy, in full (docs/cli.md says the same):

- A run goes to the engine on ``$ISOL8RT_SOCKET`` (else the user's runtime directory) when one answers
  there; else it runs cold, here, exactly as without an engine. ``ISOL8RT_ENGINE=off`` never uses one;
  ``ISOL8RT_ENGINE=auto`` also starts one in the background when none answers (that run itself is cold;
  the engine stops after :data:`AUTO_IDLE_S` unused). Nothing else starts one: ``isol8rt engine start``.
- The engine runs it with exactly the options this command built, or refuses it and the run is cold:
  wider limits, another image, network, seccomp or OCI runtime, a longer timeout than the engine's, a
  config file other than the engine's. A tighter limit gets an engine of its own (cold the first time).
- Sessions (``--persistent``, ``--session``), ``--persist``, ``--debug`` and ``--host`` always run here:
  a session's container is found by name by every run and outlives any engine; ``--persist`` keeps a
  container for this user's inspection; ``--debug`` shows this process's engine's steps.
- A socket or directory that is not this user's alone is not used (one line on stderr, and a cold run).
- Output, stdin, ``--out`` and the exit code are those of the same run made here: the same events and
  results, printed by the same code.
"""

from __future__ import annotations

import os
import sys

from ..local import client
from ..local.paths import NotPrivate, default_socket
from ._output import Figures, print_event, print_result, whole_result

#: off: never use an engine; auto: also start one when none answers; anything else: use one that answers.
ENGINE_ENV = "ISOL8RT_ENGINE"
#: How long an engine started by ``ISOL8RT_ENGINE=auto`` waits unused before it stops.
AUTO_IDLE_S = 900.0


def run_near(request, options, args) -> int | None:
    """The exit code of the run made through the local engine, or None when it must run here instead
    (the caller has left out the runs that are always made here)."""
    mode = os.environ.get(ENGINE_ENV, "").lower()
    if mode in ("off", "0", "no", "false"):
        return None
    path = default_socket()
    try:
        return _run(path, request, options, args)
    except NotPrivate as exc:
        print(f"isol8rt: {exc}", file=sys.stderr)
        return None
    except client.NoEngine:
        if mode == "auto":
            from .engine import spawn

            try:
                spawn(path, config=args.config, idle_s=AUTO_IDLE_S)
            except (OSError, NotPrivate) as exc:  # this run goes on regardless: it is made here
                print(f"isol8rt: could not start a local engine at {path}: {exc}", file=sys.stderr)
        return None
    except client.Refused:  # an engine that did not take this run (other options, busy): one is running
        return None


def _run(path, request, options, args) -> int:
    if whole_result(args):
        try:
            result = client.execute(path, request, options)
        except client.EngineLost as exc:
            print(f"isol8rt: {exc}", file=sys.stderr)
            return 1
        with _out_file(args) as out_file:
            return print_result(result, args, out_file, Figures(args.figures))
    events = client.stream(path, request, options)  # Refused here, before anything ran, or not at all
    exit_code = 1
    figures = Figures(args.figures)
    with _out_file(args) as out_file:
        try:
            for event in events:
                exit_code = print_event(event, out_file, exit_code, figures)
        except client.EngineLost as exc:
            print(f"isol8rt: {exc}", file=sys.stderr)
            return 1
    return exit_code


def _out_file(args):
    import contextlib

    return open(args.out, "w", encoding="utf-8") if args.out else contextlib.nullcontext()  # noqa: SIM115
