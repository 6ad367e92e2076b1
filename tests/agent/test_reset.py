"""The reset's parts on their own, on files laid out as the kernel would show them: the census of the pids
cgroup, the kill-and-settle loop and its verdict, the baseline of the emptied directories, and the
socket, lock and task scans. No container and no sandbox user: nothing here signals a real process."""

from __future__ import annotations

import os
import stat

import pytest

from isol8rt.agent import baseline, census, reset


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ---------------------------------------------------------------------------------------------- census


def test_census_finds_the_v1_pids_cgroup_the_agent_is_in(tmp_path):
    write(tmp_path / "self-cgroup", "9:cpu,cpuacct:/docker/abc\n8:pids:/docker/abc\n")
    write(tmp_path / "fs" / "pids" / "tasks", "1\n7\n8\n")
    write(tmp_path / "fs" / "pids" / "pids.current", "4\n")
    found = census.find(str(tmp_path / "self-cgroup"), str(tmp_path / "fs"), pid=1)
    assert found is not None and found.directory == str(tmp_path / "fs" / "pids")
    assert (found.tasks(), found.count()) == ({1, 7, 8}, 4)


def test_census_finds_the_v2_cgroup_and_its_threads(tmp_path):
    write(tmp_path / "self-cgroup", "0::/\n")
    write(tmp_path / "fs" / "cgroup.threads", "1\n")
    write(tmp_path / "fs" / "pids.current", "1\n")
    found = census.find(str(tmp_path / "self-cgroup"), str(tmp_path / "fs"), pid=1)
    assert found is not None and (found.tasks(), found.count()) == ({1}, 1)


def test_no_census_unless_the_agent_is_pid_1_and_in_the_cgroup(tmp_path):
    write(tmp_path / "self-cgroup", "8:pids:/docker/abc\n")
    write(tmp_path / "fs" / "pids" / "tasks", "1\n")
    # Run on a host, the agent's cgroup holds everything else that runs there: never counted.
    assert census.find(str(tmp_path / "self-cgroup"), str(tmp_path / "fs"), pid=4242) is None
    write(tmp_path / "fs" / "pids" / "tasks", "2\n3\n")
    assert census.find(str(tmp_path / "self-cgroup"), str(tmp_path / "fs"), pid=1) is None
    assert census.find(str(tmp_path / "missing"), str(tmp_path / "fs"), pid=1) is None


# ---------------------------------------------------------------------------------------------- kill and settle


class FakeCensus:
    """A pids cgroup holding this process's own threads, plus ``others``; ``zombies`` more are counted
    (pids.current) but no longer listed, until reaped."""

    def __init__(self, others=(), zombies: int = 0) -> None:
        self.others = set(others)
        self.zombies = zombies

    def tasks(self) -> set[int]:
        return census.thread_ids(os.getpid()) | self.others

    def count(self) -> int:
        return len(self.tasks()) + self.zombies


@pytest.fixture
def signals(monkeypatch):
    """Record what the reset signals instead of signalling anything."""
    sent = []
    monkeypatch.setattr(reset, "signal_every_task_of", lambda uid, signum=9: sent.append(uid))
    return sent


def test_kill_minus_one_goes_out_even_when_nothing_is_left(signals):
    assert reset.kill_all(47_291, lambda: None, FakeCensus(), lambda: {os.getpid()}) is True
    assert signals == [47_291]


def test_a_zombie_keeps_the_reset_waiting_until_it_is_reaped(signals):
    fake = FakeCensus(zombies=2)
    reaps = []

    def reap():
        reaps.append(1)
        if len(reaps) == 3:
            fake.zombies = 0

    assert reset.kill_all(47_291, reap, fake, lambda: {os.getpid()}) is True
    assert len(reaps) == 3


def test_a_task_the_reset_cannot_kill_fails_the_verdict(signals):
    """A live task that survives every kill (here: one the stub census keeps listing) must make the reset
    report failure, which retires the container."""
    unkillable = 2_000_000_000  # no such pid: kill() cannot reach it, and it stays listed
    verdict = reset.kill_all(47_291, lambda: None, FakeCensus(others={unkillable}), lambda: {os.getpid()},
                             deadline_s=0.05)
    assert verdict is False
    assert len(signals) >= 2  # kill(-1) went out again while it waited


def test_kill_minus_one_refuses_root():
    with pytest.raises(ValueError):
        reset.signal_every_task_of(0)


def test_sandbox_tasks_finds_the_live_threads_of_a_zombie_leader(tmp_path):
    def task(pid, tid, state, uid):
        write(tmp_path / str(pid) / "task" / str(tid) / "status", f"Name:\tpython3\nState:\t{state}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")

    task(1, 1, "S (sleeping)", 0)
    task(8, 8, "Z (zombie)", 1000)    # the leader ended with SYS_exit...
    task(8, 9, "S (sleeping)", 1000)  # ...its threads did not
    task(8, 10, "R (running)", 1000)
    task(12, 12, "Z (zombie)", 1000)  # an ordinary zombie: nothing left to kill
    task(20, 20, "S (sleeping)", 1001)
    assert sorted(reset.sandbox_tasks(1000, proc=str(tmp_path))) == [9, 10]


# ---------------------------------------------------------------------------------------------- baseline


def test_a_directory_gets_its_mode_and_extended_attributes_back(tmp_path):
    directory = tmp_path / "sandbox"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    record = baseline.Baseline.take([str(directory)])
    assert record.directory_differences() == []

    os.chmod(directory, 0o555)
    os.setxattr(directory, "user.left", b"A")
    (directory / "file").write_text("x")
    differences = record.directory_differences()
    assert any("mode" in line for line in differences)
    assert any("xattrs" in line and "user.left" in line for line in differences)
    assert any("entries" in line and "file" in line for line in differences)

    baseline.restore_directory(str(directory), record.directories[str(directory)])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert os.listxattr(directory) == []
    (directory / "file").unlink()
    assert record.directory_differences() == []


def test_a_missing_directory_is_a_difference(tmp_path):
    directory = tmp_path / "shm"
    directory.mkdir()
    record = baseline.Baseline.take([str(directory)])
    directory.rmdir()
    assert record.directory_differences() == [f"{directory}: gone"]


def test_sockets_nobody_holds_are_strays(tmp_path):
    write(tmp_path / "net" / "unix", "Num       RefCount Protocol Flags    Type St Inode Path\n"
          "0000000000000000: 00000002 00000000 00010000 0001 01 111 @leftover\n"
          "0000000000000000: 00000003 00000000 00000000 0001 03 222\n")
    write(tmp_path / "net" / "udp", "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
          "  10: 0100007F:0C38 00000000:0000 07 00000000:00000000 00:00000000 00000000  1001        0 333 2\n"
          "  11: 0100007F:9C40 0100007F:0C38 07 00000000:00000000 00:00000000 00000000     0        0 0 2\n")
    strays = baseline.stray_sockets({222, 333}, proc=str(tmp_path))
    assert len(strays) == 1 and "@leftover" in strays[0]  # inode 0 is nobody's: not a stray
    assert baseline.stray_sockets({111, 222, 333}, proc=str(tmp_path)) == []


def test_socket_inodes_of_a_process(tmp_path):
    fds = tmp_path / "42" / "fd"
    fds.mkdir(parents=True)
    os.symlink("socket:[777]", fds / "3")
    os.symlink("pipe:[778]", fds / "4")
    os.symlink("/dev/null", fds / "5")
    assert baseline.socket_inodes(42, proc=str(tmp_path)) == {777}
