"""DockerClient against the real daemon. Everything made here carries the label
isol8rt.test=docker-client and is removed by the ``docker`` fixture."""

from __future__ import annotations

import uuid

import pytest
import trio

from isol8rt.docker import (
    STDERR,
    STDOUT,
    APIError,
    BuildError,
    Conflict,
    ContainerSpec,
    DaemonNotRunning,
    DockerClient,
    HijackedStream,
    NotFound,
    tar_stream,
)

pytestmark = pytest.mark.docker

#: Generous bound on anything that could hang if the client were wrong; not a performance check.
HANG = 60


async def run_attached(docker: DockerClient, container_spec: ContainerSpec) -> tuple[str, HijackedStream]:
    container_id = await docker.create_container(container_spec)
    stream = await docker.attach_container(container_id, stdin=bool(container_spec.open_stdin))
    await docker.start_container(container_id)
    return container_id, stream


async def read_all(stream: HijackedStream) -> dict[int, bytes]:
    out = {STDOUT: b"", STDERR: b""}
    while pairs := await stream.receive():
        for number, payload in pairs:
            out[number] += payload
    return out


def unique() -> str:
    return uuid.uuid4().hex[:12]


async def test_ping_and_version(docker):
    await docker.ping()
    version = await docker.version()
    assert version.api_version and version.os == "linux" and version.version


async def test_round_trips_through_an_attached_cat(docker, make_spec):
    with trio.fail_after(HANG):
        container_id, stream = await run_attached(docker, make_spec(["cat"], stdin=True))
        async with stream:
            for i in range(200):
                message = b"%05d:" % i + bytes([65 + i % 26]) * (i % 97 + 1)
                await stream.send_all(message)
                echoed = b""
                while len(echoed) < len(message):
                    for number, payload in await stream.receive():
                        assert number == STDOUT
                        echoed += payload
                assert echoed == message
            await stream.send_eof()
            assert await stream.receive() == []
        assert await docker.wait_container(container_id) == 0


async def test_stderr_is_kept_apart_from_stdout(docker, make_spec):
    with trio.fail_after(HANG):
        script = "echo out one; echo err one >&2; echo out two; echo err two >&2"
        container_id, stream = await run_attached(docker, make_spec(["sh", "-c", script]))
        async with stream:
            got = await read_all(stream)
    assert got == {STDOUT: b"out one\nout two\n", STDERR: b"err one\nerr two\n"}


async def test_wait_returns_the_exit_code(docker, make_spec):
    container_id = await docker.create_container(make_spec(["sh", "-c", "exit 7"]))
    await docker.start_container(container_id)
    with trio.fail_after(HANG):
        assert await docker.wait_container(container_id) == 7
    state = (await docker.inspect_container(container_id)).state
    assert state.status == "exited" and state.exit_code == 7 and not state.running


async def test_kill_then_remove(docker, make_spec, image):
    container_id = await docker.create_container(make_spec(["sleep", "300"]))
    await docker.start_container(container_id)
    inspected = await docker.inspect_container(container_id)
    assert inspected.state.running and inspected.state.pid > 0
    assert inspected.config.labels["isol8rt.test"] == "docker-client" and inspected.config.image == image
    await docker.kill_container(container_id)
    with trio.fail_after(HANG):
        assert await docker.wait_container(container_id) == 137
    with pytest.raises(Conflict):
        await docker.kill_container(container_id)
    await docker.remove_container(container_id)
    with pytest.raises(NotFound):
        await docker.inspect_container(container_id)


async def test_a_missing_container_is_exactly_not_found(docker):
    with pytest.raises(NotFound) as caught:
        await docker.inspect_container(f"isol8rt-test-missing-{unique()}")
    assert type(caught.value) is NotFound and caught.value.status == 404
    assert "No such container" in caught.value.message


async def test_a_taken_name_is_a_conflict(docker, make_spec):
    name = f"isol8rt-test-{unique()}"
    await docker.create_container(make_spec(["true"]), name=name)
    with pytest.raises(Conflict) as caught:
        await docker.create_container(make_spec(["true"]), name=name)
    assert type(caught.value) is Conflict and name in caught.value.message


async def test_list_containers_by_label(docker, make_spec):
    run = unique()
    wanted = {await docker.create_container(make_spec(["true"], labels={"isol8rt.run": run})) for _ in range(2)}
    await docker.create_container(make_spec(["true"], labels={"isol8rt.run": "other"}))
    by_value = await docker.list_containers(labels={"isol8rt.run": run})
    assert {summary.id for summary in by_value} == wanted
    by_key = await docker.list_containers(labels={"isol8rt.run": None, "isol8rt.test": "docker-client"})
    assert wanted < {summary.id for summary in by_key}
    assert all(summary.labels["isol8rt.run"] == run for summary in by_value)


