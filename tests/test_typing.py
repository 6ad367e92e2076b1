"""The public API, the engine it drives and the remote client are clean under ``mypy --strict``."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Checked as a user's type checker sees them; the modules they import are followed for their types only.
CHECKED = ["isol8rt/__init__.py", "isol8rt/engine/engine.py", "isol8rt/engine/control.py",
           "isol8rt/engine/session.py", "isol8rt/engine/container.py", "isol8rt/engine/conversation.py",
           "isol8rt/engine/channel.py", "isol8rt/testing.py", "isol8rt/types.py", "isol8rt/client.py",
           "isol8rt/errors.py", "isol8rt/sync.py", "isol8rt/aio.py", "isol8rt/faces", "isol8rt/mcp", "isol8rt/wire"]


def test_public_api_is_clean_under_mypy_strict():
    pytest.importorskip("mypy", reason="the test extra installs mypy")
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", *CHECKED],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Success: no issues found" in done.stdout, done.stdout + done.stderr
