"""`isol8rt bench` arguments, --from-json / --compare / --strict, and the one-line error outside a checkout.
No Docker needed."""

from __future__ import annotations

import json

import pytest

from bench.harness.main import UsageError, command_of, settings_from
from bench.harness.results import Result
from isol8rt.cli import build_parser
from isol8rt.cli import bench as bench_cli
from isol8rt.cli import main


def parse(*argv: str):
    return build_parser().parse_args(["bench", *argv])


def test_quick_settings_and_flags_on_top():
    settings = settings_from(parse("--quick", "--skip", "server,baselines", "-n", "7", "--concurrency", "1,4",
                                   "--sizes", "1KiB,10MiB", "--runtimes", "python"))
    assert settings.quick and settings.runtimes == ["python"] and settings.cold_runtimes == ["python"]
    assert "server" not in settings.sections and "baselines" not in settings.sections and "warm" in settings.sections
    assert (settings.runs, settings.network_runs, settings.server_runs, settings.size_runs) == (7, 7, 7, 7)
    assert settings.concurrency == [1, 4]
    assert settings.output_sizes == [1024, 10 * 2**20]


def test_full_settings_by_default():
    settings = settings_from(parse())
    assert not settings.quick
    assert settings.runtimes == ["python", "bash", "node", "bun", "deno"]
    assert settings.concurrency == [1, 2, 4, 8, 16]
    assert settings.output_sizes == [1 << 10, 64 << 10, 1 << 20, 10 << 20]
    assert settings.oci_runtimes == []
    assert settings_from(parse("--oci-runtimes", "crun, runsc")).oci_runtimes == ["crun", "runsc"]


@pytest.mark.parametrize("argv", [("--only", "warm,nope"), ("--runtimes", "cobol"), ("--concurrency", "0"),
                                  ("--sizes", "lots"), ("-n", "0"), ("--seconds", "0"),
                                  ("--oci-runtimes", ","), ("--oci-runtimes", "crun;rm")])
def test_bad_arguments_are_usage_errors(argv):
    with pytest.raises(UsageError):
        settings_from(parse(*argv))


def test_bad_arguments_exit_2_with_one_line(capsys):
    assert main(["bench", "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("isol8rt: bench: --only: unknown nope") and err.count("\n") == 1


def test_command_of_rebuilds_the_command_line():
    assert command_of(parse("--quick", "--json", "out file.json", "-n", "5")) == \
        "isol8rt bench --json 'out file.json' --quick --runs 5"


def test_outside_a_source_checkout_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench_cli, "_CHECKOUT", tmp_path)
    assert main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bench needs a source checkout of isol8rt" in err


def test_from_json_reports_charts_and_compares(make_document, tmp_path, capsys):
    old = make_document([Result(id="warm.python.sequential", group="warm", label="", samples=[4.0, 4.0])])
    new = make_document([Result(id="warm.python.sequential", group="warm", label="", samples=[7.0, 7.0])])
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    argv = ["bench", "--from-json", str(tmp_path / "new.json"), "--compare", str(tmp_path / "old.json"),
            "--svg", str(tmp_path / "chart.svg")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "REGRESSION  warm.python.sequential p50 4.00 ms -> 7.00 ms (+75%)" in out
    assert "FAIL warm python hello p50 (execute()): 7.00 ms <= 5 ms" in out
    assert (tmp_path / "chart.svg").read_text().startswith("<svg")
    assert main([*argv, "--strict"]) == 1


def test_from_json_refuses_other_files(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"schema": "something/2"}')
    assert main(["bench", "--from-json", str(tmp_path / "x.json")]) == 2
    assert "not an isol8rt bench result" in capsys.readouterr().err
