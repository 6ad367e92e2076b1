"""Docker's conventions on the sans-io HTTP connection: requests as bytes (checked by a server-side h11
parser and against requests the daemon accepted), recorded daemon answers parsed into events, error
answers into exceptions, progress bodies into their lines."""

from __future__ import annotations

import h11
import msgspec
import pytest

from isol8rt.docker import APIError, BuildEvent, Conflict, NotFound, VersionInfo
from isol8rt.docker._api import UPGRADE_TCP, JSONLines, api_error, error_message, quote_path, target
from isol8rt.docker._models import Created, WaitResult
from isol8rt.wire.http_client import END_OF_BODY, NEED_DATA, Body, ClientConnection, PeerClosed, Response, Upgraded

from tests.wire.http_support import parse_request


def headers_of(request: h11.Request) -> dict[bytes, bytes]:
    return {name: value for name, value in request.headers}


def drain(http: ClientConnection) -> list:
    events = []
    while (event := http.next_event()) is not NEED_DATA:
        events.append(event)
        if event is END_OF_BODY or isinstance(event, Upgraded):
            break
    return events


def exchange(recording, method="GET", path="/x", *, byte_at_a_time=False, **request) -> list:
    """Send a request, then feed the recorded answer read by read (or byte by byte)."""
    http = ClientConnection(b"docker")
    http.request(method, path, **request)
    events = []
    data = recording.response
    pieces = [data[i : i + 1] for i in range(len(data))] if byte_at_a_time else recording.reads
    for piece in pieces:
        http.receive_data(piece)
        events += drain(http)
        if events and isinstance(events[-1], Upgraded):
            break  # the rest belongs to the raw stream
    return events


def body_of(events) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Body))


# --------------------------------------------------------------------------------------------------
# requests


def test_a_hijack_request_asks_for_an_upgrade_to_tcp():
    request, _ = parse_request(ClientConnection(b"docker").request("POST", "/v1.41/containers/c/attach",
                                                                   headers=UPGRADE_TCP))
    headers = headers_of(request)
    assert headers[b"connection"] == b"Upgrade" and headers[b"upgrade"] == b"tcp"


@pytest.mark.parametrize("name", ["ping", "version", "create_201", "wait_chunked", "exec_101_merged"])
def test_requests_the_daemon_accepted_are_still_produced_byte_for_byte(recording, name):
    recorded = recording(name)
    request, body = parse_request(recorded.request)
    headers = headers_of(request)
    rebuilt = ClientConnection(headers[b"host"]).request(
        request.method.decode(),
        request.target.decode(),
        body=body or None,
        content_type=headers.get(b"content-type", b"").decode() or None,
        headers=UPGRADE_TCP if b"upgrade" in headers else (),
    )
    assert rebuilt == recorded.request


def test_target_encodes_docker_query_values():
    url = target(
        "/v1.41",
        "/images/create",
        {
            "fromSrc": "-",
            "repo": "a/b",
            "changes": ['CMD ["x"]', "ENV A=b c"],
            "force": True,
            "quiet": False,
            "skip": None,
        },
    )
    assert url == (
        "/v1.41/images/create?fromSrc=-&repo=a%2Fb&changes=CMD%20%5B%22x%22%5D&changes=ENV%20A%3Db%20c&force=1&quiet=0"
    )
    assert target("/v1.41", "/_ping", {"skip": None}) == "/v1.41/_ping"


def test_image_references_keep_their_slashes_and_colons():
    assert quote_path("registry:5000/team/app:1.2") == "registry:5000/team/app:1.2"
    assert quote_path("a b?c") == "a%20b%3Fc"


# --------------------------------------------------------------------------------------------------
# answers


@pytest.mark.parametrize("byte_at_a_time", [False, True])
def test_ping_answer(recording, byte_at_a_time):
    events = exchange(recording("ping"), byte_at_a_time=byte_at_a_time)
    assert isinstance(events[0], Response) and events[0].status == 200
    assert events[0].header(b"api-version") == b"1.41"
    assert body_of(events) == b"OK"
    assert events[-1] is END_OF_BODY


def test_version_answer_decodes(recording):
    events = exchange(recording("version"))
    version = msgspec.json.decode(body_of(events), type=VersionInfo)
    assert version.api_version == "1.41" and version.os == "linux" and version.version


def test_create_answer_carries_the_id(recording):
    events = exchange(recording("create_201"), "POST", "/c", body=b"{}")
    assert events[0].status == 201
    created = msgspec.json.decode(body_of(events), type=Created)
    assert len(created.id) == 64


def test_404_becomes_not_found_with_dockers_message(recording):
    events = exchange(recording("inspect_404"))
    error = api_error(events[0].status, events[0].reason, body_of(events), "GET", "/containers/x/json")
    assert type(error) is NotFound
    assert error.status == 404 and error.method == "GET" and error.path == "/containers/x/json"
    assert error.message == "No such container: isol8rt-test-no-such-container"
    assert "No such container" in str(error)


