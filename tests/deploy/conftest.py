"""The cluster the deploy tests share: two `isol8rt serve` nodes behind HAProxy with deploy/haproxy.cfg."""

from __future__ import annotations

import shutil

import pytest

from ..conftest import needs_docker
from .cluster import INSTALL_HINT, Cluster


@pytest.fixture(scope="module")
@needs_docker
def cluster(tmp_path_factory):
    """Started once per module (a node takes seconds to start); a test that stops a node starts it again."""
    if shutil.which("haproxy") is None:
        pytest.fail(INSTALL_HINT, pytrace=False)  # a missing part fails the run, as a missing daemon does
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    running.stop()
