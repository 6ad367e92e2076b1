"""DockerClient's request building and answer handling, against a fake daemon replaying recorded
answers (the real daemon is exercised in test_client_integration.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from isol8rt.docker import (
    APIError,
    BuildError,
    ContainerSpec,
    DockerClient,
    HostConfig,
    LogConfig,
    Ulimit,
    tar_stream,
)


def chunked(*lines: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + body + b"0\r\n\r\n"


@pytest.fixture
async def docker(replay_daemon):
    async with DockerClient(f"unix://{replay_daemon.path}") as client:
        yield client


async def test_create_sends_only_the_fields_set_with_dockers_names(docker, replay_daemon, recording):
    replay_daemon.answer(recording("create_201").response)
    spec = ContainerSpec(
        image="img",
        cmd=["cat"],
        user="1000:1000",
        open_stdin=True,
        host_config=HostConfig(
            memory=0,
            readonly_rootfs=True,
            nano_cpus=500_000_000,
            log_config=LogConfig(type="none"),
            ulimits=[Ulimit(name="nofile", soft=64, hard=64)],
            tmpfs={"/tmp": "size=64m"},
        ),
    )
    container_id = await docker.create_container(spec, name="box-1")
    assert len(container_id) == 64
    request, body = replay_daemon.requests[0]
    assert request.target == b"/v1.41/containers/create?name=box-1"
    assert msgspec.json.decode(body) == {
        "Image": "img",
        "Cmd": ["cat"],
        "User": "1000:1000",
        "OpenStdin": True,
        "HostConfig": {
            "ReadonlyRootfs": True,
            "Tmpfs": {"/tmp": "size=64m"},
            "Memory": 0,  # set, so sent, even though it is zero
            "NanoCpus": 500_000_000,
            "LogConfig": {"Type": "none"},
            "Ulimits": [{"Name": "nofile", "Soft": 64, "Hard": 64}],
        },
    }


async def test_wait_returns_the_exit_code_from_a_chunked_answer(docker, replay_daemon, recording):
    replay_daemon.answer(recording("wait_chunked").response)
    assert await docker.wait_container("c1") == 3
    assert replay_daemon.requests[0][0].target == b"/v1.41/containers/c1/wait?condition=not-running"


async def test_label_filters(docker, replay_daemon):
    replay_daemon.answer(chunked(b"[]"))
    replay_daemon.answer(chunked(b'[{"Id":"sha256:1","RepoTags":["a:1"],"Labels":{"k":"v"},"Extra":1}]'))
    assert await docker.list_containers(labels={"k": "v", "present": None}) == []
    images = await docker.list_images(labels={"k": "v"}, reference="a:*")
    assert images[0].repo_tags == ["a:1"] and images[0].labels == {"k": "v"}
    queries = [parse_qs(urlsplit(request.target.decode()).query) for request, _ in replay_daemon.requests]
    assert queries[0]["all"] == ["1"]
    assert msgspec.json.decode(queries[0]["filters"][0]) == {"label": ["k=v", "present"]}
    assert msgspec.json.decode(queries[1]["filters"][0]) == {"label": ["k=v"], "reference": ["a:*"]}


async def test_a_build_streams_its_context_and_yields_events_up_to_the_image_id(docker, replay_daemon, recording):
    replay_daemon.answer(recording("build_stream").response)
    replay_daemon.answer(recording("ping").response)
    context = tar_stream([("Dockerfile", b"FROM x\n", 0o644)], chunk_size=512)
    async with docker.build_image(context, tag="t:1", labels={"a": "b"}, buildargs={"V": "1"}) as events:
        collected = [event async for event in events]
    assert [event.image_id for event in collected if event.image_id][0].startswith("sha256:")
    assert collected[-1].stream == "Successfully tagged isol8rt-test/recorded:1\n"
    request, body = replay_daemon.requests[0]
    headers = dict(request.headers)
    assert headers[b"content-type"] == b"application/x-tar" and headers[b"transfer-encoding"] == b"chunked"
    assert body == b"".join(tar_stream([("Dockerfile", b"FROM x\n", 0o644)]))
    assert b"version=1" in request.target and b"forcerm=1" in request.target and b"t=t%3A1" in request.target
    # A build read to its end gives its connection back.
    await docker.ping()
    assert docker._pool.connections_opened == 1


async def test_a_failed_step_raises_build_error_with_the_last_lines(docker, replay_daemon, recording):
    replay_daemon.answer(recording("build_error").response)
    seen = []
    with pytest.raises(BuildError) as caught:
        async for event in docker.build_image(b"context", tag="t:1"):
            seen.append(event)
    error = caught.value
    assert error.message == "The command '/bin/sh -c echo about to fail && false' returned a non-zero code: 1"
    assert "about to fail" in error.log and "Step 3/3 : RUN echo about to fail && false" in error.log
    assert seen and seen[0].stream == "Step 1/3 : FROM proto/base:1"


async def test_a_refused_build_is_a_build_error(docker, replay_daemon):
    body = b'{"message":"Cannot locate specified Dockerfile: Dockerfile"}'
    replay_daemon.answer(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    with pytest.raises(BuildError, match="Cannot locate specified Dockerfile"):
        async for _ in docker.build_image(b"", tag="t:1"):
            pass


async def test_closing_a_build_early_drops_its_connection(docker, replay_daemon, recording):
    replay_daemon.answer(recording("build_stream").response)
    replay_daemon.answer(recording("ping").response)
    async with docker.build_image(b"context", tag="t:1") as events:
        async for _ in events:
            break
    async for _ in events:
        raise AssertionError("a closed build yields nothing")
    await docker.ping()
    assert docker._pool.connections_opened == 2


async def test_import_returns_the_image_id(docker, replay_daemon, recording, tmp_path):
    replay_daemon.answer(recording("import_stream").response)
    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(b"".join(tar_stream([("hello", b"hi\n", 0o755)])))
    image_id = await docker.import_image(archive, repo="r", tag="1", changes=['CMD ["/hello"]'])
    assert image_id.startswith("sha256:") and len(image_id) == 71
    request, body = replay_daemon.requests[0]
    assert request.target == b"/v1.41/images/create?fromSrc=-&repo=r&tag=1&changes=CMD%20%5B%22%2Fhello%22%5D"
    assert body == archive.read_bytes()


async def test_an_error_inside_a_progress_stream_is_an_api_error(docker, replay_daemon):
    error = b'{"errorDetail":{"message":"archive/tar: invalid tar header"},"error":"archive/tar: invalid tar header"}'
    replay_daemon.answer(chunked(error + b"\r\n"))
    with pytest.raises(APIError, match="invalid tar header") as caught:
        await docker.import_image(b"not a tar", repo="r", tag="1")
    assert caught.value.method == "POST" and caught.value.path == "/images/create"
