"""``GET /openapi.json``: an OpenAPI 3.1 document whose schemas come from the wire types themselves
(:func:`msgspec.json.schema_components`), so the document cannot drift from what the server decodes."""

from __future__ import annotations

import functools

import msgspec

from .._version import __version__
from ..types import ExecutionResult, Isol8Options, StreamEvent
from ..wire import api, errors

_REF = "#/components/schemas/{name}"
#: The error answers every route may give, each described by the kinds it carries (wire/errors.py).
_ERRORS = {str(status): "; ".join(f"`{kind}`: {when}" for kind, (kind_status, when) in errors.KINDS.items()
                                  if kind_status == status)
           for status in (400, 401, 403, 404, 409, 413, 429, 500, 503)}


def _json(ref: str) -> dict:
    return {"content": {"application/json": {"schema": {"$ref": _REF.format(name=ref)}}}}


def _answers(ok: str | None, status: str = "200", description: str = "OK", *, auth: bool = True) -> dict:
    answers = {status: {"description": description, **(_json(ok) if ok else {})}}
    for code, text in _ERRORS.items():
        if auth or code not in ("401", "403"):
            answers[code] = {"description": text, **_json("ErrorBody")}
    return answers


def _body(ref: str, required: bool = True) -> dict:
    return {"required": required, **_json(ref)}


@functools.lru_cache(maxsize=1)
def document() -> bytes:
    """The document, encoded once."""
    types = [api.ExecuteBody, errors.ErrorBody, api.OkBody, api.HealthBody, api.FileUpload,
             api.FileContent, api.SessionsBody, api.CleanupRequest, api.CleanupBody, api.KeyCreate,
             api.KeyCreated, api.KeysBody, api.KeyRevoked, api.SessionDeleted, api.LoginRequest, api.LoginBody,
             ExecutionResult, Isol8Options, StreamEvent, api.WsExecute,
             api.WsStdin, api.WsSignal]
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    # Options stay raw JSON in the envelope (the policy needs to see which ones a client wrote), but
    # what they may hold is Isol8Options.
    components["ExecuteBody"]["properties"]["options"] = {
        "anyOf": [{"$ref": _REF.format(name="Isol8Options")}, {"type": "null"}]}
    components["WsExecute"]["properties"]["options"] = components["ExecuteBody"]["properties"]["options"]
    # The server always sends a kind, one of a closed set (a client must still take one it does not know,
    # from a newer server, by the answer's status).
    components["ErrorBody"]["properties"]["kind"] = {
        "type": "string", "enum": list(errors.KINDS),
        "description": "What went wrong, for programs (`error` is for people): see docs/server.md"}
    components["ErrorBody"]["required"] = ["error", "kind"]
    session_id = {"name": "sessionId", "in": "query", "required": True, "schema": {"type": "string"}}
    path = {"name": "path", "in": "query", "required": True, "schema": {"type": "string"}}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "isol8rt", "version": __version__,
                 "description": "Secure code execution for AI agents. Wire-compatible with the isol8 server."},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": {"summary": "Liveness and version", "security": [],
                                "responses": {"200": {"description": "OK", **_json("HealthBody")}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}}}}},
            "/execute": {"post": {"summary": "Run a program to its end", "requestBody": _body("ExecuteBody"),
                                  "responses": _answers("ExecutionResult")}},
            "/execute/stream": {"post": {
                "summary": "Run a program, streaming StreamEvents as server-sent events (data: <json>)",
                "requestBody": _body("ExecuteBody"),
                "responses": {**_answers(None), "200": {
                    "description": "One `data:` frame per StreamEvent; the last is `exit` or `error`",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}}},
            "/execute/ws": {"get": {
                "summary": "Run a program over a WebSocket: send WsExecute, then WsStdin / WsSignal; "
                           "receive StreamEvents; closed 1000 'Execution complete'",
                "responses": {**_answers(None), "101": {"description": "Switching to WebSocket"}}}},
            "/file": {
                "post": {"summary": "Put a file (base64) into a session", "requestBody": _body("FileUpload"),
                         "responses": _answers("OkBody")},
                "get": {"summary": "Read a file (base64) from a session", "parameters": [session_id, path],
                        "responses": _answers("FileContent")}},
            "/sessions": {"get": {"summary": "This key's sessions", "responses": _answers("SessionsBody")}},
            "/session/{id}": {"delete": {
                "summary": "End a session and remove its container (ok also when there is none)",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": _answers("SessionDeleted")}},
            "/cleanup": {"post": {"summary": "Master key: end every session, remove orphaned containers and "
                                             "(unless images is false) the sandbox images",
                                  "requestBody": _body("CleanupRequest", required=False),
                                  "responses": _answers("CleanupBody")}},
            "/auth/keys": {
                "post": {"summary": "Master key: create an API key", "requestBody": _body("KeyCreate"),
                         "responses": _answers("KeyCreated", "201", "Created")},
                "get": {"summary": "Master key: list API keys (never the keys), newest first",
                        "parameters": [{"name": "tenantId", "in": "query", "required": False,
                                        "schema": {"type": "string"}}],
                        "responses": _answers("KeysBody")}},
            "/auth/login": {"post": {"summary": "Master key: a short-lived API key (token)",
                                     "requestBody": _body("LoginRequest", required=False),
                                     "responses": _answers("LoginBody")}},
            "/auth/keys/{id}": {"delete": {
                "summary": "Master key: revoke an API key",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": _answers("KeyRevoked")}},
        },
    }
    return msgspec.json.encode(doc)
