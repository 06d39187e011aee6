"""The channel to the supervisor: the inherited socketpair or stdin and stdout.

:func:`claim` finds the transport the way protocol/WIRE.md says: the
socketpair when ``LPM_IPC_FD`` is set, else stdin and stdout. For stdio it
takes the two descriptors for itself at once and points fd 0 at /dev/null
and fd 1 (and ``sys.stdout``) at stderr, so that neither a stray ``print``
nor a program the worker starts can write into the frames or read them.

:class:`Channel` carries frames over the claimed descriptors with asyncio.
Frames written in one turn of the event loop leave in one write, and the
answers given while the frames of one read are dispatched leave right after.
"""

import asyncio
import os
import socket
import sys

from .errors import ChannelClosed, ProtocolError
from .frames import FrameReader, frame


class Claimed:
    """Descriptors taken for the channel: a socket, or a pair of pipe ends."""

    def __init__(self, kind, sock=None, read_fd=None, write_fd=None):
        #: ``"socketpair"`` or ``"stdio"`` (or ``"socket"`` for one handed in).
        self.kind = kind
        self.sock = sock
        self.read_fd = read_fd
        self.write_fd = write_fd


def claim():
    """Takes the channel's descriptors from the environment (see the module docs)."""
    text = os.environ.pop("LPM_IPC_FD", None)
    if text is not None:
        try:
            fd = int(text)
        except ValueError:
            raise ProtocolError(f"LPM_IPC_FD is {text!r}, not a descriptor number") from None
        try:
            sock = socket.socket(fileno=fd)
        except OSError as e:
            raise ProtocolError(f"LPM_IPC_FD is {fd}, which is no open socket ({e})") from None
        # Programs the worker starts must not hold the channel open.
        sock.set_inheritable(False)
        return Claimed("socketpair", sock=sock)
    return _claim_stdio()


def _claim_stdio():
    # os.dup makes non-inheritable copies: children get /dev/null and stderr instead.
    read_fd = os.dup(0)
    write_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    # Whatever was printed before is flushed now, to stderr (fd 1 is stderr now).
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull, "r")
    return Claimed("stdio", read_fd=read_fd, write_fd=write_fd)


class _Side(asyncio.Protocol):
    """asyncio's callbacks for one transport, passed on to the channel."""

    def __init__(self, channel, reads, writes):
        self._channel = channel
        self._reads = reads
        self._writes = writes

    def connection_made(self, transport):
        self._channel._made(transport, self._reads, self._writes)

    def data_received(self, data):
        self._channel._data(data)

    def eof_received(self):
        self._channel._lost(None)

    def connection_lost(self, exc):
        if self._writes:
            self._channel._writer_closed()
        self._channel._lost(exc)

    def pause_writing(self):
        self._channel._pause()

    def resume_writing(self):
        self._channel._resume()


class Channel:
    """Frames to and from the supervisor over asyncio transports.

    ``first`` is the body of the first frame to send: it is written as
    soon as the channel connects, before any frame is read. ``on_body(body)``
    is called for each frame body in arrival order and ``on_close(error)``
    once when the channel ends: ``None`` for a clean end of file, else the
    exception.
    """

    def __init__(self, limit, on_body, on_close, first):
        self.limit = limit
        self._first = frame(first, limit)
        self._on_body = on_body
        self._on_close = on_close
        self._frames = FrameReader(limit)
        self._reader = None
        self._writer = None
        self._pending = []
        self._flush_scheduled = False
        # True while the frames of one read are dispatched: their answers leave together after.
        self._reading = False
        self._paused = None
        self._closed = False
        self._writer_gone = None
        self._loop = None

    async def open(self, claimed):
        """Connects the claimed descriptors to the running event loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._writer_gone = loop.create_future()
        if claimed.sock is not None:
            claimed.sock.setblocking(False)
            await loop.create_connection(lambda: _Side(self, True, True), sock=claimed.sock)
        else:
            try:
                # The writer first: the first frame is out before anything is read.
                writer = os.fdopen(claimed.write_fd, "wb", buffering=0)
                await loop.connect_write_pipe(lambda: _Side(self, False, True), writer)
                reader = os.fdopen(claimed.read_fd, "rb", buffering=0)
                await loop.connect_read_pipe(lambda: _Side(self, True, False), reader)
            except ValueError as e:
                # asyncio takes pipes, sockets and terminals only, not files or /dev/null.
                raise ProtocolError(
                    f"stdin and stdout must be pipes or sockets ({e}): start this worker from an lpm pool"
                ) from None

    @property
    def closed(self):
        """True once the channel ended (EOF, error, or :meth:`close`)."""
        return self._closed

    def send(self, body):
        """Queues one frame; it leaves with the others of this loop turn.

        Raises :class:`FrameTooLarge` (and sends nothing) when ``body`` is
        over the limit, :class:`ChannelClosed` once the channel ended.
        """
        if self._closed:
            raise ChannelClosed("the channel to the supervisor is closed")
        self._pending.append(frame(body, self.limit))
        if not self._flush_scheduled and not self._reading:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def send_threadsafe(self, body):
        """:meth:`send` from any thread; a frame too large raises here, in the caller's thread."""
        framed = frame(body, self.limit)

        def queue():
            if self._closed:
                return
            self._pending.append(framed)
            self.flush()

        self._loop.call_soon_threadsafe(queue)

    def flush(self):
        """Writes the queued frames now."""
        self._flush_scheduled = False
        if not self._pending or self._closed:
            self._pending.clear()
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._writer.write(data)

    async def drain(self):
        """Waits while the transport's write buffer is over its high-water mark."""
        if self._paused is not None:
            await asyncio.shield(self._paused)
        if self._closed:
            raise ChannelClosed("the channel to the supervisor is closed")

    async def close(self):
        """Writes what is queued, closes the channel and waits until the bytes are out."""
        self.flush()
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        if self._reader is not None and self._reader is not self._writer:
            self._reader.close()
        if self._writer is not None:
            await self._writer_gone
        self._lost(None)

    def abort(self):
        """Closes at once, dropping anything not yet written."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.abort()
        if self._reader is not None and self._reader is not self._writer:
            # A read pipe has nothing buffered to drop: closing is all there is.
            self._reader.close()
        self._lost(None)

    # ---- asyncio callbacks ----

    def _made(self, transport, reads, writes):
        # asyncio calls this before it delivers any data on the transport.
        if reads:
            self._reader = transport
        if writes:
            self._writer = transport
            transport.write(self._first)

    def _data(self, data):
        if self._closed:
            return
        try:
            bodies = self._frames.feed(data)
        except ProtocolError as e:
            self._lost(e)
            return
        self._reading = True
        try:
            for body in bodies:
                if self._closed:
                    return
                self._on_body(body)
        finally:
            self._reading = False
        if self._pending:
            self.flush()

    def _pause(self):
        if self._paused is None:
            self._paused = self._loop.create_future()

    def _resume(self):
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    def _writer_closed(self):
        if not self._writer_gone.done():
            self._writer_gone.set_result(None)

    def _lost(self, exc):
        if self._closed:
            return
        self._closed = True
        self._resume()
        if exc is None and self._frames.partial:
            exc = ProtocolError("the channel ended in the middle of a frame")
        self._on_close(exc)
