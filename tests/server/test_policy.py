"""The server's options are a ceiling: escalation attempts are refused (403 naming the option), tighter
options are honoured, restated defaults are fine."""

from __future__ import annotations

import msgspec
import pytest

from isol8rt import ExecutionRequest, InvalidRequest, Isol8Options, NetworkFilter
from isol8rt.types import SecurityConfig
from isol8rt.server.policy import Decision, OptionsPolicy, PolicyViolation

CEILING = Isol8Options(memory_limit="512m", cpu_limit=1.0, pids_limit=64, timeout_ms=30_000,
                       secrets={"SERVER_TOKEN": "s3cret"})

ESCALATIONS = [
    ({"network": "host"}, "network"),
    ({"network": "filtered"}, "network"),
    ({"security": {"seccomp": "unconfined"}}, "security.seccomp"),
    ({"security": {"seccomp": "custom", "profilePath": "/etc/my.json"}}, "security.seccomp"),
    ({"image": "alpine:latest"}, "image"),
    ({"readonlyRootFs": False}, "readonlyRootFs"),
    ({"memoryLimit": "1g"}, "memoryLimit"),
    ({"cpuLimit": 4}, "cpuLimit"),
    ({"pidsLimit": 100000}, "pidsLimit"),
    ({"timeoutMs": 3_600_000}, "timeoutMs"),
    ({"maxOutputSize": 1 << 30}, "maxOutputSize"),
    ({"sandboxSize": "10g"}, "sandboxSize"),
    ({"tmpSize": "10g"}, "tmpSize"),
    ({"persist": True}, "persist"),
    ({"audit": {"enabled": True, "destination": "/etc"}}, "audit.enabled"),
    ({"remoteCode": {"enabled": True}}, "remoteCode.enabled"),
    ({"security": {"ociRuntime": "runc"}}, "security.ociRuntime"),
    ({"extraHosts": {"metadata": "169.254.169.254"}}, "extraHosts"),
    ({"maxFileBytes": 1 << 40}, "maxFileBytes"),
    ({"secrets": {"SERVER_TOKEN": "mine"}}, "secrets.SERVER_TOKEN"),
]


@pytest.mark.parametrize(("options", "option"), ESCALATIONS, ids=[o for _, o in ESCALATIONS])
def test_escalations_are_refused_by_name(options, option):
    with pytest.raises(PolicyViolation) as caught:
        OptionsPolicy(CEILING).effective(options)
    assert caught.value.option == option
    assert str(caught.value).startswith(f"Option not allowed: {option}:")


def test_tightening_is_honoured_and_restating_defaults_is_not_a_change():
    policy = OptionsPolicy(CEILING)
    assert policy.effective(None) == Decision(CEILING)
    same = policy.effective({"network": "none", "memoryLimit": "512m", "mode": "persistent", "debug": True,
                             "poolSize": 99, "readonlyRootFs": True, "security": {"seccomp": "strict"}})
    assert same.timeout_ms is None and same.options.pool_size == CEILING.pool_size
    assert policy.effective({"mode": "persistent", "memoryLimit": "512m"}).options == CEILING  # same engine
    decision = policy.effective({"memoryLimit": "128m", "cpuLimit": 0.5, "pidsLimit": 16, "timeoutMs": 2000,
                                 "maxOutputSize": 4096, "secrets": {"MINE": "x"}})
    tight = decision.options
    assert (tight.memory_limit, tight.cpu_limit, tight.pids_limit, tight.max_output_size) == ("128m", 0.5, 16, 4096)
    assert tight.timeout_ms == CEILING.timeout_ms and decision.timeout_ms == 2000  # the timeout goes on the request
    assert tight.secrets == {"SERVER_TOKEN": "s3cret", "MINE": "x"}


def test_request_fields_under_the_ceiling():
    policy = OptionsPolicy(CEILING)
    request = ExecutionRequest(code="1")
    policy.check_request(request, Decision(CEILING, timeout_ms=2000))
    assert request.timeout_ms == 2000
    with pytest.raises(PolicyViolation, match="timeoutMs"):
        policy.check_request(ExecutionRequest(code="1", timeout_ms=60_000), Decision(CEILING))
    with pytest.raises(PolicyViolation, match="allowInsecureCodeUrl"):
        policy.check_request(ExecutionRequest(code="1", allow_insecure_code_url=True), Decision(CEILING))


