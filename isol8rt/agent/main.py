"""The agent's entry point, run by the container as ``python3 -I -B /opt/isol8rt/lib/isol8rt/agent/main.py``.

Isolated mode (-I) keeps the environment and the user's site-packages out of the agent; this file then
puts back exactly what the agent needs: its own sources and the image's private site (msgspec).
"""

import os
import sys

_LIB = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [_LIB, "/opt/isol8rt/site"]

from isol8rt.agent.supervisor import main  # noqa: E402

main(sys.argv[1:])
