"""Every budget is documented with its default and its flag, and the flag really sets it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from isol8rt.cli import serve
from isol8rt.server.settings import BUDGETS, ServerConfig, budgets_table, key_runs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def cli_config(*flags: str) -> ServerConfig:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    return serve._config(parser.parse_args(["serve", "--key", "k", *flags]))


def test_docs_list_every_budget_with_the_serve_defaults():
    """docs/server.md has the budgets table of `isol8rt serve` with no flags (regenerate it with
    budgets_table(), see this test's cli_config)."""
    assert budgets_table(cli_config()) in DOCS.read_text()


#: A value for each flag, in the flag's own spelling, and what the setting then holds.
VALUES = {"bytes": ("3145728", 3 << 20), "s": ("7.5", 7.5), "ms": ("4000", 4000), "count": ("5", 5),
          "per s": ("2.5", 2.5)}


@pytest.mark.parametrize("budget", BUDGETS, ids=[b.flag for b in BUDGETS])
def test_each_flag_sets_its_budget(budget):
    text, value = VALUES[budget.unit]
    if budget.flag == "--session-memory-per-key":
        text = "3m"
    config = cli_config(budget.flag, text, *(("--max-concurrent", "16") if budget.flag == "--key-runs" else ()))
    assert budget.value(config) == value
    assert budget.value(config) != budget.value(cli_config())


def test_key_runs_default():
    assert key_runs(cli_config()) == 12 and key_runs(cli_config("--no-auth")) == 16
    assert key_runs(cli_config("--key-runs", "100")) == 16  # never more than there are slots