def test_network_filters_only_narrow():
    host = OptionsPolicy(Isol8Options(network="host"))
    decision = host.effective({"network": "filtered", "networkFilter": {"whitelist": ["^a$"], "blacklist": ["b"]}})
    assert decision.options.network == "filtered"
    assert decision.network_filter.whitelist == ["^a$"] and decision.network_filter.blacklist == ["b"]
    ceiling = Isol8Options(network="filtered", network_filter=NetworkFilter(
        whitelist=["^pypi$"], blacklist=["x"], allow_private=["10.1.0.0/16"], connect_ports=[443]))
    filtered = OptionsPolicy(ceiling)
    narrowed = filtered.effective({"networkFilter": {"blacklist": ["y"]}})
    assert narrowed.options == ceiling  # per run: still the shared engine
    assert narrowed.network_filter.whitelist == ["^pypi$"] and narrowed.network_filter.blacklist == ["x", "y"]
    assert narrowed.network_filter.allow_private == ["10.1.0.0/16"] and narrowed.network_filter.connect_ports == [443]
    for widened, option in (({"whitelist": [".*"]}, "whitelist"), ({"allowPrivate": ["0.0.0.0/0"]}, "allowPrivate"),
                            ({"connectPorts": [22]}, "connectPorts")):
        with pytest.raises(PolicyViolation, match=f"networkFilter.{option}"):
            filtered.effective({"networkFilter": widened})
        # A request's own filter replaces the engine's for its run: it is held to the same rule.
        request = ExecutionRequest(code="1", network_filter=NetworkFilter(**{
            {"whitelist": "whitelist", "allowPrivate": "allow_private", "connectPorts": "connect_ports"}[option]:
            next(iter(widened.values()))}))
        with pytest.raises(PolicyViolation, match=f"networkFilter.{option}"):
            filtered.check_request(request, filtered.effective(None))
    request = ExecutionRequest(code="1", network_filter=NetworkFilter(blacklist=["z"]))
    filtered.check_request(request, filtered.effective(None))
    assert request.network_filter.blacklist == ["x", "z"] and request.network_filter.whitelist == ["^pypi$"]


def test_malformed_options_are_400_not_403():
    with pytest.raises(InvalidRequest):
        OptionsPolicy(CEILING).effective({"memoryLimit": "lots"})
    with pytest.raises(InvalidRequest):
        OptionsPolicy(CEILING).effective({"cpuLimit": "fast"})
    with pytest.raises(InvalidRequest):
        OptionsPolicy(CEILING).effective({"pidsLimit": 0})


@pytest.mark.parametrize(("options", "floor"), [
    ({"cpuLimit": 1e-10}, "0.01"), ({"cpuLimit": 0.004}, "0.01"), ({"cpuLimit": float("nan")}, "0.01"),
    ({"memoryLimit": "31m"}, "32m"), ({"memoryLimit": "0.01g"}, "32m"), ({"memoryLimit": "1000"}, "32m"),
    ({"pidsLimit": 1}, "8"), ({"sandboxSize": "1k"}, "1m"), ({"tmpSize": "0.5m"}, "1m"),
    ({"maxOutputSize": 0}, "1 byte"), ({"maxFileBytes": -1}, "0 or more"), ({"cpuLimit": float("inf")}, "0.01"),
])
def test_bounds_hold_after_unit_conversion(options, floor):
    """Tighter than a working sandbox (or than Docker takes: a CPU quota that rounds to 0 NanoCPUs would
    be no limit at all) is a 400 naming the option and the floor."""
    with pytest.raises(InvalidRequest) as caught:
        OptionsPolicy(CEILING).effective(options)
    assert f"options.{next(iter(options))}" in str(caught.value) and floor in str(caught.value)


def test_the_floors_themselves_are_fine():
    decision = OptionsPolicy(CEILING).effective({"cpuLimit": 0.01, "memoryLimit": "32m", "pidsLimit": 8, "sandboxSize": "1m",
                                          "tmpSize": "1m", "maxOutputSize": 1, "maxFileBytes": 0})
    assert (decision.options.cpu_limit, decision.options.memory_limit, decision.options.max_file_bytes) == (0.01, "32m", 0)


def test_oci_runtime_and_seccomp_stay_the_servers():
    ceiling = msgspec.structs.replace(CEILING, security=SecurityConfig(seccomp="strict", oci_runtime="runsc"))
    policy = OptionsPolicy(ceiling)
    # Restating is fine, and keeps the server's runtime (a struct sent without it does not drop it).
    assert policy.effective({"security": {"seccomp": "strict"}}).options.security.oci_runtime == "runsc"
    assert policy.effective({"security": {"ociRuntime": "runsc"}}).options is ceiling
    for asked in ({"ociRuntime": "runc"}, {"ociRuntime": None}, {"ociRuntime": "no-such-runtime"}):
        with pytest.raises(PolicyViolation, match="security.ociRuntime"):
            policy.effective({"security": asked})
    unconfined = OptionsPolicy(msgspec.structs.replace(CEILING, security=SecurityConfig(seccomp="unconfined")))
    with pytest.raises(PolicyViolation, match="security.seccomp"):
        unconfined.effective({"security": {"seccomp": "strict"}})


async def test_escalations_over_http_are_403_naming_the_option(live):
    for options, option in ESCALATIONS[:8]:
        answer = await live.request("POST", "/execute", {"request": {"code": "print(1)"}, "options": options})
        assert answer.status == 403, (options, answer.body)
        assert option in answer.json()["error"]
    long = await live.request("POST", "/execute/stream", {"request": {"code": "1", "timeoutMs": 10 ** 8}})
    assert long.status == 403 and "timeoutMs" in long.json()["error"]


