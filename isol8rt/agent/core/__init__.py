"""The agent's core: its side of the conversation with the host and the life of every run, as a state
machine that does no I/O, in the manner of h11's ``Connection``.

The driver (:mod:`isol8rt.agent.supervisor`, an epoll loop; the tests, by hand) gives
:class:`AgentCore` what the host sent (:meth:`~AgentCore.receive_data`, then
:meth:`~AgentCore.next_actions`), what happened (:meth:`~AgentCore.handle` with an :mod:`.events`
event: a child's output, its exit, a cell's end, a line of the proxy, a tick of the clock) and how each
action it asked for went (more events); it gets back :mod:`.actions` to carry out in order: spawn,
hand a prestarted interpreter its program, signal, write a child's stdin, send to the host, write and
send files, sweep the container, talk to the proxy. Time is an argument (``now``), never read.

The rules it keeps (what each message means: :mod:`isol8rt.agent.protocol`):

- Ready first: :meth:`~AgentCore.start` sends Ready (reason "start") before anything else is handled.
- Configure once: it arms the prestarted interpreters and answers Ready ("configured") once they are
  warm; a second Configure breaks the protocol (the agent logs it and exits, as on undecodable frames).
- One terminal message per operation: a Run ends with Exit or Failed, a PutFile with ack, GetFile,
  Ping and Reset with Done or Failed. A chunk of a file that failed is answered once: by the file's
  acknowledged last chunk, or by the Run that carries its id. A Run whose id is running is answered
  Failed ("busy").
- Reset -> Done -> Ready: a Reset kills every run (none gets an Exit), session and prestart, has the
  container swept, the proxy reset and the container inspected, then sends Done (what was removed) and,
  once the next interpreters are warm, Ready ("reset", the next generation) naming every verdict that
  held: processes, tasks, ipc, network (filtered networking only), files, state.
- Stragglers: stdin and signals for a run that is over, output of a session between runs, reports and
  exits of children the core has let go (a reset's, a dropped prestart's), the proxy's answers after
  it was given up: all dropped.
- Filtered networking: no run starts before the proxy listens and the policy it asks for is in force;
  without the firewall, every run fails.

The parts it is composed of each own their state: :mod:`.runs` (runs under way: output budget,
deadline, the Exit), :mod:`.prestarts`, :mod:`.sessions` and :mod:`.network` (the proxy and the runs
waiting for it). Nothing here imports anything of the agent's but :mod:`~isol8rt.agent.protocol` and
:mod:`~isol8rt.agent.proxy_protocol`.
"""

from .machine import AgentCore, DriverError

__all__ = ["AgentCore", "DriverError"]
