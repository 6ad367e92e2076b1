"""What the user gets to see of a run's output: capped, decoded as UTF-8 across chunk boundaries, and
with secret values masked, also when a value is split between two chunks.
"""

from __future__ import annotations

import codecs

MASK = "***"


class StreamText:
    """One output stream (stdout or stderr) of one run.

    ``feed`` takes raw bytes as they arrive and returns the text that can be shown now; ``finish``
    returns what was held back. The concatenation of everything returned is the stream's final text.
    """

    __slots__ = ("_cap", "_received", "_decoder", "_secrets", "_held", "truncated")

    def __init__(self, cap: int, secrets: tuple[str, ...] = ()) -> None:
        self._cap = cap
        self._received = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))
        self._held = ""
        self.truncated = False

    def feed(self, data: bytes) -> str:
        # The agent caps output too; this cap holds even if it did not.
        room = self._cap - self._received
        if room <= 0:
            if data:
                self.truncated = True
            return ""
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self._received += len(data)
        text = self._decoder.decode(data)
        if not self._secrets:
            return text
        return self._release(self._held + text, final=False)

    def finish(self, truncated: bool = False) -> str:
        self.truncated = self.truncated or truncated
        # A multi-byte character cut by the cap is dropped, not shown as a replacement character.
        tail = "" if self.truncated else self._decoder.decode(b"", final=True)
        if not self._secrets:
            return tail
        return self._release(self._held + tail, final=True)

    def _release(self, text: str, final: bool) -> str:
        shown, rest = _mask_complete(text, self._secrets)
        hold = 0 if final else self._partial_secret_suffix(rest)
        self._held = rest[len(rest) - hold :] if hold else ""
        return shown + rest[: len(rest) - hold]

    def _partial_secret_suffix(self, text: str) -> int:
        """Length of the longest end of ``text`` that could be the start of a secret."""
        longest = 0
        for secret in self._secrets:
            for length in range(min(len(secret) - 1, len(text)), longest, -1):
                if text.endswith(secret[:length]):
                    longest = length
                    break
        return longest


def _mask_complete(text: str, secrets: tuple[str, ...]) -> tuple[str, str]:
    """Mask every complete occurrence, leftmost first; returns (masked text, the unmasked rest after the
    last occurrence), so the caller can still hold back a secret's beginning at the very end."""
    parts = []
    position = 0
    while True:
        start, length = -1, 0
        for secret in secrets:
            found = text.find(secret, position)
            if found != -1 and (start == -1 or found < start or (found == start and len(secret) > length)):
                start, length = found, len(secret)
        if start == -1:
            break
        parts.append(text[position:start])
        parts.append(MASK)
        position = start + length
    return "".join(parts), text[position:]


def mask(text: str, secrets: tuple[str, ...]) -> str:
    masked, rest = _mask_complete(text, tuple(s for s in secrets if s))
    return masked + rest