async def test_exec_as_an_unprivileged_user(docker, make_spec):
    container_id = await docker.create_container(make_spec(["sleep", "300"]))
    await docker.start_container(container_id)
    exec_id = await docker.exec_create(
        container_id,
        ["sh", "-c", 'id -u; id -g; echo "$GREETING"; pwd; cat'],
        user="1000:1000",
        env={"GREETING": "hi there"},
        workdir="/tmp",
        stdin=True,
    )
    with trio.fail_after(HANG):
        async with await docker.exec_start(exec_id) as stream:
            await stream.send_all(b"from stdin\n")
            await stream.send_eof()
            got = await read_all(stream)
    assert got[STDOUT] == b"1000\n1000\nhi there\n/tmp\nfrom stdin\n" and got[STDERR] == b""
    result = await docker.exec_inspect(exec_id)
    assert result.exit_code == 0 and not result.running


async def test_one_stats_sample(docker, make_spec):
    container_id = await docker.create_container(make_spec(["sleep", "300"]))
    await docker.start_container(container_id)
    stats = await docker.container_stats(container_id, one_shot=True)
    assert stats["memory_stats"]["usage"] > 0 and stats["pids_stats"]["current"] >= 1


async def build(docker: DockerClient, dockerfile: str, tag: str, **options):
    context = tar_stream(
        [("Dockerfile", dockerfile.encode(), 0o644), ("greeting.txt", b"hello from the context\n", 0o644)]
    )
    with trio.fail_after(HANG):
        async with docker.build_image(context, tag=tag, **options) as events:
            return [event async for event in events]


async def test_build_from_a_streamed_context(docker, make_spec, image):
    tag = f"isol8rt-test/built:{unique()}"
    dockerfile = f"FROM {image}\nCOPY greeting.txt /greeting.txt\nLABEL isol8rt.test=docker-client\n"
    events = await build(docker, dockerfile, tag, labels={"isol8rt.kind": "tiny"})
    built = [event.image_id for event in events if event.image_id]
    inspected = await docker.inspect_image(tag)
    assert built == [inspected.id]
    assert inspected.config.labels["isol8rt.test"] == "docker-client"
    assert inspected.config.labels["isol8rt.kind"] == "tiny"
    assert tag in inspected.repo_tags
    # The copied file is really in the image.
    with trio.fail_after(HANG):
        container_id, stream = await run_attached(docker, make_spec(["cat", "/greeting.txt"], image=tag))
        async with stream:
            assert (await read_all(stream))[STDOUT] == b"hello from the context\n"
    # Tag and untag.
    await docker.tag_image(tag, "isol8rt-test/built", "alias")
    assert "isol8rt-test/built:alias" in (await docker.inspect_image(inspected.id)).repo_tags
    assert [summary.id for summary in await docker.list_images(reference="isol8rt-test/built:alias")] == [inspected.id]
    await docker.remove_image("isol8rt-test/built:alias")
    with pytest.raises(NotFound):
        await docker.inspect_image("isol8rt-test/built:alias")


async def test_a_failing_run_step_is_a_build_error(docker, image):
    dockerfile = f"FROM {image}\nLABEL isol8rt.test=docker-client\nRUN echo going down >&2 && exit 3\n"
    with pytest.raises(BuildError) as caught:
        await build(docker, dockerfile, f"isol8rt-test/broken:{unique()}", nocache=True)
    assert "returned a non-zero code: 3" in caught.value.message
    assert "going down" in caught.value.log


async def test_import_a_root_filesystem(docker):
    rootfs = tar_stream([("etc/motd", b"imported\n", 0o644), ("hello", b"#!/bin/true\n", 0o755)])
    tag = unique()
    with trio.fail_after(HANG):
        image_id = await docker.import_image(
            rootfs,
            repo="isol8rt-test/imported",
            tag=tag,
            changes=["LABEL isol8rt.test=docker-client", 'CMD ["/hello"]'],
        )
    inspected = await docker.inspect_image(f"isol8rt-test/imported:{tag}")
    assert inspected.id == image_id and inspected.size > 0
    assert inspected.config.labels == {"isol8rt.test": "docker-client"}


async def test_pull_fails_fast_without_a_registry(docker):
    with trio.fail_after(HANG):
        with pytest.raises(APIError) as caught:
            await docker.pull_image("isol8rt-test/never-published", "1")
    assert caught.value.message


async def test_no_daemon_on_a_missing_socket():
    async with DockerClient("unix:///nonexistent.sock") as docker:
        with pytest.raises(DaemonNotRunning, match="/nonexistent.sock"):
            await docker.ping()


async def test_keep_alive_reuses_connections(docker, make_spec):
    container_id = await docker.create_container(make_spec(["true"]))
    opened = docker._pool.connections_opened
    for _ in range(50):
        assert (await docker.inspect_container(container_id)).id == container_id
    assert docker._pool.connections_opened - opened <= 1
