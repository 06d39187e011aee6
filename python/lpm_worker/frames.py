"""Frames: a 4-byte little-endian body length, then the body.

```text
offset 0        4                                          4 + len
       +--------+------------------------------------------+
       |  len   |                   body                   |
       | u32 LE | one postcard message, exactly len bytes  |
       +--------+------------------------------------------+
```

The length is checked against the limit as soon as the 4 header bytes are
in, before any of the body is buffered (protocol/WIRE.md, "Frames").
"""

import os
import struct

from .errors import FrameTooLarge, ProtocolError

DEFAULT_MAX_FRAME_LEN = 16 * 1024 * 1024
_HEADER = struct.Struct("<I")


def max_frame_len_from_env():
    """The limit the supervisor set in ``LPM_MAX_FRAME_LEN``, or 16 MiB without it."""
    text = os.environ.get("LPM_MAX_FRAME_LEN")
    if not text:
        return DEFAULT_MAX_FRAME_LEN
    try:
        limit = int(text)
    except ValueError:
        raise ProtocolError(f"LPM_MAX_FRAME_LEN is {text!r}, not a number of bytes") from None
    if limit < 1:
        raise ProtocolError(f"LPM_MAX_FRAME_LEN is {limit}; it must be at least 1")
    return limit


def frame(body, limit):
    """The frame of one body; raises :class:`FrameTooLarge` rather than send one over ``limit``."""
    if len(body) > limit:
        raise FrameTooLarge(len(body), limit)
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Cuts frame bodies out of a byte stream that arrives in pieces of any size."""

    __slots__ = ("_buf", "_limit")

    def __init__(self, limit):
        self._buf = bytearray()
        self._limit = limit

    def feed(self, data):
        """Adds ``data`` and returns the bodies of the frames now complete, in order.

        Raises :class:`ProtocolError` for an empty body or one over the limit:
        the stream cannot be resynchronised after either.
        """
        buf = self._buf
        buf += data
        bodies = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length > self._limit:
                raise ProtocolError(
                    f"the supervisor sent a frame of {length} bytes, over the limit of "
                    f"{self._limit} (LPM_MAX_FRAME_LEN)"
                )
            if length == 0:
                raise ProtocolError("the supervisor sent an empty frame")
            if end - pos - 4 < length:
                break
            bodies.append(bytes(buf[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        if pos:
            del buf[:pos]
        return bodies

    @property
    def partial(self):
        """True when part of a frame is buffered: EOF now would cut it short."""
        return bool(self._buf)
