"""agent/procfs.read: the whole file, whatever its size, in few system calls."""

from __future__ import annotations

import os

import pytest

from isol8rt.agent import procfs


def test_reads_a_file_longer_than_one_chunk(tmp_path):
    data = os.urandom(3 * procfs._CHUNK + 17)
    path = tmp_path / "long"
    path.write_bytes(data)
    assert procfs.read(str(path)) == data


def test_reads_an_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert procfs.read(str(path)) == b""


def test_reads_a_proc_file_as_open_does():
    # A seq_file: read until the empty read, not until the first short one.
    assert procfs.read("/proc/self/mountinfo") == open("/proc/self/mountinfo", "rb").read()


def test_a_missing_file_raises_oserror_and_leaves_no_descriptor(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        procfs.read(str(tmp_path / "absent"))
    with pytest.raises(IsADirectoryError):
        procfs.read(str(tmp_path))
    assert len(os.listdir("/proc/self/fd")) == before
