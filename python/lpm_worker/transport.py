"""The channel to the supervisor: the inherited socketpair or stdin and stdout.

:func:`claim` finds the transport the way protocol/WIRE.md says: the
socketpair when ``LPM_IPC_FD`` is set, else stdin and stdout. For stdio it
takes the two descriptors for itself at once and points fd 0 at /dev/null
and fd 1 (and ``sys.stdout``) at stderr, so that neither a stray ``print``
nor a program the worker starts can write into the frames or read them.

:class:`Channel` carries frames over the claimed descriptors with the
asyncio event loop. Frames written in one turn of the loop leave in one
write, and the answers given while the frames of one read are dispatched
leave right after it.
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


# Bytes buffered for writing above which drain() waits, and below which it resumes.
_HIGH_WATER = 1024 * 1024
_LOW_WATER = 256 * 1024
# One read takes at most this much (frames longer than that arrive in several reads).
_READ_SIZE = 256 * 1024


class Channel:
    """Frames to and from the supervisor over the claimed descriptors.

    It reads and writes the non-blocking descriptors itself, with the event
    loop's ``add_reader`` and ``add_writer``: asyncio's transports allocate
    a fresh 256 KiB buffer for every read, which costs more than a whole
    small request.

    ``first`` is the body of the first frame to send: it is written as the
    channel opens, before any frame is read. ``on_body(body)`` is called for
    each frame body in arrival order and ``on_close(error)`` once when the
    channel ends: ``None`` for a clean end of file (or a supervisor that
    hung up), else the exception.
    """

    def __init__(self, limit, on_body, on_close, first):
        self.limit = limit
        self._first = frame(first, limit)
        self._on_body = on_body
        self._on_close = on_close
        self._frames = FrameReader(limit)
        self._claimed = None
        self._read_fd = None
        self._write_fd = None
        self._scratch = bytearray(_READ_SIZE)
        self._pending = []
        self._flush_scheduled = False
        # True while the frames of one read are dispatched: their answers leave together after.
        self._reading = False
        # Bytes the descriptor did not take yet; while any wait, the writer callback is on.
        self._unwritten = bytearray()
        self._drained = None
        self._closed = False
        self._loop = None

    def open(self, claimed):
        """Starts reading and writing the claimed descriptors on the running event loop."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._claimed = claimed
        if claimed.sock is not None:
            self._read_fd = self._write_fd = claimed.sock.fileno()
        else:
            self._read_fd, self._write_fd = claimed.read_fd, claimed.write_fd
        for fd in {self._read_fd, self._write_fd}:
            os.set_blocking(fd, False)
        self._write(self._first)
        try:
            loop.add_reader(self._read_fd, self._read_ready)
        except (PermissionError, ValueError) as e:
            # epoll takes pipes, sockets and terminals, not files or /dev/null.
            self._release()
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
        """Writes the queued frames now (what the descriptor does not take waits for it)."""
        self._flush_scheduled = False
        if not self._pending or self._closed:
            self._pending.clear()
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._write(data)

    async def drain(self):
        """Waits while more than 1 MiB waits to be written."""
        if len(self._unwritten) > _HIGH_WATER:
            if self._drained is None:
                self._drained = self._loop.create_future()
            await asyncio.shield(self._drained)
        if self._closed:
            raise ChannelClosed("the channel to the supervisor is closed")

    async def close(self):
        """Writes what is queued, waits until it is out, and closes the channel."""
        self.flush()
        while self._unwritten and not self._closed:
            if self._drained is None:
                self._drained = self._loop.create_future()
            await asyncio.shield(self._drained)
        self._lost(None)

    def abort(self):
        """Closes at once, dropping anything not yet written."""
        self._lost(None)

    # ---- event loop callbacks ----

    def _write(self, data):
        if self._unwritten:
            self._unwritten += data
            return
        try:
            written = os.write(self._write_fd, data)
        except BlockingIOError:
            written = 0
        except OSError as e:
            self._write_failed(e)
            return
        if written < len(data):
            self._unwritten += memoryview(data)[written:]
            self._loop.add_writer(self._write_fd, self._write_ready)

    def _write_ready(self):
        try:
            written = os.write(self._write_fd, self._unwritten)
        except BlockingIOError:
            return
        except OSError as e:
            self._write_failed(e)
            return
        del self._unwritten[:written]
        if not self._unwritten:
            self._loop.remove_writer(self._write_fd)
        if len(self._unwritten) <= _LOW_WATER:
            self._wake_drain()

    def _write_failed(self, error):
        # EPIPE or a reset: the supervisor is gone, as at end of file.
        gone = isinstance(error, (BrokenPipeError, ConnectionResetError))
        self._lost(None if gone else error)

    def _wake_drain(self):
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _read_ready(self):
        try:
            count = os.readv(self._read_fd, [self._scratch])
        except (BlockingIOError, InterruptedError):
            return
        except (ConnectionResetError, BrokenPipeError):
            count = 0
        except OSError as e:
            self._lost(e)
            return
        if count == 0:
            self._lost(None)
            return
        self._data(memoryview(self._scratch)[:count])

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

    def _release(self):
        """Stops watching the descriptors and closes them."""
        loop = self._loop
        for fd in {self._read_fd, self._write_fd}:
            if fd is not None:
                loop.remove_reader(fd)
                loop.remove_writer(fd)
        claimed = self._claimed
        if claimed.sock is not None:
            claimed.sock.close()
        else:
            for fd in (claimed.read_fd, claimed.write_fd):
                try:
                    os.close(fd)
                except OSError:
                    pass  # closed already
        self._read_fd = self._write_fd = None

    def _lost(self, exc):
        if self._closed:
            return
        self._closed = True
        self._release()
        self._pending.clear()
        self._unwritten.clear()
        self._wake_drain()
        if exc is None and self._frames.partial:
            exc = ProtocolError("the channel ended in the middle of a frame")
        self._on_close(exc)
