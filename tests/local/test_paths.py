"""The local engine's socket is private: this user's, mode 0600 in a 0700 directory, or not used."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from isol8rt.local.paths import NotPrivate, check_socket, default_socket, make_directory

FOREIGN_UID = 54321


def test_default_socket_is_in_the_users_runtime_dir_else_a_private_tmp_dir():
    assert default_socket({"ISOL8RT_SOCKET": "/x/e.sock", "XDG_RUNTIME_DIR": "/run/user/1"}) == Path("/x/e.sock")
    assert default_socket({"XDG_RUNTIME_DIR": "/run/user/1"}) == Path("/run/user/1/isol8rt/engine.sock")
    assert default_socket({}) == Path(f"/tmp/isol8rt-{os.getuid()}/engine.sock")
    assert default_socket({"XDG_RUNTIME_DIR": "relative"}) == Path(f"/tmp/isol8rt-{os.getuid()}/engine.sock")


def _socket_at(path: Path, mode: int = 0o600) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    os.chmod(path, mode)
    return sock


def test_make_directory_makes_it_0700_and_a_private_socket_passes(tmp_path):
    directory = tmp_path / "engine"
    make_directory(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    with _socket_at(directory / "engine.sock"):
        check_socket(directory / "engine.sock")


def test_no_socket_is_file_not_found(tmp_path):
    make_directory(tmp_path / "d")
    with pytest.raises(FileNotFoundError):
        check_socket(tmp_path / "d" / "engine.sock")


@pytest.mark.parametrize(("mode", "shown"), [(0o755, "0755"), (0o710, "0710"), (0o701, "0701")])
def test_a_directory_others_can_enter_is_refused(tmp_path, mode, shown):
    directory = tmp_path / "d"
    directory.mkdir(mode)
    directory.chmod(mode)
    with pytest.raises(NotPrivate, match=f"directory {directory} has mode {shown}, not 0700"):
        make_directory(directory)


@pytest.mark.parametrize("mode", [0o666, 0o660, 0o606, 0o700])
def test_a_socket_others_can_reach_is_refused(tmp_path, mode):
    make_directory(tmp_path / "d")
    with _socket_at(tmp_path / "d" / "engine.sock", mode):
        with pytest.raises(NotPrivate, match=f"has mode {mode:04o}, not 0600"):
            check_socket(tmp_path / "d" / "engine.sock")


@pytest.mark.skipif(os.getuid() != 0, reason="making a file someone else's needs root")
def test_a_directory_or_socket_of_another_user_is_refused(tmp_path):
    make_directory(tmp_path / "d")
    with _socket_at(tmp_path / "d" / "engine.sock"):
        os.chown(tmp_path / "d" / "engine.sock", FOREIGN_UID, -1)
        with pytest.raises(NotPrivate, match=f"socket .* belongs to uid {FOREIGN_UID}, not to you"):
            check_socket(tmp_path / "d" / "engine.sock")
        os.chown(tmp_path / "d", FOREIGN_UID, -1)
        with pytest.raises(NotPrivate, match=f"directory .* belongs to uid {FOREIGN_UID}, not to you"):
            make_directory(tmp_path / "d")


def test_a_link_or_a_file_is_refused(tmp_path):
    (tmp_path / "real").mkdir(0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(NotPrivate, match="is not a directory"):
        make_directory(tmp_path / "link")
    make_directory(tmp_path / "d")
    (tmp_path / "d" / "engine.sock").write_text("")
    with pytest.raises(NotPrivate, match="is not a socket"):
        check_socket(tmp_path / "d" / "engine.sock")


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory someone else's needs root")
def test_a_directory_under_one_another_user_can_change_is_refused(tmp_path):
    # Attack: `sudo -E isol8rt engine start` keeps XDG_RUNTIME_DIR=/run/user/<them>, a directory of theirs:
    # root's engine made and checked <it>/isol8rt (root's, 0700), but they can rename it and put their own
    # in its place between that check and the bind, the pid file's write (through their link, as root) or
    # the CLI's connect.
    (tmp_path / "theirs").mkdir()
    os.chown(tmp_path / "theirs", FOREIGN_UID, -1)
    with pytest.raises(NotPrivate, match=f"theirs, above .*, belongs to uid {FOREIGN_UID}"):
        make_directory(tmp_path / "theirs" / "isol8rt")
    os.chown(tmp_path / "theirs", 0, -1)
    make_directory(tmp_path / "theirs" / "isol8rt")
    with _socket_at(tmp_path / "theirs" / "isol8rt" / "engine.sock"):
        os.chown(tmp_path / "theirs", FOREIGN_UID, -1)
        with pytest.raises(NotPrivate, match=f"belongs to uid {FOREIGN_UID}"):
            check_socket(tmp_path / "theirs" / "isol8rt" / "engine.sock")
    # A link on the way that someone else owns: they can point it elsewhere.
    (tmp_path / "link").symlink_to(tmp_path / "theirs")
    os.chown(tmp_path / "theirs", 0, -1)
    os.lchown(tmp_path / "link", FOREIGN_UID, -1)
    with pytest.raises(NotPrivate, match=f"link, on the way to .*, is a link of uid {FOREIGN_UID}"):
        make_directory(tmp_path / "link" / "isol8rt")


def test_a_directory_under_one_others_may_write_is_refused_unless_sticky(tmp_path):
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(NotPrivate, match="open, above .*, is writable by others"):
        make_directory(tmp_path / "open" / "isol8rt")
    os.chmod(tmp_path / "open", 0o1777)  # as /tmp: only an entry's owner may rename it
    make_directory(tmp_path / "open" / "isol8rt")
