"""In-band streams (protocol/WIRE.md, "In-band streams").

A request stream arrives as ``StreamData`` frames after ``RequestStreamed``;
:class:`RequestStream` hands its bytes to the handler and grants the
supervisor credit as the handler reads, so the caller's reader moves no
faster than the handler. A response stream is a :class:`Streamed` answer:
:func:`send_response_stream` sends its bytes in chunks of at most 64 KiB
within the credit the supervisor grants.
"""

import asyncio
import collections
import inspect

from . import messages as msg
from .errors import ChannelClosed, StreamError

# Credit goes back in batches of this much, not one frame per read.
_GRANT_BATCH = msg.STREAM_CHUNK


class Streamed:
    """A handler's answer with a byte stream after it.

    ``value`` is the answer's payload (JSON, or bytes for a ``raw`` handler);
    ``source`` gives the stream: a bytes-like object, an async iterable of
    bytes-like chunks, or an iterable of them (iterated on the event loop,
    so keep each step short).
    """

    __slots__ = ("value", "source")

    def __init__(self, value, source):
        self.value = value
        self.source = source


class RequestStream:
    """The bytes of a request's in-band stream, read by its handler.

    ``await stream.read()`` reads to the end, ``await stream.read(n)`` at
    most ``n`` bytes (``b""`` at the end), and ``async for chunk in stream``
    yields the chunks as they came. Raises :class:`StreamError` when the
    caller's stream failed or ended short.
    """

    def __init__(self, request_id, grant):
        self._id = request_id
        self._grant = grant
        self._chunks = collections.deque()
        self._offset = 0
        self._received = 0
        self._ungranted = 0
        self._end = None
        self._error = None
        self._arrived = None

    @property
    def received(self):
        """Bytes received so far."""
        return self._received

    # ---- fed by the worker's reader ----

    def _feed(self, data):
        if self._end is not None or not data:
            return
        self._chunks.append(data)
        self._received += len(data)
        self._wake()

    def _finish(self, ok, value):
        if self._end is not None:
            return
        if ok and value != self._received:
            self._error = f"the stream ended after {self._received} bytes, but its StreamEnd says {value}"
        elif not ok:
            self._error = f"the caller's stream failed: {value}"
        self._end = True
        self._wake()

    def _abandon(self, reason):
        """Ends the stream for its reader (the channel closed)."""
        if self._end is None:
            self._error = reason
            self._end = True
            self._wake()

    def _wake(self):
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    # ---- read by the handler ----

    async def _wait(self):
        while not self._chunks and self._end is None:
            self._arrived = asyncio.get_running_loop().create_future()
            await self._arrived
            self._arrived = None

    def _consumed(self, count):
        self._ungranted += count
        if self._ungranted >= _GRANT_BATCH:
            self._grant(self._id, self._ungranted)
            self._ungranted = 0

    def _take(self, limit):
        chunk = self._chunks[0]
        available = len(chunk) - self._offset
        if limit < 0 or limit >= available:
            data = chunk[self._offset :] if self._offset else chunk
            self._chunks.popleft()
            self._offset = 0
        else:
            data = chunk[self._offset : self._offset + limit]
            self._offset += limit
        self._consumed(len(data))
        return data

    def _raise_if_failed(self):
        if self._error is not None:
            raise StreamError(self._error)

    async def read(self, n=-1):
        """At most ``n`` bytes (all the rest with ``n < 0``); ``b""`` at the end."""
        if n == 0:
            return b""
        if n > 0:
            await self._wait()
            if not self._chunks:
                self._raise_if_failed()
                return b""
            return self._take(n)
        parts = []
        while True:
            await self._wait()
            if not self._chunks:
                self._raise_if_failed()
                return b"".join(parts)
            parts.append(self._take(-1))

    def __aiter__(self):
        return self

    async def __anext__(self):
        await self._wait()
        if not self._chunks:
            self._raise_if_failed()
            raise StopAsyncIteration
        return self._take(-1)


class ResponseCredit:
    """The credit the supervisor granted for one response stream."""

    def __init__(self):
        self._credit = msg.STREAM_WINDOW
        self._granted = None

    def add(self, count):
        """A ``StreamCredit`` arrived."""
        self._credit += count
        if self._granted is not None and not self._granted.done():
            self._granted.set_result(None)

    async def take(self, wanted):
        """Waits for credit and spends up to ``wanted`` bytes of it; returns how many."""
        while self._credit <= 0:
            self._granted = asyncio.get_running_loop().create_future()
            await self._granted
            self._granted = None
        count = min(wanted, self._credit)
        self._credit -= count
        return count


async def _chunks_of(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield memoryview(source).cast("B")
        return
    if hasattr(source, "__aiter__"):
        async for piece in source:
            yield memoryview(piece).cast("B")
        return
    if inspect.isawaitable(source):
        raise TypeError("a stream source is bytes or an (async) iterable of bytes, not an awaitable")
    for piece in source:
        yield memoryview(piece).cast("B")


async def send_response_stream(request_id, source, credit, channel, chunk_limit, still_ours):
    """Sends ``source`` as ``StreamData`` frames within ``credit``, then ``StreamEnd``.

    ``still_ours()`` is checked before every frame: once the supervisor
    cancelled the request nothing more is sent. A failing source ends the
    stream with ``Err(reason)``.
    """
    sent = 0
    try:
        async for piece in _chunks_of(source):
            pos = 0
            while pos < len(piece):
                count = await credit.take(min(chunk_limit, len(piece) - pos))
                if not still_ours():
                    return
                channel.send(msg.stream_data(request_id, bytes(piece[pos : pos + count])))
                pos += count
                sent += count
                await channel.drain()
    except (asyncio.CancelledError, ChannelClosed):
        raise
    except Exception as e:
        if still_ours():
            channel.send(msg.stream_end(request_id, False, str(e) or type(e).__name__))
        return
    if still_ours():
        channel.send(msg.stream_end(request_id, True, sent))
