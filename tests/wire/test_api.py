"""The API's JSON bodies both ways: what the client encodes is what the server decodes, camelCase on the
wire, and WebSocket messages told apart by their type."""

from __future__ import annotations

import msgspec
import pytest

from isol8rt.types import ExecutionRequest
from isol8rt.wire import api


def test_an_execute_envelope_round_trips_in_camel_case():
    body = api.ExecuteBody(request=ExecutionRequest(code="print(1)", timeout_ms=5), options={"network": "none"},
                           session_id="s")
    data = api.encode(body)
    assert b'"sessionId":"s"' in data and b'"timeoutMs":5' in data
    assert api.decode_execute(data) == body


def test_websocket_messages_are_told_apart_by_type():
    assert api.decode_ws_message(b'{"type":"stdin","data":"x","eof":true}') == api.WsStdin(data="x", eof=True)
    assert api.decode_ws_message(b'{"type":"signal","signal":"SIGINT"}') == api.WsSignal(signal="SIGINT")
    execute = api.encode(api.WsExecute(request=ExecutionRequest(code="1")))
    assert execute.startswith(b'{"type":"execute"') and isinstance(api.decode_ws_message(execute), api.WsExecute)
    assert api.decode_ws_envelope(b'{"type":"dance","x":1}').type == "dance"
    assert set(api.WS_TYPES) == {"execute", "stdin", "signal"}


def test_an_unknown_type_is_not_a_message():
    with pytest.raises(msgspec.ValidationError):
        api.decode_ws_message(b'{"type":"dance"}')


def test_ok_is_the_references_shape():
    assert msgspec.json.decode(api.OK) == {"ok": True}
