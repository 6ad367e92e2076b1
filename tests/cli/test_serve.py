"""`isol8rt serve`'s argument handling."""

from __future__ import annotations

import subprocess
import sys

from isol8rt.cli.serve import resolve_port


def test_port_precedence():
    assert resolve_port(8080, {"ISOL8_PORT": "1", "PORT": "2"}) == 8080
    assert resolve_port(None, {"ISOL8_PORT": "1", "PORT": "2"}) == 1
    assert resolve_port(None, {"PORT": "2"}) == 2
    assert resolve_port(None, {}) == 3000


def test_serve_refuses_to_start_without_a_key(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "isol8rt", "serve", "--port", "0"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "isol8rt: serve needs an API key: pass --key or set ISOL8_API_KEY (or --no-auth, for a trusted loopback only)"]