def test_409_becomes_conflict(recording):
    events = exchange(recording("create_409"), "POST", "/c", body=b"{}")
    error = api_error(events[0].status, events[0].reason, body_of(events), "POST", "/containers/create")
    assert type(error) is Conflict and "is already in use" in error.message


def test_other_statuses_are_plain_api_errors():
    error = api_error(500, b"Internal Server Error", b'{"message":"boom"}', "POST", "/x")
    assert type(error) is APIError and error.message == "boom"


def test_error_message_falls_back_to_text_then_reason():
    assert error_message(b"404 page not found\n", "Not Found") == "404 page not found"
    assert error_message(b"", "Not Found") == "Not Found"


@pytest.mark.parametrize("byte_at_a_time", [False, True])
def test_chunked_wait_answer(recording, byte_at_a_time):
    events = exchange(recording("wait_chunked"), "POST", "/w", byte_at_a_time=byte_at_a_time)
    assert events[0].header(b"transfer-encoding") == b"chunked"
    assert msgspec.json.decode(body_of(events), type=WaitResult).status_code == 3
    assert events[-1] is END_OF_BODY


def test_keep_alive_carries_a_second_request_on_the_same_connection(recording):
    http = ClientConnection(b"docker")
    for name in ("ping", "version", "inspect_404"):
        assert http.request("GET", "/x")
        http.receive_data(recording(name).response)
        events = drain(http)
        assert events[-1] is END_OF_BODY
        assert http.reusable
        http.start_next_cycle()


def test_a_half_read_answer_is_not_reusable(recording):
    http = ClientConnection(b"docker")
    http.request("POST", "/w")
    http.receive_data(recording("wait_chunked").response[:-5])
    drain(http)
    assert not http.reusable


def test_101_hands_over_the_frames_that_came_with_it(recording):
    rec = recording("attach_101_merged")
    events = exchange(rec, "POST", "/attach", headers=UPGRADE_TCP)
    assert len(events) == 1
    upgraded = events[0]
    assert isinstance(upgraded, Upgraded) and upgraded.response.status == 101
    assert upgraded.response.header(b"upgrade") == b"tcp"
    head_end = rec.reads[0].index(b"\r\n\r\n") + 4
    assert upgraded.trailing == rec.reads[0][head_end:] and len(upgraded.trailing) > 100
    assert not upgraded.closed


def test_101_notes_a_daemon_that_already_hung_up(recording):
    http = ClientConnection(b"docker")
    http.request("POST", "/exec/x/start", body=b"{}", headers=UPGRADE_TCP)
    http.receive_data(recording("exec_101_merged").response)
    http.receive_data(b"")
    upgraded = http.next_event()
    assert isinstance(upgraded, Upgraded) and upgraded.closed
    assert b"out\n" in upgraded.trailing and b"err\n" in upgraded.trailing


def test_eof_in_the_middle_of_an_answer_is_the_peer_closing(recording):
    """The transport makes it StreamClosed (test_transport.py)."""
    http = ClientConnection(b"docker")
    http.request("POST", "/w")
    http.receive_data(recording("wait_chunked").response[:-7])
    http.receive_data(b"")
    with pytest.raises(PeerClosed):
        drain(http)


# --------------------------------------------------------------------------------------------------
# progress streams


def progress_events(recording) -> list[BuildEvent]:
    lines = JSONLines()
    out = []
    for event in exchange(recording, "POST", "/build"):
        if isinstance(event, Body):
            out += lines.feed(event.data)
    out += lines.close()
    return [msgspec.json.decode(line, type=BuildEvent) for line in out]


def test_build_stream_ends_with_the_image_id(recording):
    events = progress_events(recording("build_stream"))
    text = "".join(event.stream or "" for event in events)
    assert "Step 3/3 : LABEL isol8rt.test=docker-client" in text
    image_ids = [event.image_id for event in events if event.image_id]
    assert len(image_ids) == 1 and image_ids[0].startswith("sha256:")
    assert all(event.error_message is None for event in events)


def test_build_error_message(recording):
    events = progress_events(recording("build_error"))
    message = "The command '/bin/sh -c echo about to fail && false' returned a non-zero code: 1"
    assert events[-1].error_message == message


def test_json_lines_survive_any_chunking():
    body = b'{"stream":"a"}\r\n{"stream":"b"}\r\n\r\n{"status":"c"}'
    for cut in range(len(body) + 1):
        lines = JSONLines()
        got = lines.feed(body[:cut]) + lines.feed(body[cut:]) + lines.close()
        assert [next(iter(msgspec.json.decode(line).values())) for line in got] == ["a", "b", "c"]
