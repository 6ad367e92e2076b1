"""Output shaping, sans-io: caps, UTF-8 across chunk boundaries, secret masking across chunks."""

from __future__ import annotations

from isol8rt.engine.output import StreamText, mask


def feed_all(stream: StreamText, chunks: list[bytes], truncated: bool = False) -> str:
    return "".join(stream.feed(chunk) for chunk in chunks) + stream.finish(truncated)


def test_multibyte_split_across_chunks():
    text = "héllo wörld ✓ 𝄞"
    data = text.encode()
    for split in range(len(data) + 1):
        assert feed_all(StreamText(1 << 20), [data[:split], data[split:]]) == text


def test_cap_truncates_and_drops_a_cut_character():
    data = "aé".encode()  # 3 bytes; a cap of 2 cuts é in half
    stream = StreamText(2)
    assert feed_all(stream, [data]) == "a"
    assert stream.truncated


def test_cap_counts_bytes_over_many_chunks():
    stream = StreamText(1024)
    out = feed_all(stream, [b"x" * 100] * 100)
    assert out == "x" * 1024 and stream.truncated


def test_secret_masked_in_one_chunk_and_split_at_every_point():
    secret = "sk-SECRET-123"
    line = f"key={secret}; again {secret}\n".encode()
    for split in range(len(line) + 1):
        out = feed_all(StreamText(1 << 20, (secret,)), [line[:split], line[split:]])
        assert out == "key=***; again ***\n", split
        assert secret not in out


def test_secret_split_over_many_single_byte_chunks():
    secret = "hunter2"
    data = f"pw: {secret}!".encode()
    out = feed_all(StreamText(1 << 20, (secret,)), [bytes([b]) for b in data])
    assert out == "pw: ***!"


def test_secret_whose_start_repeats_inside_it():
    # "aXa" ends with its own first letter: a naive hold-back splits the occurrence and leaks it.
    data = b"zaXa" + b"yy"
    out = feed_all(StreamText(1 << 20, ("aXa",)), [data[:4], data[4:]])
    assert out == "z***yy"


def test_partial_secret_prefix_at_end_is_shown_when_stream_ends():
    out = feed_all(StreamText(1 << 20, ("password",)), [b"pass"])
    assert out == "pass"


def test_longest_secret_wins_and_plain_mask():
    assert mask("abcdef", ("abc", "abcdef")) == "***"
    assert mask("nothing here", ("zzz",)) == "nothing here"
