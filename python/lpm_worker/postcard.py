"""The subset of postcard that the lpm envelope uses.

Postcard writes values in declaration order with no names, tags or padding:
integers wider than a byte as LEB128 varints (signed ones zigzagged first),
strings and byte strings as a varint length then the bytes, ``Option`` as
``00`` or ``01`` then the value, ``Result`` as ``00`` then ``Ok`` or ``01``
then ``Err``, sequences as a varint count then the elements, and a request
id (a ``Uuid``) as a byte string of exactly 16 bytes. See protocol/WIRE.md,
"Postcard rules that matter".
"""

import struct

from .errors import DecodeError

_F64 = struct.Struct("<d")

#: The most bytes a varint of each width may take, and its value bound.
U16 = (3, 1 << 16)
U32 = (5, 1 << 32)
U64 = (10, 1 << 64)


def varint(n):
    """Encodes a non-negative integer as an unsigned LEB128 varint."""
    if n < 0:
        raise ValueError(f"varint of a negative number ({n}); zigzag it first")
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n):
    """Maps a signed integer to the unsigned one postcard writes (0, -1, 1 … → 0, 1, 2 …)."""
    return 2 * n if n >= 0 else -2 * n - 1


def unzigzag(n):
    """The inverse of :func:`zigzag`."""
    return n >> 1 if n & 1 == 0 else -((n + 1) >> 1)


def string(text):
    """A ``String``: its UTF-8 byte length, then the bytes."""
    data = text.encode("utf-8")
    return varint(len(data)) + data


def byte_string(data):
    """Bytes (``Vec<u8>``, ``serde_bytes``): the length, then the bytes."""
    return varint(len(data)) + bytes(data)


def uuid_bytes(raw):
    """A ``Uuid``: a byte string of exactly 16 bytes."""
    if len(raw) != 16:
        raise ValueError(f"a request id is 16 bytes, not {len(raw)}")
    return b"\x10" + bytes(raw)


def option(value, encode):
    """``None`` as ``00``, anything else as ``01`` then ``encode(value)``."""
    return b"\x00" if value is None else b"\x01" + encode(value)


def vec(items, encode):
    """A sequence: the element count, then each element as ``encode`` writes it."""
    items = list(items)
    return varint(len(items)) + b"".join(encode(item) for item in items)


def f64(value):
    """An ``f64``: 8 bytes, IEEE 754 little-endian."""
    return _F64.pack(value)


def read_varint(data, pos, width=U64):
    """Decodes the varint at ``data[pos]``; returns it and the position after it.

    ``width`` is :data:`U16`, :data:`U32` or :data:`U64`; a varint longer
    than its type allows, or whose value does not fit, is refused.
    """
    max_bytes, bound = width
    try:
        byte = data[pos]
    except IndexError:
        raise DecodeError("truncated: a varint is cut short") from None
    if byte < 0x80:
        return byte, pos + 1
    n = 0
    shift = 0
    for byte in data[pos : pos + max_bytes]:
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if n >= bound:
                raise DecodeError(f"varint value {n} does not fit its type")
            return n, pos + shift // 7
    if pos + max_bytes <= len(data):
        raise DecodeError(f"varint longer than {max_bytes} bytes")
    raise DecodeError("truncated: a varint is cut short")


class Reader:
    """Reads postcard values from one message body, front to back.

    Every method raises :class:`DecodeError` on a truncated field, an
    over-long varint or invalid UTF-8, so that a malformed frame is refused
    as a whole.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data, pos=0):
        self._data = data
        self._pos = pos

    @property
    def pos(self):
        """How many bytes are read."""
        return self._pos

    def finish(self):
        """Checks that the body held nothing after the message."""
        left = len(self._data) - self._pos
        if left:
            raise DecodeError(f"{left} bytes left over after the message")

    def u8(self):
        """One byte."""
        if self._pos >= len(self._data):
            raise DecodeError("truncated: a byte is missing")
        byte = self._data[self._pos]
        self._pos += 1
        return byte

    def bool(self):
        """A ``bool``: ``00`` or ``01``, nothing else."""
        byte = self.u8()
        if byte > 1:
            raise DecodeError(f"a bool is 00 or 01, not {byte:02x}")
        return byte == 1

    def _varint(self, width):
        value, self._pos = read_varint(self._data, self._pos, width)
        return value

    def u16(self):
        """A ``u16`` varint."""
        return self._varint(U16)

    def u32(self):
        """A ``u32`` varint."""
        return self._varint(U32)

    def u64(self):
        """A ``u64`` varint (also ``usize`` and lengths)."""
        return self._varint(U64)

    def i64(self):
        """An ``i64``: zigzag, then a varint."""
        return unzigzag(self._varint(U64))

    def f64(self):
        """An ``f64``."""
        end = self._pos + 8
        if end > len(self._data):
            raise DecodeError("truncated: an f64 is cut short")
        (value,) = _F64.unpack_from(self._data, self._pos)
        self._pos = end
        return value

    def byte_string(self):
        """Bytes: a varint length, then that many bytes."""
        size = self._varint(U64)
        end = self._pos + size
        if end > len(self._data):
            raise DecodeError(f"truncated: {size} bytes announced, {len(self._data) - self._pos} left")
        data = bytes(self._data[self._pos:end])
        self._pos = end
        return data

    def string(self):
        """A ``String``: bytes that must be valid UTF-8."""
        raw = self.byte_string()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"a string is not valid UTF-8 ({e.reason})") from None

    def uuid(self):
        """A request id: the length byte ``10`` then 16 bytes; returns the 16 bytes."""
        raw = self.byte_string()
        if len(raw) != 16:
            raise DecodeError(f"a request id is 16 bytes, not {len(raw)}")
        return raw

    def option(self, read):
        """``None``, or the value ``read`` decodes after the ``01`` tag."""
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return read()
        raise DecodeError(f"an Option's tag is 00 or 01, not {tag:02x}")

    def result(self, read_ok, read_err):
        """A ``Result``: ``(True, ok value)`` or ``(False, err value)``."""
        tag = self._varint(U32)
        if tag == 0:
            return True, read_ok()
        if tag == 1:
            return False, read_err()
        raise DecodeError(f"a Result's tag is 00 or 01, not {tag:02x}")
