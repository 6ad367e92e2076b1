"""A hostile or careless client costs only itself: time limits, size limits, the connection cap.

Ordering is established with events and with what the proxy answers, never with sleeps; the time
bounds asserted are generous."""

from __future__ import annotations

import trio

from proxy_support import open_tunnel, receive_exactly, receive_until_eof, request, running_proxy

HEADER_TIMEOUT = 2.0


def local(*ports: int) -> list[str]:
    return ["--allow-private", "127.0.0.1/32", *(f"--connect-port={port}" for port in ports)]


async def test_slowloris_does_not_delay_others(origin):
    args = [*local(origin.port), "--header-timeout", str(HEADER_TIMEOUT)]
    async with running_proxy(*args) as proxy, trio.open_nursery() as nursery:
        trickling, silent = trio.Event(), trio.Event()
        cut_off: dict[str, float] = {}

        async def trickle():
            # One header byte at a time, 0.2 s apart: the head would take ~10 s to complete.
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            head = f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 40}\r\n\r\n".encode()
            start = trio.current_time()
            try:
                for i, byte in enumerate(head):
                    await stream.send_all(bytes([byte]))
                    if i == 1:
                        trickling.set()
                    await trio.sleep(0.2)
            except trio.BrokenResourceError:
                pass
            await receive_until_eof(stream)
            cut_off["trickle"] = trio.current_time() - start

        async def say_nothing():
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            start = trio.current_time()
            silent.set()
            assert await receive_until_eof(stream) == b""
            cut_off["silent"] = trio.current_time() - start

        nursery.start_soon(trickle)
        nursery.start_soon(say_nothing)
        await trickling.wait()
        await silent.wait()
        start = trio.current_time()
        reply = await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}/normal")
        elapsed = trio.current_time() - start
        assert reply.status == 200
        assert not cut_off, "the normal request should have finished while the slow clients were still on"
        assert elapsed < HEADER_TIMEOUT / 2
        assert (await proxy.expect("request"))["path"] == "/normal"
        with trio.fail_after(10):
            while len(cut_off) < 2:
                await trio.sleep(0.05)
        # Cut off at the header timeout: not before, and not at the ~10 s the trickle would take.
        assert HEADER_TIMEOUT * 0.8 < cut_off["silent"] < HEADER_TIMEOUT * 3
        assert HEADER_TIMEOUT * 0.8 < cut_off["trickle"] < HEADER_TIMEOUT * 3


async def test_200_concurrent_tunnels(echo_port):
    count = 200
    async with running_proxy(*local(echo_port)) as proxy:
        established = 0
        everyone_in = trio.Event()
        results = []

        async def tunnel(i: int):
            status, stream, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
            async with stream:
                assert status == 200
                nonlocal established
                established += 1
                if established == count:
                    everyone_in.set()
                await everyone_in.wait()  # all tunnels are open at once before any echoes
                message = f"tunnel {i}".encode() * 100
                await stream.send_all(message)
                results.append(await receive_exactly(stream, len(message)) == message)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(tunnel, i)
        assert results == [True] * count
        logs = [await proxy.expect("request") for _ in range(count)]
        assert all(log["action"] == "ALLOW" and log["status"] == 200 for log in logs)
        assert sorted(log["bytes_out"] for log in logs) == sorted(len(f"tunnel {i}") * 100 for i in range(count))


async def test_connection_cap(echo_port):
    async with running_proxy(*local(echo_port), "--max-connections", "3") as proxy:
        tunnels = []
        for _ in range(3):
            status, stream, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
            assert status == 200
            tunnels.append(stream)
        with trio.fail_after(10):
            extra = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            async with extra:
                assert await receive_until_eof(extra) == b""  # closed at once, unserved
        await tunnels.pop().aclose()
        await proxy.expect("request")  # logged: that connection is gone, so there is room again
        status, stream, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
        tunnels.append(stream)
        assert status == 200
        for stream in tunnels:
            await stream.aclose()


async def test_oversized_head_is_refused(origin):
    async with running_proxy(*local(origin.port), "--max-header-bytes", "4096") as proxy:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            async with stream:
                head = f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 8000}\r\n\r\n"
                try:
                    await stream.send_all(head.encode())
                except trio.BrokenResourceError:
                    pass
                response = await receive_until_eof(stream)
        assert response.startswith(b"HTTP/1.1 431 ")
        log = await proxy.expect("request")
        assert (log["action"], log["status"]) == ("BLOCK", 431)
        reply = await request(proxy.port, "GET", f"http://127.0.0.1:{origin.port}/", headers=[("X-Ok", "a" * 3000)])
        assert reply.status == 200


async def test_idle_tunnel_is_closed(echo_port):
    async with running_proxy(*local(echo_port), "--idle-timeout", "1") as proxy:
        with trio.fail_after(10):
            status, stream, _ = await open_tunnel(proxy.port, f"127.0.0.1:{echo_port}")
            assert status == 200
            async with stream:
                await stream.send_all(b"ping")
                assert await receive_exactly(stream, 4) == b"ping"
                start = trio.current_time()
                assert await receive_until_eof(stream) == b""
                assert trio.current_time() - start > 0.8
        log = await proxy.expect("request")
        assert (log["error"], log["bytes_in"], log["bytes_out"]) == ("idle timeout", 4, 4)
