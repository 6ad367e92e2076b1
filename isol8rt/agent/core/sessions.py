"""Persistent sessions: one live interpreter per session name (python, node), and the one run it serves
at a time. A session is busy from the moment a run of it is admitted until that run's Exit; output its
interpreter writes between runs belongs to no run."""

from __future__ import annotations


class Interpreter:
    """A session's live interpreter."""

    __slots__ = ("name", "pid")

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid

    @property
    def takes_stdin(self) -> bool:
        # Python's driver takes each cell's stdin as a fresh descriptor; Node's cannot adopt one.
        return self.name == "python"


class Sessions:
    __slots__ = ("_by_name", "_by_pid", "_busy")

    def __init__(self) -> None:
        self._by_name: dict[str, Interpreter] = {}
        self._by_pid: dict[int, Interpreter] = {}
        #: The run each busy session serves, by session name.
        self._busy: dict[str, int] = {}

    def __iter__(self):
        return iter(list(self._by_name.values()))

    def get(self, name: str) -> Interpreter | None:
        return self._by_name.get(name)

    def of_process(self, pid: int) -> Interpreter | None:
        return self._by_pid.get(pid)

    def started(self, name: str, pid: int) -> Interpreter:
        interpreter = self._by_name[name] = self._by_pid[pid] = Interpreter(name, pid)
        return interpreter

    def ended(self, interpreter: Interpreter) -> None:
        """The interpreter is gone (exited, killed, or its control socket failed)."""
        if self._by_name.get(interpreter.name) is interpreter:
            del self._by_name[interpreter.name]
        self._by_pid.pop(interpreter.pid, None)

    def busy_with(self, name: str) -> int | None:
        """The id of the run the session serves, if any."""
        return self._busy.get(name)

    def claim(self, name: str, run_id: int) -> None:
        self._busy[name] = run_id

    def free(self, name: str, run_id: int) -> None:
        if self._busy.get(name) == run_id:
            del self._busy[name]

    def clear(self) -> list[Interpreter]:
        """Forget every session (a reset); returns the interpreters."""
        interpreters = list(self._by_name.values())
        self._by_name.clear()
        self._by_pid.clear()
        self._busy.clear()
        return interpreters
