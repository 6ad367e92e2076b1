"""The harness is the ``bench`` package of this checkout (not installed): put the checkout on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))


@pytest.fixture
def make_document():
    """A result document from hand-made results, as build_document makes it."""
    from bench.harness.results import build_document

    def make(results, **machine):
        info = {"cores": 2, "cpu_model": "test cpu", "memory_bytes": 24 * 2**30, "kernel": "6.1", "docker_version": "20.10",
                "docker_api_version": "1.41", "python": "3.11.7", "isol8rt": "0.1.0", "git_commit": "abc123",
                "git_dirty": False, "load_start": [0.1, 0.1, 0.1], "load_end": [0.2, 0.1, 0.1], **machine}
        return build_document(results, machine=info, settings={"quick": True}, command="isol8rt bench --quick",
                              wall_s=12.5)

    return make
