"""Error bodies: the closed set of kinds, each with its status, and the body both ways."""

from __future__ import annotations

import os
import re

from isol8rt.wire import errors

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "server.md")


def test_a_body_carries_the_message_for_people_and_the_kind_for_programs():
    body = errors.encode_error(errors.SESSION_NOT_FOUND, "Session not found")
    assert body == b'{"error":"Session not found","kind":"session_not_found"}'
    assert errors.decode_error(body) == errors.ErrorBody("Session not found", "session_not_found")


def test_the_references_bodies_have_no_kind_and_still_decode():
    assert errors.decode_error(b'{"error":"Session not found"}').kind is None


def test_each_status_default_is_a_kind_of_that_status():
    for status, kind in errors.STATUS_KINDS.items():
        assert errors.KINDS[kind][0] == status or (status, kind) == (431, errors.TOO_LARGE)


def test_a_status_with_no_default_takes_its_class():
    assert errors.kind_of_status(418) == errors.INVALID_REQUEST
    assert errors.kind_of_status(502) == errors.INTERNAL_ERROR


def test_docs_list_every_kind_with_its_status():
    with open(DOCS, encoding="utf-8") as file:
        rows = re.findall(r"^\| ([0-9, ]+) \| `([a-z_]+)` \|", file.read(), re.MULTILINE)
    assert {kind: int(status.split(",")[0]) for status, kind in rows} == {
        kind: status for kind, (status, _) in errors.KINDS.items()}
