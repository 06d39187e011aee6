"""The messages of protocol version 4: ``ToWorker`` decoded, ``ToSupervisor`` encoded.

The tables of protocol/WIRE.md, "Messages", in code. A ``ToWorker`` body
decodes to one of the named tuples below; each ``ToSupervisor`` message is
a function that returns its body (without the frame header).
"""

from typing import NamedTuple, Optional

from . import postcard as pc
from .errors import DecodeError

PROTOCOL_VERSION = 4

#: ``Codec`` variants.
CODEC_POSTCARD = 0
CODEC_JSON = 1
CODEC_NAMES = {CODEC_POSTCARD: "postcard", CODEC_JSON: "json"}

#: In-band stream constants (``STREAM_CHUNK``, ``STREAM_WINDOW``).
STREAM_CHUNK = 64 * 1024
STREAM_WINDOW = 256 * 1024

#: ``FdKind`` variants, by index.
FD_KINDS = ("Pipe", "File", "TcpStream", "UnixStream", "TcpListener", "UnixListener")


# ---- ToWorker (supervisor → worker) ----


class Hello(NamedTuple):
    """``ToWorker::Hello``: the supervisor's version, this worker's slot, the pool's codec."""

    version: int
    slot: int
    codec: int


class Request(NamedTuple):
    """``Request`` (index 1), ``RequestWithFd`` (8) or ``RequestStreamed`` (10)."""

    id: bytes
    created_at: int
    call: int
    payload: bytes
    trace: Optional[str]
    #: ``RequestStreamed``: ``StreamData`` and ``StreamEnd`` follow in-band.
    streamed: bool = False
    #: ``RequestWithFd``: the ``FdKind`` index of the descriptor it carried.
    fd_kind: Optional[int] = None


class Event(NamedTuple):
    """``Event`` (2) or ``EventWithFd`` (9)."""

    name: str
    payload: bytes
    fd_kind: Optional[int] = None


class EmitReply(NamedTuple):
    """The answer to an ``Emit`` with ``reply_to``: ``ok`` and the payload, or the reason."""

    emit_id: int
    ok: bool
    value: object


class SoftKill(NamedTuple):
    """Finish the requests in flight, send ``SoftKillDone``, exit."""


class HardKill(NamedTuple):
    """Exit now."""


class Cancel(NamedTuple):
    """The supervisor gave up on request ``id``: send nothing more for it."""

    id: bytes


class Ping(NamedTuple):
    """Heartbeat: answer ``Pong(seq)`` at once."""

    seq: int


class StreamData(NamedTuple):
    """The next bytes of request ``id``'s in-band request stream."""

    id: bytes
    data: bytes


class StreamEnd(NamedTuple):
    """Request ``id``'s stream is over: ``ok`` with the byte count, or the reason."""

    id: bytes
    ok: bool
    value: object


class StreamCredit(NamedTuple):
    """The worker may send ``bytes`` more of request ``id``'s response stream."""

    id: bytes
    bytes: int


class ReportUsage(NamedTuple):
    """Answer ``Usage`` with this process's RSS and CPU time."""


def _request(r, streamed=False):
    return Request(
        id=r.uuid(),
        created_at=r.u64(),
        call=r.u32(),
        payload=r.byte_string(),
        trace=r.option(r.string),
        streamed=streamed,
    )


def _fd_kind(r):
    kind = r.u32()
    if kind >= len(FD_KINDS):
        raise DecodeError(f"unknown FdKind {kind}")
    return kind


def _codec(r):
    codec = r.u32()
    if codec not in CODEC_NAMES:
        raise DecodeError(f"unknown Codec {codec}")
    return codec


def _decode_body(r):
    variant = r.u32()
    if variant == 1:
        return _request(r)
    if variant == 7:
        return Ping(r.u64())
    if variant == 6:
        return Cancel(r.uuid())
    if variant == 13:
        return StreamCredit(r.uuid(), r.u64())
    if variant == 11:
        return StreamData(r.uuid(), r.byte_string())
    if variant == 12:
        return StreamEnd(r.uuid(), *r.result(r.u64, r.string))
    if variant == 10:
        return _request(r, streamed=True)
    if variant == 2:
        return Event(r.string(), r.byte_string())
    if variant == 3:
        return EmitReply(r.u64(), *r.result(r.byte_string, r.string))
    if variant == 0:
        return Hello(r.u16(), r.u32(), _codec(r))
    if variant == 4:
        return SoftKill()
    if variant == 5:
        return HardKill()
    if variant == 14:
        return ReportUsage()
    if variant == 8:
        request = _request(r)
        return request._replace(fd_kind=_fd_kind(r))
    if variant == 9:
        return Event(r.string(), r.byte_string(), _fd_kind(r))
    raise DecodeError(f"unknown ToWorker variant {variant}")


