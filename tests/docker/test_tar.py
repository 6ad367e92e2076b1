"""The streaming tar writer: readable by tarfile, deterministic, streamed in bounded chunks, and
identical to the context the daemon built from."""

from __future__ import annotations

import io
import tarfile

import h11
import pytest

from isol8rt.docker import tar_stream


def read_back(chunks) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:") as archive:
        return {member.name: (member, archive.extractfile(member).read()) for member in archive.getmembers()}


def test_members_read_back_with_their_content_and_mode(tmp_path):
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho hi\n")
    members = read_back(tar_stream([("Dockerfile", b"FROM scratch\n", 0o644), ("bin/run.sh", script, 0o755)]))
    assert list(members) == ["Dockerfile", "bin/run.sh"]
    info, content = members["bin/run.sh"]
    assert content == b"#!/bin/sh\necho hi\n" and info.mode == 0o755 and info.isreg()
    assert members["Dockerfile"][1] == b"FROM scratch\n"


def test_output_depends_only_on_the_entries(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 1000)
    entries = [("a.txt", b"a", 0o644), ("data.bin", path, 0o600)]
    first = b"".join(tar_stream(entries))
    path.touch()  # a new mtime on disk must not show
    assert b"".join(tar_stream(entries, chunk_size=777)) == first
    for info, _ in read_back([first]).values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")


def test_members_keep_the_order_given():
    members = read_back(tar_stream([("z", b"", 0o644), ("a", b"", 0o644), ("m", b"", 0o644)]))
    assert list(members) == ["z", "a", "m"]


def test_a_large_file_is_streamed_in_bounded_chunks(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    chunks = list(tar_stream([("big.bin", path, 0o644)], chunk_size=16 * 1024))
    assert len(chunks) > 50
    assert max(len(chunk) for chunk in chunks) < 2 * 16 * 1024
    assert read_back(chunks)["big.bin"][1] == path.read_bytes()


def test_long_and_non_ascii_names_survive():
    name = "deep/" * 30 + "fichier-été.txt"
    assert read_back(tar_stream([(name, b"ok", 0o644)]))[name][1] == b"ok"


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape", "a/../../b", ""])
def test_names_outside_the_archive_are_refused(name):
    with pytest.raises(ValueError):
        list(tar_stream([(name, b"", 0o644)]))


def test_the_archive_is_block_aligned_and_terminated():
    data = b"".join(tar_stream([("f", b"12345", 0o644)]))
    assert len(data) % 512 == 0
    assert data.endswith(bytes(1024))


def test_the_recorded_build_context_is_reproduced_exactly(recording):
    # record.py sent this context in its build request, and the daemon built from it.
    server = h11.Connection(h11.SERVER)
    server.receive_data(recording("build_stream").request)
    body = b""
    while not isinstance(event := server.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            body += event.data
    dockerfile = b"FROM proto/base:1\nCOPY hello.txt /hello.txt\nLABEL isol8rt.test=docker-client\n"
    assert b"".join(tar_stream([("Dockerfile", dockerfile, 0o644), ("hello.txt", b"hello\n", 0o644)])) == body
