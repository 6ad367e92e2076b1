"""The OpenAPI document, built without a server: its error body names every kind the server sends."""

from __future__ import annotations

import msgspec

from isol8rt.server import openapi
from isol8rt.wire import errors


def test_the_error_body_lists_the_kinds_and_every_error_status_says_which_it_carries():
    doc = msgspec.json.decode(openapi.document())
    body = doc["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error", "kind"] and body["properties"]["kind"]["enum"] == list(errors.KINDS)
    not_found = doc["paths"]["/file"]["get"]["responses"]["404"]["description"]
    assert all(f"`{kind}`" in not_found for kind in ("not_found", "session_not_found", "file_not_found"))


def test_rich_outputs_are_in_the_document_as_base64_and_events():
    schemas = msgspec.json.decode(openapi.document())["components"]["schemas"]
    images = schemas["ExecutionResult"]["properties"]["images"]["anyOf"][0]
    assert images == {"type": "array", "items": {"type": "string", "contentEncoding": "base64"}}
    assert schemas["ExecutionResult"]["properties"]["displays"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/DisplayData"}
    assert schemas["DisplayData"]["required"] == ["text"]
    assert {"image", "display"} <= set(schemas["StreamEvent"]["properties"]["type"]["enum"])
    assert schemas["ExecutionRequest"]["properties"]["displayLastExpression"]["type"] == "boolean"
