"""The sans-io HTTP client connection on bytes alone: requests checked by a server-side h11 parser,
answers fed whole, cut anywhere, or cut short. (Docker's recorded answers: tests/docker/test_api.py.)"""

from __future__ import annotations

import h11
import pytest

from isol8rt.wire.http_client import (
    END_OF_BODY,
    NEED_DATA,
    Body,
    ClientConnection,
    PeerClosed,
    RemoteProtocolError,
    Response,
    Upgraded,
)

from tests.wire.http_support import parse_request


def events_of(http: ClientConnection, *pieces: bytes) -> list:
    events = []
    for piece in pieces:
        http.receive_data(piece)
        while (event := http.next_event()) is not NEED_DATA:
            events.append(event)
            if event is END_OF_BODY or isinstance(event, Upgraded):
                return events
    return events


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")


# --------------------------------------------------------------------------------------------------
# requests


def test_every_request_carries_host_user_agent_and_the_connections_headers_in_that_order():
    http = ClientConnection(b"example:3000", headers=[(b"Authorization", b"Bearer k")])
    request, _ = parse_request(http.request("GET", "/health"))
    assert [name for name, _ in request.headers] == [b"host", b"user-agent", b"authorization"]
    assert dict(request.headers)[b"host"] == b"example:3000"


def test_get_has_no_body_framing_and_an_empty_post_says_content_length_zero():
    request, body = parse_request(ClientConnection(b"h").request("GET", "/x"))
    assert b"content-length" not in dict(request.headers) and b"transfer-encoding" not in dict(request.headers)
    assert body == b""
    for method in ("POST", "DELETE"):
        request, _ = parse_request(ClientConnection(b"h").request(method, "/x"))
        assert dict(request.headers)[b"content-length"] == b"0"


def test_a_body_carries_its_type_and_length_and_the_requests_own_headers_go_last():
    payload = b'{"a":1}'
    data = ClientConnection(b"h").request("POST", "/x", body=payload, content_type="application/json",
                                          headers=[(b"X-Last", b"1")])
    request, body = parse_request(data)
    assert [name for name, _ in request.headers][-3:] == [b"content-type", b"content-length", b"x-last"]
    assert dict(request.headers)[b"content-length"] == str(len(payload)).encode() and body == payload


def test_a_chunked_body_is_sent_piece_by_piece_and_an_empty_piece_does_not_end_it():
    http = ClientConnection(b"h")
    data = http.request("POST", "/build", chunked=True)
    data += http.chunk(b"first") + http.chunk(b"") + http.chunk(b"second") + http.end()
    request, body = parse_request(data)
    assert dict(request.headers)[b"transfer-encoding"] == b"chunked" and body == b"firstsecond"


def test_a_body_is_either_bytes_or_chunked():
    with pytest.raises(ValueError):
        ClientConnection(b"h").request("POST", "/x", body=b"a", chunked=True)


# --------------------------------------------------------------------------------------------------
# answers


@pytest.mark.parametrize("answer", [ANSWER, CHUNKED])
def test_an_answer_cut_anywhere_gives_the_same_events(answer):
    whole = events_of(_sent("GET"), answer)
    for cut in range(1, len(answer)):
        cut_events = events_of(_sent("GET"), answer[:cut], answer[cut:])
        assert cut_events[0] == whole[0]
        assert b"".join(e.data for e in cut_events if isinstance(e, Body)) == \
            b"".join(e.data for e in whole if isinstance(e, Body))
        assert cut_events[-1] is END_OF_BODY


def test_keep_alive_carries_the_next_request_once_the_answer_is_read_to_its_end():
    http = ClientConnection(b"h")
    for _ in range(3):
        http.request("GET", "/x")
        events = events_of(http, ANSWER)
        assert isinstance(events[0], Response) and events[0].header(b"content-type") == b"application/json"
        assert http.reusable
        http.start_next_cycle()


def test_a_half_read_answer_is_not_reusable():
    http = _sent("GET")
    events_of(http, CHUNKED[:-5])
    assert not http.reusable


def test_a_100_continue_is_skipped():
    events = events_of(_sent("POST"), b"HTTP/1.1 100 Continue\r\n\r\n" + ANSWER)
    assert events[0].status == 200 and events[-1] is END_OF_BODY


def test_a_101_hands_over_the_bytes_that_came_with_it():
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    http = ClientConnection(b"h")
    http.request("GET", "/ws", headers=[(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")])
    [upgraded] = events_of(http, head + b"\x81\x02hi")
    assert isinstance(upgraded, Upgraded) and upgraded.response.status == 101
    assert upgraded.trailing == b"\x81\x02hi" and not upgraded.closed


def test_eof_before_any_answer_and_in_the_middle_of_one_is_the_peer_closing():
    with pytest.raises(PeerClosed):
        events_of(_sent("GET"), b"")
    with pytest.raises(PeerClosed):
        events_of(_sent("GET"), ANSWER[:-3], b"")


def test_garbage_is_a_protocol_error_not_an_h11_one():
    with pytest.raises(RemoteProtocolError, match="malformed HTTP") as caught:
        events_of(_sent("GET"), b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    assert not isinstance(caught.value, h11.ProtocolError)


def _sent(method: str) -> ClientConnection:
    http = ClientConnection(b"h")
    http.request(method, "/x")
    return http
