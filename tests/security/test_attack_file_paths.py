"""Files in and out through paths that lead elsewhere: symlinks planted for a download (outputPaths),
path traversal in ``files``/``outputPaths``/``workdir``, files swapped for symlinks while the agent reads
them, a persistent session's ``put_file``/``get_file`` through symlinks its code planted, and directory
trees made to break the reset's wipe.

Stopped by: path confinement (isol8rt/agent/files.py): paths are checked as written (no ``..``, nothing
outside /sandbox, refused before anything runs) and then walked one component at a time with O_NOFOLLOW
from a descriptor of /sandbox, so a symlink is seen, never followed out; a symlink is read only when it
resolves inside /sandbox, and then through a second no-follow walk. Below that, the agent touches files
with the sandbox user's permissions."""

from __future__ import annotations

import pytest
import trio

from isol8rt import ExecutionRequest, InvalidRequest

from .conftest import after_attack, stop_and_verify

PLANT = r"""
import os
os.symlink('/etc/shadow', 'shadow')
os.symlink('/etc/passwd', 'passwd')
os.symlink('/proc/1/environ', 'pid1-environ')
os.symlink('/proc/self/root/etc/passwd', 'self-root')
os.symlink('/proc/1/root/etc/passwd', 'pid1-root')
os.symlink('/dev/zero', 'zero')
os.symlink('chain2', 'chain1'); os.symlink('/etc/passwd', 'chain2')
os.symlink('loop-b', 'loop-a'); os.symlink('loop-a', 'loop-b')
os.symlink('/etc', 'etc-dir')
os.symlink('/sandbox/../etc/passwd', 'dotdot-inside-link')
os.mkfifo('fifo')
os.mkdir('a-directory')
open('real.txt', 'w').write('inside')
os.symlink('real.txt', 'inner-link')
try:
    os.link('/etc/passwd', 'hard')
    print('hardlink made')
except OSError as exc:
    print('hardlink', exc.errno)
"""

REFUSED = ["shadow", "passwd", "pid1-environ", "self-root", "pid1-root", "zero", "chain1", "loop-a",
           "etc-dir/passwd", "etc-dir/shadow", "dotdot-inside-link", "fifo", "a-directory", "hard", "missing"]


async def test_symlinks_planted_for_a_download(attack_engine):
    """Plant symlinks to /etc/shadow, /etc/passwd, /proc/1/environ, through /proc/*/root, to /dev/zero,
    chains, loops, a symlinked directory component, a FIFO (a read that would block the agent) and a
    hard link attempt, then ask for all of them. Stopped by: path confinement (each is reported in
    fileErrors, nothing is returned, and no read blocks); a symlink that stays inside is still served."""
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=PLANT, output_paths=REFUSED + ["inner-link"],
                                                              timeout_ms=10_000))
    assert attack.stdout == "hardlink 18\n", attack.stderr  # EXDEV: /etc is another filesystem
    assert attack.files == {"inner-link": b"inside"}
    assert set(attack.file_errors) == set(REFUSED)
    for path in ("shadow", "passwd", "pid1-environ", "self-root", "pid1-root", "zero", "chain1",
                 "dotdot-inside-link"):
        assert "outside" in attack.file_errors[path], (path, attack.file_errors[path])
    assert "symlink" in attack.file_errors["etc-dir/passwd"] or "outside" in attack.file_errors["etc-dir/passwd"]
    assert "not a regular file" in attack.file_errors["fifo"]
    assert "not a regular file" in attack.file_errors["a-directory"]
    assert "no such file" in attack.file_errors["missing"]
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


SWAPPER = r"""
import os
open('/sandbox/decoy', 'w').write('decoy')
if os.fork() == 0:
    os.setsid()
    os.symlink('/etc/passwd', '/sandbox/.evil')
    names = [f'/sandbox/out{index}' for index in range(20)]
    while True:             # keep swapping every output path between a file and a symlink out
        for name in names:
            try:
                os.link('/sandbox/decoy', name + '.tmp')
                os.rename(name + '.tmp', name)
                os.symlink('/etc/passwd', name + '.lnk')
                os.rename(name + '.lnk', name)
            except OSError:
                pass
print('swapping', flush=True)
"""


async def test_output_path_swapped_while_being_read(attack_engine):
    """A background process keeps replacing each output path with a symlink to /etc/passwd and back
    while the agent reads them (after the program's exit, before the reset). Stopped by: the no-follow
    walk from /sandbox's descriptor: whatever the timing, the agent gets the decoy or refuses; it never
    reads the target."""
    paths = [f"out{index}" for index in range(20)]
    with trio.fail_after(30):
        attack = await attack_engine.execute(ExecutionRequest(code=SWAPPER, output_paths=paths, timeout_ms=10_000))
    assert attack.stdout == "swapping\n", attack.stderr
    for path, data in (attack.files or {}).items():
        assert data == b"decoy", f"{path} returned {data[:40]!r}"
    assert set(attack.files or {}) | set(attack.file_errors or {}) == set(paths)
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)


