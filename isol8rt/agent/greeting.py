"""The agent's first word, a Ready (reason "start"), as the bytes of its frame, with nothing imported.

The greeting says only "an agent of this protocol version, pid N, is here"; it depends on nothing the
agent loads after it. So the entry point sends it first and loads the rest (msgspec, the core, the driver:
most of the agent's boot) while the host's Configure is on its way: nothing before Ready that can be after
it. Host messages wait in the container's stdin until the driver reads them, and it reads nothing before
it has taken the container's baseline and task census, so no user code can run any earlier than before.

The bytes are the frame :class:`~isol8rt.agent.protocol.FrameEncoder` makes of
``Ready(version=PROTOCOL_VERSION, pid=pid)`` (tests/agent/test_greeting.py checks they are equal): a 4-byte
big-endian length, then a msgpack map of the fields that differ from their defaults, in field order.
"""

#: Bumped whenever a message changes shape; the agent reports it in every Ready and the engine refuses to
#: talk to an agent of another version (its image is out of date). Re-exported by protocol.py.
PROTOCOL_VERSION = 1


def _msgpack_str(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 32
    return bytes([0xA0 | len(data)]) + data


def _msgpack_uint(value: int) -> bytes:
    if value < 0x80:
        return bytes([value])
    for marker, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
        if value < 1 << (8 * size):
            return bytes([marker]) + value.to_bytes(size, "big")
    raise ValueError(f"{value} does not fit a msgpack uint")


def frame(pid: int, version: int = PROTOCOL_VERSION) -> bytes:
    """The greeting's frame for an agent whose pid (as the host should know it) is ``pid``."""
    fields = [("t", _msgpack_str("ready")), ("version", _msgpack_uint(version))]
    if pid:
        fields.append(("pid", _msgpack_uint(pid)))
    payload = bytes([0x80 | len(fields)]) + b"".join(_msgpack_str(name) + value for name, value in fields)
    return len(payload).to_bytes(4, "big") + payload
