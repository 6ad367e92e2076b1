"""The reset's guarantee as a property: after any sequence of hostile runs, a reset container gives exactly
the fingerprint (see fingerprint.py) of a container that never ran anything.

Hypothesis draws sequences of runs, each run a few "leave something behind" actions: processes of every
kind (detached and ignoring signals, stopped, a zombie leader with live threads, one forking all through
the reset, an unreaped zombie, one rewriting the next run's program), files of every type and mode in
every writable place, the directories' own mode and extended attributes and ACLs, SysV IPC with its owner
and mode changed, POSIX message queues, unix sockets (abstract, bound in the file system, a garbage cycle
in flight), TCP and UDP sockets, file locks, and connections to the filtering proxy (open, half-sent, and
a stream of complete requests). Every run happens in a pool of exactly one container; after each, the
probe must see the fresh fingerprint. Under ``fast`` the probe must also have run in the attacked
container, so the property is about the reset, not about a replacement.

All examples of a test share one engine (a container costs more than the runs of an example): under
``fast`` anything an example left behind would fail the next one too, which only makes a failure louder.
"""

from __future__ import annotations

import os
import textwrap
import threading

import hypothesis
import pytest
import trio
from hypothesis import strategies as st

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.runtimes import PROXY_PORT
from isol8rt.types import NetworkFilter

from .fingerprint import differences, fingerprint

pytestmark = pytest.mark.docker

#: Examples per strategy; CI runs them all (the issue's bar is 50).
EXAMPLES = int(os.environ.get("ISOL8RT_FINGERPRINT_EXAMPLES", "50"))

PRELUDE = r"""
import ctypes, errno, fcntl, os, platform, signal, socket, stat, struct, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)

def leftover(body):
    # Double fork and setsid: a process the run does not wait for. It tells us once it is set up.
    ready_read, ready_write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.close(ready_read)
            null = os.open('/dev/null', os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            try:
                body(lambda: os.write(ready_write, b'1'))
            finally:
                os._exit(0)
        os._exit(0)
    os.close(ready_write)
    os.read(ready_read, 1)
    os.close(ready_read)

def forever():
    while True:
        time.sleep(0.01)

def attempt(action):
    try:
        action()
    except Exception as exc:
        print('action failed:', type(exc).__name__, exc, file=sys.stderr)
"""

_PROCESSES = {
    "detached": """
def body(ready):
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, signal.SIG_IGN)
    ready()
    forever()
leftover(body)""",
    "stopped": """
def body(ready):
    ready()
    os.kill(os.getpid(), signal.SIGSTOP)
    forever()
leftover(body)""",
    "zombie_leader": """
def body(ready):
    def wait_for_zombie():
        while b'State:\\tZ' not in open('/proc/self/status', 'rb').read():
            time.sleep(0.001)
        ready()
        forever()
    threading.Thread(target=wait_for_zombie).start()
    threading.Thread(target=forever).start()
    libc.syscall({'x86_64': 60, 'aarch64': 93}[platform.machine()], 0)
leftover(body)""",
    "forker": """
def body(ready):
    ready()
    while True:   # a new pid all the time, through the reset
        try:
            if os.fork() != 0:
                os._exit(0)
        except OSError:
            pass
        time.sleep(0.002)
leftover(body)""",
    "unreaped": """
def body(ready):
    if os.fork() == 0:
        os._exit(0)
    ready()
    forever()   # never waits for its child: a zombie
leftover(body)""",
    "program_writer": """
def body(ready):
    ready()
    while True:   # rewrite whatever program comes next
        try:
            fd = os.open('/sandbox/main.py', os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"print('PWNED')\\n")
            os.close(fd)
        except OSError:
            pass
        time.sleep(0.001)
leftover(body)""",
}

_IPC = {
    "shm": """
key = {key}
shm = libc.shmget(key, 4096, 0o1000 | 0o666)
buffer = ctypes.create_string_buffer(256)
if shm >= 0 and libc.shmctl(shm, 2, buffer) == 0:   # IPC_STAT, then IPC_SET: owner root, mode 0
    struct.pack_into('<II', buffer, 4, 0, 0)
    struct.pack_into('<I', buffer, 20, 0)
    libc.shmctl(shm, 1, buffer)""",
    "msg": """
queue = libc.msgget({key}, 0o1000 | 0o600)
message = struct.pack('<q', 1) + b'left for the next run'
libc.msgsnd(queue, message, len(message) - 8, 0)""",
    "sem": "libc.semget({key}, 3, 0o1000 | 0o600)",
    "mqueue": """
libc.mq_open.restype = ctypes.c_int
mq = libc.mq_open(b'/left{key}', os.O_CREAT | os.O_RDWR, 0o600, None)
if mq >= 0:
    libc.mq_send(mq, b'hello', 5, 0)""",
}

