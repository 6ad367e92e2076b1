"""WebSocket, sans-io: the handshake's token and checks, and the message layer (fragments, pings, the size
cap, the close) on bytes alone."""

from __future__ import annotations

import pytest

from isol8rt.wire import websocket


def test_websocket_accept_token_is_the_rfc_example():
    # RFC 6455, section 1.3.
    assert websocket.accept_token(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert websocket.handshake_error([(b"connection", b"keep-alive, Upgrade"), (b"sec-websocket-version", b"13"),
                                       (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]) is None
    assert "Version" in websocket.handshake_error([(b"connection", b"upgrade")])


def test_websocket_messages_fragments_pings_and_size_cap():
    client = websocket.MessageConnection(client=True)
    server = websocket.MessageConnection(client=False, max_message=8)
    server.receive_data(client.send_text("hi"))
    assert server.events() == [websocket.Message("hi")]
    server.receive_data(client.send_text("far too long"))
    with pytest.raises(websocket.MessageTooBig):
        server.events()
    server = websocket.MessageConnection(client=False)
    server.receive_data(client.close(1000, "bye"))
    [closed] = server.events()
    assert (closed.code, closed.reason) == (1000, "bye") and closed.reply
