"""A hostile program shaping its rich outputs file, /sandbox/.isol8rt/outputs.jsonl (see
isol8rt/engine/rich.py): a flood of tiny records, a FIFO, a symlink to another file of the container, a
directory there, a secret in a displayed value. Stopped by: the record cap (RICH_MAX_RECORDS), the agent's
output-file reading (O_NOFOLLOW, O_NONBLOCK, regular files only), masking of displayed values. None of
them hangs or fails the run."""

from __future__ import annotations

import pytest
import trio

from isol8rt import DockerIsol8, ExecutionRequest, Isol8Options
from isol8rt.engine.rich import RICH_MAX_RECORDS

pytestmark = pytest.mark.docker

PREPARE = "import os\nos.makedirs('/sandbox/.isol8rt', exist_ok=True)\nP = '/sandbox/.isol8rt/outputs.jsonl'\n"


async def test_hostile_rich_outputs_files():
    async with DockerIsol8(Isol8Options(pool_size=0, secrets={"TOKEN": "s3cr3t-t0ken"})) as engine:
        async def run(code: str):
            with trio.fail_after(60):  # a hang here is the failure
                return await engine.execute(ExecutionRequest(code=PREPARE + code))

        # 2 MiB of empty displays: 70,000 records; the first RICH_MAX_RECORDS come back, the rest are said.
        flood = await run("open(P, 'w').write('{\"kind\":\"display\",\"text\":\"\"}\\n' * 70000)")
        assert flood.exit_code == 0, flood.stderr
        assert len(flood.displays) == RICH_MAX_RECORDS
        assert f"{70000 - RICH_MAX_RECORDS} more figures and displayed values left out" in flood.stderr

        # A FIFO nobody writes to, a symlink to a file the engine must not read through, a directory.
        # (A symlink to another file of /sandbox is followed, as for any output path: it is the program's own.)
        for shape in ("os.mkfifo(P)", "os.symlink('/etc/passwd', P)", "os.symlink('/proc/self/environ', P)",
                      "os.mkdir(P)"):
            shaped = await run(shape + "\nprint('ran')")
            assert (shaped.exit_code, shaped.stdout) == (0, "ran\n"), shaped.stderr
            assert shaped.displays is None and shaped.images is None and shaped.files is None

        # A secret in a displayed value is masked like output (also when the JSON escapes it).
        escaped = 'open(P, "w").write("{\\"kind\\": \\"display\\", \\"text\\": \\"%s\\", \\"html\\": \\"\\\\u0073%s\\"}\\n" % (t, t[1:]))'
        leaked = await run("t = os.environ['TOKEN']\n" + escaped)
        assert leaked.exit_code == 0, leaked.stderr
        (shown,) = leaked.displays
        assert "s3cr3t" not in shown.text + shown.html and "***" in shown.text