_SOCKETS = {
    "abstract": """
def body(ready):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind('\\0left{key}')
    listener.listen()
    ready()
    forever()
leftover(body)""",
    "bound_file": """
bound = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
bound.bind('{directory}/sock{key}')""",
    "garbage_cycle": """
ends = socket.socketpair()
socket.send_fds(ends[0], [b'x'], [ends[0].fileno(), ends[1].fileno()])   # each end in flight to itself
ends[0].close()
ends[1].close()""",
    "tcp": """
def body(ready):
    listener = socket.create_server(('127.0.0.1', {port}))
    client = socket.create_connection(('127.0.0.1', {port}))
    server_side, _ = listener.accept()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(('127.0.0.1', {port}))
    ready()
    forever()
leftover(body)""",
    "locks": """
def body(ready):
    held = []
    for path in ('/tmp/lock{key}', '/dev/shm/lock{key}'):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # Not blocking: a run may draw this action twice with the same key, and the second leftover would
        # wait forever for the first one's lock (the attack run then timed out, a flake of the test itself).
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.append(fd)
    ready()
    forever()
leftover(body)""",
}

_PROXY = {
    "open_tunnels": f"""
def body(ready):
    held = []
    for _ in range(3):
        connection = socket.create_connection(('127.0.0.1', {PROXY_PORT}))
        connection.sendall(b'CONNECT blocked.invalid:443 HTTP/1.1\\r\\nHost: blocked.invalid:443\\r\\n')   # never finished
        held.append(connection)
    ready()
    forever()
leftover(body)""",
    "request_stream": f"""
def body(ready):
    ready()
    while True:   # complete requests, sent right up to the reset
        try:
            connection = socket.create_connection(('127.0.0.1', {PROXY_PORT}))
            connection.sendall(b'GET http://leftover.invalid/ HTTP/1.1\\r\\nHost: leftover.invalid\\r\\n\\r\\n')
        except OSError:
            time.sleep(0.001)
leftover(body)""",
}


def _file_action(directory: str, kind: str, mode: int, key: int) -> str:
    path = f"{directory}/f{key}"
    return {
        "file": f"open({path!r}, 'w').write('x' * {key % 5000}); os.chmod({path!r}, {mode:#o})",
        "dir": f"os.makedirs({path!r} + '/a/b', exist_ok=True); open({path!r} + '/a/b/c', 'w').write('c'); "
               f"os.chmod({path!r} + '/a', {mode:#o}); os.chmod({path!r}, {mode:#o})",
        "deep": f"p = {path!r}\nfor _ in range(200):\n    p += '/d'\n    os.mkdir(p)",
        "fifo": f"os.mkfifo({path!r}, {mode:#o})",
        "symlink": f"os.symlink('/etc/passwd', {path!r}); os.symlink('/sandbox', {path!r} + 'dir')",
        "hardlink": f"open({path!r}, 'w').write('h'); os.link({path!r}, {path!r} + '.link')",
        "sparse": f"open({path!r}, 'wb').truncate(1 << 30)",
        "xattr": f"open({path!r}, 'w').write('x'); os.setxattr({path!r}, 'user.k{key}', b'v')",
    }[kind]


def _metadata_action(directory: str, kind: str, mode: int, key: int) -> str:
    acl = b"\x02\x00\x00\x00" + b"".join(
        int.to_bytes(tag, 2, "little") + int.to_bytes(perm, 2, "little") + int.to_bytes(ident, 4, "little")
        for tag, perm, ident in ((1, 7, 0xFFFFFFFF), (2, 4, 4242), (4, 5, 0xFFFFFFFF), (0x10, 5, 0xFFFFFFFF),
                                 (0x20, 5, 0xFFFFFFFF)))
    return {
        "chmod": f"os.chmod({directory!r}, {mode:#o})",
        "xattr": f"os.setxattr({directory!r}, 'user.left{key}', b'{key}')",
        "acl": f"os.setxattr({directory!r}, 'system.posix_acl_access', {acl!r}); "
               f"os.setxattr({directory!r}, 'system.posix_acl_default', {acl!r})",
    }[kind]


_DIRECTORIES = ("/sandbox", "/tmp", "/dev/shm", "/dev/mqueue")
_MODES = (0o000, 0o111, 0o555, 0o700, 0o755, 0o777, 0o1777, 0o2755, 0o4755)
_keys = st.integers(min_value=1, max_value=60_000)


