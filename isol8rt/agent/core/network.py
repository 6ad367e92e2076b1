"""Filtered networking, as the conversation sees it: the proxy's state, the runs waiting for it, and the
proxy's part of a reset.

No user process runs before the firewall and the proxy are in place: a run waits (is deferred) until the
proxy listens, and until the policy the run asks for (its own, or the container's) is in force, which
the proxy confirms. If the firewall could not be installed, every run fails instead: filtered mode
without its firewall would be no filter at all.

The proxy's lines are the typed structs of :mod:`..proxy_protocol`, shared with the proxy itself.
"""

from __future__ import annotations

import msgspec

from ..protocol import Failed, NetworkConfig, NetworkPolicy, Run
from ..proxy_protocol import (
    DEFAULT_CONNECT_PORTS,
    Error,
    LineSplitter,
    Out,
    PolicyOk,
    ResetConnections,
    ResetFailed,
    ResetOk,
    SetPolicy,
    output_decoder,
)
from .actions import Action, AwaitProxy, StartProxy, ToProxy

#: How long the reset waits for each answer of the proxy.
PROXY_ANSWER_TIMEOUT_S = 5.0
#: The longest line the proxy may print (a request's log line is bounded by its head, 64 KiB by default).
_MAX_LINE = 4 * 1024 * 1024


def set_policy(run: str, policy: NetworkPolicy) -> SetPolicy:
    return SetPolicy(run=run, allow=list(policy.allow), deny=list(policy.deny),
                     allow_private=list(policy.allow_private),
                     connect_ports=list(policy.connect_ports) or list(DEFAULT_CONNECT_PORTS))


class Network:
    """The proxy as the agent knows it, and the runs held for it."""

    __slots__ = ("config", "failure", "proxy_pid", "listening", "policy", "policy_pending", "deferred",
                 "_lines", "_awaiting")

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        #: Why filtered networking is off (the firewall could not be installed); then every run fails.
        self.failure: str | None = None
        self.proxy_pid = 0
        self.listening = False
        #: The policy the proxy has in force (or was last asked to put in force), None if not known.
        self.policy: NetworkPolicy | None = None
        self.policy_pending = False
        #: Runs waiting for the proxy, in the order they came.
        self.deferred: list[Run] = []
        self._lines = LineSplitter(_MAX_LINE)
        #: During a reset: the answer awaited from the proxy (ResetOk or PolicyOk), else None.
        self._awaiting: type | None = None

    @property
    def proxy_ready(self) -> bool:
        return self.proxy_pid != 0 and self.listening

    def proxy_started(self, pid: int) -> None:
        self.proxy_pid = pid
        self.listening = False
        self.policy = self.config.policy
        self._lines = LineSplitter(_MAX_LINE)

    def proxy_gone(self) -> int:
        """Forget the proxy (it exited, or failed its reset); returns its pid (0: there was none)."""
        pid, self.proxy_pid = self.proxy_pid, 0
        self.listening = False
        self.policy = None
        self.policy_pending = False
        return pid

    def lines(self, data: bytes) -> list[tuple[Out, bytes]]:
        """The complete lines of what the proxy printed, decoded, each with its bytes as they came. A line
        that is not one of the proxy's is read as an Error saying so."""
        decoded: list[tuple[Out, bytes]] = []
        for raw in self._lines.feed(data):
            if raw is None:
                decoded.append((Error(message=f"unreadable proxy output: a line over {_MAX_LINE} bytes"), b""))
                continue
            try:
                decoded.append((output_decoder.decode(raw), raw))
            except msgspec.DecodeError:
                decoded.append((Error(message=f"unreadable proxy output: {raw[:200]!r}"), raw))
        return decoded

    # ------------------------------------------------------------------------------------ deferral

    def admissible(self) -> tuple[list[Failed], list[Run], list[Action]]:
        """What the waiting runs may do now: (the answers of runs that fail, runs to start, lines for the
        proxy). Runs start in order, each once the policy it asks for is in force; the first that needs
        another policy waits for the proxy's answer, and so do those after it."""
        failed: list[Failed] = []
        started: list[Run] = []
        actions: list[Action] = []
        while self.deferred:
            request = self.deferred[0]
            if self.failure is not None:
                self.deferred.pop(0)
                failed.append(Failed(id=request.id, message=self.failure, kind="network"))
                continue
            if not self.proxy_ready or self.policy_pending:
                break
            wanted = request.network_policy or self.config.policy
            if wanted != self.policy:
                actions.append(ToProxy(set_policy(str(request.id), wanted)))
                self.policy = wanted
                self.policy_pending = True
                break
            started.append(self.deferred.pop(0))
        return failed, started, actions

    def policy_refused(self) -> Run | None:
        """The proxy refused the policy the first waiting run asked for (bad regex...): that run fails,
        nothing opens up. Returns it (None when no policy was pending)."""
        if not self.policy_pending:
            return None
        self.policy_pending = False
        self.policy = None
        return self.deferred.pop(0)

    # ------------------------------------------------------------------------------------ reset

    @property
    def awaiting(self) -> bool:
        return self._awaiting is not None

    def begin_reset(self) -> tuple[bool | None, list[Action]]:
        """The proxy's part of a reset: close every connection the last run left open or waiting, and
        put the container's own policy back; start it again if it died. Returns (the verdict, or None
        while the proxy is asked or started, the actions). A proxy that has not started listening yet
        has nothing to close."""
        self.deferred.clear()
        # A policy asked for a run the reset dropped is answered before the reset's own answer, and
        # the reset puts the container's policy back anyway: nothing is pending after it.
        self.policy_pending = False
        if self.failure is not None:
            return False, []
        if self.proxy_pid == 0:
            # It comes up on its own; runs wait for it meanwhile.
            return None, [StartProxy(self.config.proxy_port, self.config.policy)]
        if not self.listening:
            return True, []
        self._awaiting = ResetOk
        return None, [ToProxy(ResetConnections()), AwaitProxy(PROXY_ANSWER_TIMEOUT_S)]

    def reset_answer(self, line: Out, detail: dict[str, int]) -> tuple[bool | None, list[Action]]:
        """A line the proxy printed while the reset waits for it: (the verdict, or None while it still
        waits, the actions). Lines that answer nothing of the reset's (a log line of the run that is
        over) are dropped."""
        kind = type(line)
        if self._awaiting is ResetOk:
            if kind is ResetFailed:
                self._awaiting = None
                return False, []
            if kind is not ResetOk:
                return None, []
            detail["connections_closed"] = line.closed  # type: ignore[union-attr]
            detail["connections_refused"] = line.refused  # type: ignore[union-attr]
            if self.policy == self.config.policy:
                self._awaiting = None
                return True, []
            self._awaiting = PolicyOk
            return None, [ToProxy(set_policy("reset", self.config.policy)), AwaitProxy(PROXY_ANSWER_TIMEOUT_S)]
        if kind is PolicyOk:
            self._awaiting = None
            self.policy = self.config.policy
            return True, []
        if kind is Error and line.run == "reset":  # type: ignore[union-attr]
            self._awaiting = None
            return False, []
        return None, []

    def reset_unanswered(self) -> None:
        """The proxy did not answer the reset in time, or its stdout ended."""
        self._awaiting = None
