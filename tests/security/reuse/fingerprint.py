"""A fingerprint of everything a run can observe of its container, taken by a probe program that runs as
the sandbox user; the reset's guarantee is stated with it: **a container that ran anything and was then
reset gives exactly the fingerprint of a container that never ran anything.**

What the probe reports, and what it leaves out on purpose (each left out because it differs between any
two containers, or between any two runs, whatever the reset does, and holds nothing a run could hide):

- every process and every thread, with its uid, state and command line; pids are left out, and running
  (R) counts as sleeping (S): which of the two the agent or the fork server is in when the probe looks is
  the scheduler's moment, not a state a run could leave (stopped, traced, zombie, disk wait stay
  distinct). Thread counts are reported for the sandbox user's processes only: the proxy (filtered
  networking) keeps resolver threads for a few seconds after a lookup.
- every entry under /sandbox, /tmp, /dev/shm and /dev/mqueue, recursively, with type, mode, owner, size,
  link count and extended attributes, and each directory's own metadata; timestamps and inode numbers
  are left out (every run writes its program into /sandbox, so its mtime always changes);
- free blocks and inodes of those file systems;
- SysV IPC objects (/proc/sysvipc/*) without their ids and times; POSIX message queues (/dev/mqueue);
- unix sockets (/proc/net/unix) by type, state and path; TCP/UDP sockets by state and local address;
  file locks held by a process;
- the probe's own environment, ulimits, cwd, umask, open descriptors, signal masks, capability and
  seccomp lines, oom_score_adj and nice value; the host name (and $HOSTNAME) is left out: it is the
  container's id.

The probe runs in the runtime's prestarted interpreter, as any run does, so nothing is killed or started
for it that a fresh container would not show too.
"""

from __future__ import annotations

import json

import trio

from isol8rt import ExecutionRequest

PROBE = r"""
import json, os, resource, stat

def read(path, mode='r'):
    with open(path, mode) as file:
        return file.read()

def status(path):
    fields = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(':')
        fields[key] = value.strip()
    return fields

me = os.getpid()
my_uid = os.getuid()
processes = []
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) == me:
        continue
    try:
        fields = status(f'/proc/{pid}/status')
        command = read(f'/proc/{pid}/cmdline', 'rb').replace(b'\0', b' ').decode(errors='replace').strip()
        threads = []
        for tid in os.listdir(f'/proc/{pid}/task'):
            thread = status(f'/proc/{pid}/task/{tid}/status')
            threads.append((thread['Uid'].split()[0], 'S' if thread['State'][:1] == 'R' else thread['State'][:1]))
    except OSError:
        threads = None  # ended while we looked: reported as such, never skipped
        fields, command = {'Uid': '?', 'State': '?'}, '?'
    state = fields['State'][:1]
    entry = {'uid': fields['Uid'].split()[0], 'state': 'S' if state == 'R' else state,
             'command': command or fields.get('Name')}
    if threads is None or entry['uid'] == str(my_uid):
        entry['threads'] = sorted(threads) if threads is not None else 'vanished'
    processes.append(entry)

def xattrs(path):
    try:
        return {name: os.getxattr(path, name, follow_symlinks=False).hex()
                for name in sorted(os.listxattr(path, follow_symlinks=False))}
    except OSError as exc:
        return f'error {exc.errno}'

def describe(path):
    info = os.lstat(path)
    entry = {'type': stat.S_IFMT(info.st_mode), 'mode': oct(stat.S_IMODE(info.st_mode)), 'uid': info.st_uid,
             'gid': info.st_gid, 'nlink': info.st_nlink, 'xattrs': xattrs(path)}
    if not stat.S_ISDIR(info.st_mode):
        entry['size'] = info.st_size
    if stat.S_ISLNK(info.st_mode):
        entry['target'] = os.readlink(path)
    return entry

def tree(top):
    entries = {'.': describe(top)}
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            entries[os.path.relpath(directory, top) + '/*'] = f'error {exc.errno}'
            continue
        for name in names:
            path = os.path.join(directory, name)
            entries[os.path.relpath(path, top)] = describe(path)
            if stat.S_ISDIR(os.lstat(path).st_mode):
                pending.append(path)
    space = os.statvfs(top)
    entries['statvfs'] = [space.f_bfree, space.f_ffree]
    return entries

def table(path, keep):
    try:
        rows = read(path).splitlines()[1:]
    except OSError as exc:
        return f'error {exc.errno}'
    return sorted((keep(row.split()) for row in rows if row.split()), key=json.dumps)

status_self = status('/proc/self/status')
fingerprint = {
    'processes': sorted(processes, key=json.dumps),
    'directories': {top: tree(top) for top in ('/sandbox', '/tmp', '/dev/shm', '/dev/mqueue') if os.path.exists(top)},
    # key, permissions, and size (shm), bytes (msg) or semaphores (sem): not ids, pids or times
    'sysvipc': {name: table(f'/proc/sysvipc/{name}', lambda f: [f[0], f[2], f[3]]) for name in ('shm', 'msg', 'sem')},
    # flags, type, state, path
    'unix': table('/proc/net/unix', lambda f: f[3:6] + f[7:]),
    # local address, remote address, state; sockets with inode 0 are closing ones nobody holds (TIME_WAIT)
    'inet': {name: [row for row in table(f'/proc/net/{name}', lambda f: f[1:4] if f[9] != '0' else None) if row]
             for name in ('tcp', 'tcp6', 'udp', 'udp6')},
    'locks': [line.split()[1:4] for line in read('/proc/locks').splitlines() if line.split()[4:5] != ['-1']],
    'env': {key: value for key, value in os.environ.items() if key != 'HOSTNAME'},   # the container's id
    'ulimits': {name: resource.getrlimit(getattr(resource, name)) for name in sorted(dir(resource)) if name.startswith('RLIMIT_')},
    'cwd': os.getcwd(),
    'umask': oct(os.umask(0o022)),
    'fds': sorted(os.listdir('/proc/self/fd')),
    'status': {key: status_self[key] for key in ('Uid', 'Gid', 'Groups', 'SigBlk', 'SigIgn', 'CapInh', 'CapPrm',
                                                 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp')},
    'oom_score_adj': read('/proc/self/oom_score_adj').strip(),
    'nice': os.nice(0),
}
print(json.dumps(fingerprint, sort_keys=True))
"""


def probe_request(**fields) -> ExecutionRequest:
    return ExecutionRequest(code=PROBE, runtime="python", timeout_ms=20_000, **fields)


async def fingerprint(engine) -> tuple[dict, str | None]:
    """The probe's report from the container the engine's next python run gets, and that container's id."""
    with trio.fail_after(60):
        result = await engine.execute(probe_request())
    assert result.exit_code == 0 and not result.stderr, result.stderr
    return json.loads(result.stdout), result.container_id


def differences(fresh: dict, seen: dict) -> list[str]:
    """Where ``seen`` differs from ``fresh``, one line each (for a readable failure)."""
    lines = []

    def walk(path: str, a: object, b: object) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(f"{path}/{key}", a.get(key, "<absent>"), b.get(key, "<absent>"))
        elif a != b:
            lines.append(f"{path}: fresh {json.dumps(a)[:300]} | reset {json.dumps(b)[:300]}")

    walk("", fresh, seen)
    return lines
