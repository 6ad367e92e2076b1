"""The proxy ships as data, not in the isol8rt package: its package and the test equipment beside this
file are put on sys.path here."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1] / "proxy"), str(HERE)]

from proxy_support import HttpOrigin, make_certificate, start_echo_origin, start_tls_origin  # noqa: E402


@pytest.fixture
async def origin(nursery):
    return await HttpOrigin().start(nursery)


@pytest.fixture
async def echo_port(nursery):
    return await start_echo_origin(nursery)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def client_tls(certificate):
    """A client context that trusts only the test certificate."""
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
async def tls_port(nursery, certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, certificate))
    return await start_tls_origin(nursery, context)
