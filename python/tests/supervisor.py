"""A scripted supervisor for the in-process tests: it encodes ``ToWorker``
frames and decodes ``ToSupervisor`` ones, over one end of a socketpair."""

import asyncio
import json
import os
import struct
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lpm_worker import postcard as pc  # noqa: E402

#: How long any wait in a test may take before it fails (a deadline, not a measurement).
DEADLINE = 10.0

TO_SUPERVISOR = (
    "Hello", "Ready", "Busy", "Response", "Failed", "Ack", "Emit", "SoftKillDone", "Stats",
    "Pong", "ResponseWithStream", "StreamEnd", "SocketClosed", "NotHandled", "ResponseStreamed",
    "StreamData", "StreamCredit", "Usage",
)


def new_id():
    return uuid.uuid4().bytes


def hello(version=4, slot=0, codec=1):
    return b"\x00" + pc.varint(version) + pc.varint(slot) + pc.varint(codec)


def request(request_id, call, value=None, payload=None, trace=None, streamed=False):
    if payload is None:
        payload = json.dumps(value).encode()
    return (
        (b"\x0a" if streamed else b"\x01")
        + pc.uuid_bytes(request_id)
        + pc.varint(1_700_000_000_000_000_000)
        + pc.varint(call)
        + pc.byte_string(payload)
        + pc.option(trace, pc.string)
    )


def event(name, value):
    return b"\x02" + pc.string(name) + pc.byte_string(json.dumps(value).encode())


def emit_reply(emit_id, value=None, error=None):
    if error is not None:
        return b"\x03" + pc.varint(emit_id) + b"\x01" + pc.string(error)
    return b"\x03" + pc.varint(emit_id) + b"\x00" + pc.byte_string(json.dumps(value).encode())


SOFT_KILL = b"\x04"
HARD_KILL = b"\x05"
REPORT_USAGE = b"\x0e"


def cancel(request_id):
    return b"\x06" + pc.uuid_bytes(request_id)


def ping(seq):
    return b"\x07" + pc.varint(seq)


def stream_data(request_id, data):
    return b"\x0b" + pc.uuid_bytes(request_id) + pc.byte_string(data)


def stream_end(request_id, count=None, error=None):
    if error is not None:
        return b"\x0c" + pc.uuid_bytes(request_id) + b"\x01" + pc.string(error)
    return b"\x0c" + pc.uuid_bytes(request_id) + b"\x00" + pc.varint(count)


def stream_credit(request_id, count):
    return b"\x0d" + pc.uuid_bytes(request_id) + pc.varint(count)


def decode(body):
    """A ``ToSupervisor`` body as ``(name, fields...)``."""
    r = pc.Reader(body)
    name = TO_SUPERVISOR[r.u32()]
    if name == "Hello":
        out = (name, r.u16(), r.u32(), r.u32(), [r.string() for _ in range(r.u64())], r.bool())
    elif name in ("Ready", "Busy", "SoftKillDone"):
        out = (name,)
    elif name in ("Response", "ResponseStreamed"):
        out = (name, r.uuid(), r.byte_string())
    elif name == "Failed":
        out = (name, r.uuid(), r.string())
    elif name in ("Ack", "NotHandled", "SocketClosed"):
        out = (name, r.uuid())
    elif name == "Emit":
        out = (name, r.string(), r.byte_string(), r.option(r.u64))
    elif name == "Stats":
        out = (name, [(r.string(), r.f64()) for _ in range(r.u64())])
    elif name == "Pong":
        out = (name, r.u64())
    elif name == "StreamEnd":
        out = (name, r.uuid(), r.result(r.u64, r.string))
    elif name == "StreamData":
        out = (name, r.uuid(), r.byte_string())
    elif name == "StreamCredit":
        out = (name, r.uuid(), r.u64())
    elif name == "Usage":
        out = (name, r.u64(), r.u64())
    else:
        raise AssertionError(f"unexpected {name}")
    r.finish()
    return out


class Supervisor:
    """The supervisor's end of the channel."""

    def __init__(self, reader, writer):
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, sock):
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, *bodies):
        for body in bodies:
            self._writer.write(struct.pack("<I", len(body)) + body)
        await self._writer.drain()

    async def recv(self):
        """The next message, or ``None`` at end of file."""
        try:
            header = await asyncio.wait_for(self._reader.readexactly(4), DEADLINE)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise
            return None
        (length,) = struct.unpack("<I", header)
        return decode(await asyncio.wait_for(self._reader.readexactly(length), DEADLINE))

    async def expect(self, *names):
        """The next message, checked to be one of ``names``."""
        message = await self.recv()
        assert message is not None and message[0] in names, f"expected {names}, got {message}"
        return message

    async def until(self, predicate, what):
        """Reads until ``predicate(message)``; returns it and the messages before it."""
        seen = []
        while True:
            message = await self.recv()
            if message is None:
                raise AssertionError(f"end of file before {what}; saw {seen}")
            if predicate(message):
                return message, seen
            seen.append(message)

    def close(self):
        self._writer.close()
