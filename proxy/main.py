"""isol8rt's egress filtering proxy, run inside a filtered-mode sandbox container:

    python3 -I -B /opt/isol8rt/proxy/main.py [--listen 127.0.0.1:PORT] [--allow REGEX]... [--deny REGEX]...
        [--allow-private CIDR]... [--connect-port N]... [--run ID] [limits: see isol8rt_proxy/config.py]

It takes its policy from these flags and then from JSON lines on stdin, writes JSON lines on stdout
(``listening`` first, then answers and one ``request`` line per request: see isol8rt_proxy/wire.py), and
exits when stdin reaches EOF. trio, h11 and msgspec come from /opt/isol8rt/site; nothing from isol8rt.
"""

import os
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), "/opt/isol8rt/site"]

from isol8rt_proxy.app import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