TRAVERSALS = ["../etc/passwd", "/etc/passwd", "/sandbox/../etc/passwd", "a/../../etc/passwd", "/sandboxx/escape",
              "/sandbox", "/sandbox/", "", "a/../b", "/tmp/x", "./../x"]
WORKDIRS = ["..", "../etc", "/etc", "/sandbox/../../etc", "/sandboxx", "sub/../../.."]


async def test_traversal_is_refused_before_anything_runs(attack_engine):
    """``..``, absolute paths outside /sandbox (also one that only shares its prefix), /sandbox itself and
    the empty path, in ``files`` and ``outputPaths``; working directories outside /sandbox. Stopped by:
    the request check: InvalidRequest naming the field, before any container is used (the engine has
    none afterwards)."""
    for path in TRAVERSALS:
        with pytest.raises(InvalidRequest, match="files"):
            await attack_engine.execute(ExecutionRequest(code="print(1)", files={path: "x"}))
        with pytest.raises(InvalidRequest, match="outputPaths"):
            await attack_engine.execute(ExecutionRequest(code="print(1)", output_paths=["fine.txt", path]))
    for workdir in WORKDIRS:
        with pytest.raises(InvalidRequest, match="workdir"):
            await attack_engine.execute(ExecutionRequest(code="print(1)", workdir=workdir))
    assert attack_engine.containers == []
    await after_attack(attack_engine, None, "python")
    await stop_and_verify(attack_engine)


SESSION_PLANT = r"""
import os
os.makedirs('/tmp/outside', exist_ok=True)
open('/tmp/outside/target', 'w').write('original')
os.symlink('/tmp/outside', 'dir-link')
os.symlink('/tmp/outside/target', 'file-link')
os.symlink('/tmp/outside/new-file', 'dangling-link')
os.symlink('/etc/passwd', 'passwd-link')
os.mkfifo('fifo')
print('planted')
"""

CHECK_OUTSIDE = "import os\nprint(sorted(os.listdir('/tmp/outside')), open('/tmp/outside/target').read())"


async def test_session_put_file_through_planted_symlinks(attack_engine):
    """In a persistent session, user code plants symlinks (to a directory and files in /tmp it may write,
    so permissions alone would not stop a write) and a FIFO; then the host puts and gets files through
    them, and a later run's ``files`` goes through them too. Stopped by: path confinement: every put and
    get is refused with a clear error and nothing outside /sandbox changes; a FIFO neither blocks nor is
    written."""
    session = "planted"
    with trio.fail_after(30):
        planted = await attack_engine.execute(ExecutionRequest(code=SESSION_PLANT), session_id=session)
    assert planted.stdout == "planted\n", planted.stderr
    for path in ("dir-link/new", "/sandbox/dir-link/new", "file-link", "dangling-link", "passwd-link", "fifo"):
        with trio.fail_after(10), pytest.raises(InvalidRequest):
            await attack_engine.put_file(path, b"overwritten", session_id=session)
    for path in ("dir-link/target", "file-link", "dangling-link", "passwd-link", "fifo"):
        with trio.fail_after(10), pytest.raises(InvalidRequest):
            await attack_engine.get_file(path, session_id=session)
    with trio.fail_after(30):
        later = await attack_engine.execute(ExecutionRequest(
            code=CHECK_OUTSIDE, files={"dir-link/new-from-files": "overwritten"}), session_id=session)
    assert later.exit_code != 0 and "dir-link" in later.stderr and later.stdout == ""
    with trio.fail_after(30):
        check = await attack_engine.execute(ExecutionRequest(code=CHECK_OUTSIDE), session_id=session)
    assert check.stdout == "['target'] original\n", check.stderr
    # Legitimate use still works in that session.
    await attack_engine.put_file("plain.txt", b"fine", session_id=session)
    assert await attack_engine.get_file("plain.txt", session_id=session) == b"fine"
    await after_attack(attack_engine, None, "python")
    await stop_and_verify(attack_engine, planted, check)


DEEP = r"""
import os
os.chdir('/sandbox')
for _ in range(3000):
    os.mkdir('d')
    os.chdir('d')
open('bottom.txt', 'w').write('x')
os.chdir('/sandbox')
os.makedirs('locked/inner')
os.chmod('locked', 0)
print('deep', flush=True)
"""


async def test_deeply_nested_directories(attack_engine):
    """A directory tree thousands of levels deep (built with relative paths, so no single path is too
    long), plus a directory the user took every permission from. Must be stopped by: the reset's wipe,
    which must empty /sandbox whatever its shape (and verify it), without the agent failing. A wipe that
    recurses once per level runs out of Python stack at about 1000 levels: the agent (PID 1) dies and
    the container with it."""
    with trio.fail_after(60):
        attack = await attack_engine.execute(ExecutionRequest(code=DEEP, timeout_ms=30_000))
    assert attack.stdout == "deep\n", attack.stderr
    await after_attack(attack_engine, attack, "python")
    await stop_and_verify(attack_engine, attack)
