"""isol8rt's egress filtering proxy: the HTTP/1.1 forward proxy that runs inside every filtered-mode sandbox.

User code reaches the network only through it (the container's firewall lets the sandbox user talk to
nothing but the proxy's port). It ships as data, not as part of the host package: it imports the
standard library, trio, h11, msgspec, and from ``isol8rt`` only the definitions of its stdin and stdout
lines, which the agent that starts it shares (``isol8rt.agent.proxy_protocol``, documented there).
``main.py`` next to this package is the entry point and documents the command line.

The sans-io modules (``addresses``, ``policy``, ``target``, ``headers``, ``exchange``,
``config``) take values and return decisions or records. The I/O lives in ``dial`` (resolve, check,
connect), ``origin`` (kept origin connections), ``forward`` (plain HTTP), ``tunnel`` (CONNECT),
``client`` (one client connection), ``server`` (accepting, control lines, reset), ``output`` (stdout)
and ``app`` (the process), with ``streams`` for what they share.
"""
