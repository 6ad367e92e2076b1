"""The audit log: a line per execution with what ran and what came of it; code and output only when
asked; old day files deleted."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.audit import AuditLog
from isol8rt.types import AuditConfig


@pytest.mark.docker
async def test_each_execution_is_one_line(tmp_path):
    config = AuditConfig(enabled=True, destination=str(tmp_path), include_code=False, include_output=False)
    async with DockerIsol8(Isol8Options(audit=config, pool_size=0)) as engine:
        first = await engine.execute(ExecutionRequest(code="print('secret output')", metadata={"user": "u1"}))
        second = await engine.execute(ExecutionRequest(code="import sys; sys.exit(3)"))
    (day_file,) = tmp_path.glob("audit-*.jsonl")
    lines = [json.loads(line) for line in day_file.read_text().splitlines()]
    assert [line["executionId"] for line in lines] == [first.execution_id, second.execution_id]
    assert lines[0]["codeSha256"] == hashlib.sha256(b"print('secret output')").hexdigest()
    assert lines[0]["metadata"] == {"user": "u1"} and lines[0]["runtime"] == "python"
    assert lines[1]["exitCode"] == 3 and lines[0]["durationMs"] > 0 and "resourceUsage" in lines[0]
    assert "code" not in lines[0] and "stdout" not in lines[0]
    assert "secret output" not in day_file.read_text()


@pytest.mark.docker
async def test_code_and_output_when_asked(tmp_path):
    config = AuditConfig(enabled=True, destination=str(tmp_path), include_code=True, include_output=True)
    async with DockerIsol8(Isol8Options(audit=config, pool_size=0)) as engine:
        await engine.execute(ExecutionRequest(code="print('shown')"))
    (line,) = [json.loads(x) for x in next(tmp_path.glob("audit-*.jsonl")).read_text().splitlines()]
    assert line["code"] == "print('shown')" and line["stdout"] == "shown\n"


def test_retention_deletes_old_day_files(tmp_path):
    log = AuditLog(AuditConfig(enabled=True, destination=str(tmp_path), retention_days=7))
    today = datetime.date(2026, 11, 22)
    for days_ago in (0, 6, 7, 8, 30):
        (tmp_path / f"audit-{today - datetime.timedelta(days=days_ago)}.jsonl").write_text("{}\n")
    (tmp_path / "notes.txt").write_text("not ours")
    removed = sorted(path.name for path in log.prune(today))
    assert removed == ["audit-2026-10-23.jsonl", "audit-2026-11-14.jsonl"]
    assert (tmp_path / "notes.txt").exists() and len(list(tmp_path.glob("audit-*.jsonl"))) == 3


@pytest.mark.docker
async def test_records_say_who_as_the_server_knows_it(tmp_path):
    """Through the server, each line carries the key id and tenant the server authenticated, whatever a
    client writes in its metadata (kept, as the client's)."""
    import trio

    from isol8rt.server import Server

    from .server.conftest import MASTER, config, raw_request

    audit_dir = tmp_path / "audit"
    options = Isol8Options(pool_size=1, audit=AuditConfig(enabled=True, destination=str(audit_dir)))
    server = Server(config(tmp_path, options=options))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        created = await raw_request(port, "POST", "/auth/keys", {"name": "ci", "tenantId": "acme"})
        key = created.json()
        spoof = {"keyId": "master", "tenantId": "someone-else"}
        ran = await raw_request(port, "POST", "/execute", {"request": {"code": "print(1)", "metadata": spoof}},
                                key=key["key"])
        assert ran.status == 200
        assert (await raw_request(port, "POST", "/execute", {"request": {"code": "print(2)"}}, key=MASTER)).status == 200
        server.stop()
    lines = [json.loads(line) for line in next(audit_dir.glob("audit-*.jsonl")).read_text().splitlines()]
    by_id = {line["executionId"]: line for line in lines}
    first = by_id[ran.json()["executionId"]]
    assert (first["keyId"], first["tenantId"], first["metadata"]) == (key["id"], "acme", spoof)
    [second] = [line for line in lines if line is not first]
    assert second["keyId"] == "master" and "tenantId" not in second


@pytest.mark.docker
async def test_library_runs_name_no_caller(tmp_path):
    config = AuditConfig(enabled=True, destination=str(tmp_path))
    async with DockerIsol8(Isol8Options(audit=config, pool_size=0)) as engine:
        await engine.execute(ExecutionRequest(code="print(1)"))
    (line,) = [json.loads(x) for x in next(tmp_path.glob("audit-*.jsonl")).read_text().splitlines()]
    assert "keyId" not in line and "tenantId" not in line
