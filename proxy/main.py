"""isol8rt's egress filtering proxy, run inside a filtered-mode sandbox container:

    python3 -I -B /opt/isol8rt/proxy/main.py [--listen 127.0.0.1:PORT] [--allow REGEX]... [--deny REGEX]...
        [--allow-private CIDR]... [--connect-port N]... [--run ID] [limits: see isol8rt_proxy/config.py]

It takes its policy from these flags and then from JSON lines on stdin, writes JSON lines on stdout
(``listening`` first, then answers and one ``request`` line per request: see
isol8rt/agent/proxy_protocol.py), and exits when stdin reaches EOF. trio, h11 and msgspec come from
/opt/isol8rt/site; from isol8rt only the agent's package, for the definitions of those lines.
"""

import os
import sys
import types

_HERE = os.path.dirname(os.path.abspath(__file__))
_PARENT = os.path.dirname(_HERE)


def _adopt_agent_package() -> None:
    """Make ``isol8rt.agent`` importable, and nothing else of ``isol8rt``: its ``__init__`` is the host
    library everywhere but in the image (where the agent layer ships an empty one), and the proxy needs
    none of it. Found in the image (/opt/isol8rt/lib beside /opt/isol8rt/proxy), in a checkout (isol8rt/
    beside proxy/) or in an installed wheel (isol8rt/_data/proxy)."""
    for package in (os.path.join(_PARENT, "lib", "isol8rt"), os.path.join(_PARENT, "isol8rt"),
                    os.path.dirname(_PARENT)):
        if os.path.isfile(os.path.join(package, "agent", "proxy_protocol.py")):
            bare = types.ModuleType("isol8rt")
            bare.__path__ = [package]
            sys.modules["isol8rt"] = bare
            return
    raise SystemExit(f"isol8rt-proxy: the agent's package (isol8rt/agent) is not beside {_HERE}")


sys.path[:0] = [_HERE, "/opt/isol8rt/site"]
_adopt_agent_package()

from isol8rt_proxy.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