def _request_fast(body):
    """``Request`` without a ``Reader``: the hot path. ``None`` sends it the long way."""
    if len(body) < 21 or body[1] != 16:
        return None
    read_varint = pc.read_varint
    created_at, pos = read_varint(body, 18, pc.U64)
    call, pos = read_varint(body, pos, pc.U32)
    size, pos = read_varint(body, pos, pc.U64)
    end = pos + size
    if end + 1 != len(body) or body[end] != 0:
        return None  # truncated, trailing bytes, or a trace: the Reader says which
    return Request(body[2:18], created_at, call, body[pos:end], None)


def decode(body):
    """Decodes one ``ToWorker`` body; raises :class:`DecodeError` if it is not exactly one message."""
    if not body:
        raise DecodeError("an empty frame body (every message starts with its variant index)")
    if body[0] == 1:
        request = _request_fast(body)
        if request is not None:
            return request
    r = pc.Reader(body)
    message = _decode_body(r)
    r.finish()
    return message


# ---- ToSupervisor (worker → supervisor) ----

READY = b"\x01"
BUSY = b"\x02"
SOFT_KILL_DONE = b"\x07"


def hello(pid, codec, calls, takes_fds=False):
    """``Hello``: version 4, the pid, the payload codec, the call names, ``takes_fds``."""
    return (
        b"\x00"
        + pc.varint(PROTOCOL_VERSION)
        + pc.varint(pid)
        + pc.varint(codec)
        + pc.vec(calls, pc.string)
        + (b"\x01" if takes_fds else b"\x00")
    )


def response(request_id, payload):
    """``Response``: the answer to request ``request_id``."""
    return b"\x03\x10" + request_id + pc.varint(len(payload)) + payload


def failed(request_id, message, limit=None):
    """``Failed``: request ``request_id`` failed with ``message``.

    With ``limit``, the message is cut (at a character boundary) so that the
    body fits in a frame of that size: a failure must always be sendable.
    """
    data = message.encode("utf-8")
    if limit is not None:
        room = max(limit - 1 - 17 - len(pc.varint(limit)), 0)
        if len(data) > room:
            data = data[:room].decode("utf-8", "ignore").encode("utf-8")
    return b"\x04\x10" + request_id + pc.varint(len(data)) + data


def ack(request_id):
    """``Ack``: request ``request_id`` is done, with no payload."""
    return b"\x05\x10" + request_id


def emit(name, payload, reply_to=None):
    """``Emit``: an event for the supervisor's subscribers, awaiting ``EmitReply(reply_to)`` if set."""
    return b"\x06" + pc.string(name) + pc.byte_string(payload) + pc.option(reply_to, pc.varint)


def stats(pairs):
    """``Stats``: ``(name, number)`` pairs."""
    return b"\x08" + pc.vec(pairs, lambda pair: pc.string(pair[0]) + pc.f64(pair[1]))


def pong(seq):
    """``Pong``: the answer to ``Ping(seq)``."""
    return b"\x09" + pc.varint(seq)


def stream_end(request_id, ok, value):
    """``StreamEnd``: ``Ok(bytes sent)`` or ``Err(reason)`` for request ``request_id``'s stream."""
    if ok:
        return b"\x0b\x10" + request_id + b"\x00" + pc.varint(value)
    return b"\x0b\x10" + request_id + b"\x01" + pc.string(value)


def not_handled(request_id):
    """``NotHandled``: this worker has no handler for the request's call."""
    return b"\x0d\x10" + request_id


def response_streamed(request_id, payload):
    """``ResponseStreamed``: the answer, with a stream following in-band."""
    return b"\x0e\x10" + request_id + pc.varint(len(payload)) + payload


def stream_data(request_id, data):
    """``StreamData``: the next bytes (at most ``STREAM_CHUNK``) of the response stream."""
    return b"\x0f\x10" + request_id + pc.varint(len(data)) + data


def stream_credit(request_id, count):
    """``StreamCredit``: the supervisor may send ``count`` more bytes of the request stream."""
    return b"\x10\x10" + request_id + pc.varint(count)


def usage(rss_bytes, cpu_ns):
    """``Usage``: resident set size in bytes and CPU time in nanoseconds."""
    return b"\x11" + pc.varint(rss_bytes) + pc.varint(cpu_ns)