def _action(filtered: bool):
    process = st.sampled_from(sorted(_PROCESSES)).map(lambda name: _PROCESSES[name])
    files = st.builds(_file_action, st.sampled_from(_DIRECTORIES[:3]),
                      st.sampled_from(["file", "dir", "deep", "fifo", "symlink", "hardlink", "sparse", "xattr"]),
                      st.sampled_from(_MODES), _keys)
    metadata = st.builds(_metadata_action, st.sampled_from(_DIRECTORIES), st.sampled_from(["chmod", "xattr", "acl"]),
                         st.sampled_from(_MODES), _keys)
    ipc = st.builds(lambda name, key: _IPC[name].format(key=key), st.sampled_from(sorted(_IPC)), _keys)
    sockets = st.builds(lambda name, key, directory: _SOCKETS[name].format(key=key, port=20_000 + key % 20_000,
                                                                           directory=directory),
                        st.sampled_from(sorted(_SOCKETS)), _keys, st.sampled_from(_DIRECTORIES[:3]))
    choices = [process, files, metadata, ipc, sockets]
    if filtered:
        choices.append(st.sampled_from(sorted(_PROXY)).map(lambda name: _PROXY[name]))
    return st.one_of(choices)


def _program(actions: list[str]) -> str:
    body = "".join(f"def action_{index}():\n{textwrap.indent(action.strip(), '    ')}\nattempt(action_{index})\n"
                   for index, action in enumerate(actions))
    return f"{PRELUDE}\n{body}print('done')\n"


def _sequences(filtered: bool):
    return st.lists(st.lists(_action(filtered), min_size=1, max_size=3), min_size=1, max_size=3)


class _Engine:
    """One engine for all of a test's examples, in a thread of its own: hypothesis calls the examples
    synchronously, one after the other, and each goes into the engine's trio loop. The fresh fingerprint
    is its first run's, in a container that has never run anything."""

    def __init__(self, options: Isol8Options) -> None:
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._serve, options), daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure

    async def _serve(self, options: Isol8Options) -> None:
        try:
            async with DockerIsol8(options) as engine:
                self.engine = engine
                self.fresh, _ = await fingerprint(engine)
                self._token = trio.lowlevel.current_trio_token()
                self._stop = trio.Event()
                self._started.set()
                await self._stop.wait()
        except BaseException as exc:
            self._failure = exc
            self._started.set()

    def run(self, function, *args):
        return trio.from_thread.run(function, *args, trio_token=self._token)

    def close(self) -> None:
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(60)


async def _check(engine: _Engine, runs: list[list[str]]) -> None:
    strategy = engine.engine.options.pool_strategy
    for actions in runs:
        with trio.fail_after(60):
            attack = await engine.engine.execute(ExecutionRequest(code=_program(actions), timeout_ms=20_000))
        assert attack.stdout.endswith("done\n"), attack.stdout + attack.stderr
        # A reset slowed down by a loaded machine must not send the probe to a new container instead.
        await engine.engine._started_pool.wait_settled()
        seen, container = await fingerprint(engine.engine)
        assert differences(engine.fresh, seen) == [], "\n".join(differences(engine.fresh, seen))
        if strategy == "fast":
            assert container == attack.container_id, "the reset did not verify: the container was retired"
        else:
            assert container != attack.container_id


# secure + filtered adds nothing to secure + none: a secure run never shares a container, whatever the network.
# The fork server (runs forked from a pristine interpreter, agent/zygote.py) under fast: the reset must hold
# for it as for fresh interpreters.
@pytest.mark.parametrize(("strategy", "network", "fork_server"), [
    ("fast", "none", False), ("fast", "filtered", False), ("secure", "none", False), ("fast", "none", True)])
def test_a_reset_container_is_indistinguishable_from_a_fresh_one(strategy, network, fork_server):
    # A pool of exactly one container under fast (none kept spare, room for one); secure keeps one ready.
    options = Isol8Options(pool_strategy=strategy, pool_size=0 if strategy == "fast" else 1, max_concurrent=1,
                           network=network, network_filter=NetworkFilter(whitelist=["^allowed\\.invalid$"]),
                           fork_server=fork_server)
    engine = _Engine(options)

    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[hypothesis.HealthCheck.too_slow])
    @hypothesis.given(_sequences(network == "filtered"))
    # Drawn rarely, and once a flake of the test itself: the same lock taken by two leftovers of one run.
    @hypothesis.example([[_SOCKETS["locks"].format(key=1)] * 2])
    def check(runs):
        engine.run(_check, engine, runs)

    try:
        check()
    finally:
        engine.close()
