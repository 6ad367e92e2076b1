"""The FIFO open watch wakes on an open of a watched FIFO, once, and on nothing else."""

from __future__ import annotations

import os
import select

import pytest

from isol8rt.agent.open_watch import OpenWatch


@pytest.fixture
def watch():
    open_watch = OpenWatch.create()
    if open_watch is None:
        pytest.skip("no inotify here")
    yield open_watch
    os.close(open_watch.fd)


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_an_open_of_the_fifo_wakes_it_once(watch, tmp_path):
    fifo = tmp_path / "main.py"
    os.mkfifo(fifo)
    ours = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # before the watch: not an event
    assert watch.watch(str(fifo))
    assert not _readable(watch.fd)
    theirs = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    assert _readable(watch.fd)
    watch.drain()
    assert not _readable(watch.fd)
    again = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # one-shot: the interpreter opens it once
    assert not _readable(watch.fd)
    for fd in (ours, theirs, again):
        os.close(fd)


def test_a_symlink_in_its_place_is_not_followed(watch, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "main.py"
    link.symlink_to(target)
    assert watch.watch(str(link))
    with open(target):
        pass
    assert not _readable(watch.fd)


def test_a_missing_path_is_refused_not_raised(watch, tmp_path):
    assert not watch.watch(str(tmp_path / "absent"))
