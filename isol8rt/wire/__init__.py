"""What isol8rt speaks on the wire, sans-io: bytes and messages in, bytes and messages out, no I/O; and
the one trio loop that moves an HTTP client connection's bytes (:mod:`.http_trio`).

Shared by the server (:mod:`isol8rt.server`), its client (:mod:`isol8rt.client`) and, for HTTP, the
Docker client (:mod:`isol8rt.docker`), so that neither side imports the other's private modules.
"""