async def test_tightened_options_apply_and_get_their_own_engine(live):
    base = live.server.engines.base
    answer = await live.request("POST", "/execute", {
        "request": {"code": "print('x' * 5000)"}, "options": {"maxOutputSize": 100, "memoryLimit": "256m"}})
    assert answer.status == 200 and answer.json()["truncated"] is True
    assert len(live.server.engines.engines) == 2 and live.server.engines.base is base
    # A shorter timeout alone is applied per request, in the shared engine.
    timed = await live.request("POST", "/execute", {
        "request": {"code": "import time; time.sleep(5)"}, "options": {"timeoutMs": 500}})
    assert timed.json()["timedOut"] is True
    assert len(live.server.engines.engines) == 2


# ------------------------------------------------------------------------------------ exact (the local engine)

def _all_written(options: Isol8Options) -> dict:
    from isol8rt.config import resolved

    return resolved(options)


def test_exact_policy_runs_what_was_asked_or_refuses():
    policy = OptionsPolicy(Isol8Options(), exact=True)
    # Tighter limits are honoured as asked (an engine of their own), the same options are the shared engine.
    tighter = policy.effective(_all_written(Isol8Options(memory_limit="256m", pids_limit=32)))
    assert (tighter.options.memory_limit, tighter.options.pids_limit) == ("256m", 32)
    assert policy.effective(_all_written(Isol8Options())).options == policy.ceiling


def test_exact_policy_refuses_an_option_it_does_not_know():
    with pytest.raises(PolicyViolation, match="gpuLimit: this engine does not know this option"):
        OptionsPolicy(Isol8Options(), exact=True).effective({**_all_written(Isol8Options()), "gpuLimit": 1})
    OptionsPolicy(Isol8Options()).effective({"gpuLimit": 1})  # a ceiling alone ignores it, as before


@pytest.mark.parametrize(("ceiling", "asked", "field"), [
    # The server's secret would be added to the run: not what was asked.
    (Isol8Options(secrets={"TOKEN": "x"}), Isol8Options(), "secrets"),
    # The server's deny rule would be added to the filter asked for.
    (Isol8Options(network="filtered", network_filter=NetworkFilter(blacklist=["evil"])),
     Isol8Options(network="filtered", network_filter=NetworkFilter()), "networkFilter"),
    # A nested field left at its default here, set on the server.
    (Isol8Options(security=SecurityConfig(seccomp="unconfined")), Isol8Options(), "security.seccomp"),
    (Isol8Options(), Isol8Options(memory_limit="1g"), "memoryLimit"),
    (Isol8Options(), Isol8Options(image="alpine"), "image"),
    (Isol8Options(), Isol8Options(readonly_root_fs=False), "readonlyRootFs"),
])
def test_exact_policy_refuses_what_it_would_change(ceiling, asked, field):
    with pytest.raises(PolicyViolation) as caught:
        OptionsPolicy(ceiling, exact=True).effective(_all_written(asked))
    assert caught.value.option == field
    # Without exact, the first two are the ceiling's rules at work (merged), not refusals.
    if field in ("secrets", "networkFilter"):
        OptionsPolicy(ceiling).effective(_all_written(asked))


def test_a_plain_cli_run_matches_the_default_local_engine(tmp_path, monkeypatch):
    """`isol8rt run` without flags and `isol8rt serve --socket` read the same file into options the exact
    policy takes as they are: the shared, warm engine; a flag that widens one is refused (the run goes cold)."""
    import argparse

    from isol8rt.cli import run, serve

    monkeypatch.chdir(tmp_path)
    (tmp_path / "isol8rt.config.json").write_text('{"defaults": {"memoryLimit": "256m", "network": "filtered"}, '
                                                  '"network": {"whitelist": ["^pypi\\\\.org$"]}}')
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    run.register(sub)
    serve.register(sub)
    engine = serve._socket_config(parser.parse_args(["serve", "--socket", str(tmp_path / "e.sock")]),
                                  serve._config(parser.parse_args(["serve", "--socket", str(tmp_path / "e.sock")])))
    assert engine.exact_options and engine.open_access and engine.api_key is None
    policy = OptionsPolicy(engine.options, exact=True)

    def decision(*flags):
        from isol8rt.local.client import _body
        from isol8rt.wire.api import decode_execute

        body = decode_execute(_body(ExecutionRequest(code="1"), run._options(parser.parse_args(["run", *flags]))))
        return policy.effective(body.options)

    assert decision().options is engine.options  # the base engine, with its warm pool
    assert decision("--memory", "128m").options.memory_limit == "128m"
    with pytest.raises(PolicyViolation, match="memoryLimit"):
        decision("--memory", "1g")
    with pytest.raises(PolicyViolation, match="network"):
        decision("--net", "host")
    with pytest.raises(PolicyViolation, match="timeoutMs"):
        decision("--timeout", "60000")
