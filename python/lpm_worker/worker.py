"""The worker: handlers registered by call name, served over the channel with asyncio.

The event loop reads every frame as it arrives and settles ``Ping``,
``Cancel``, credit and replies right there, so they are answered while
handlers work. Each request runs in its own task; its one answer is sent
only if the supervisor still waits for it.
"""

import asyncio
import contextvars
import inspect
import json
import logging
import os
import sys
import threading

from . import eager, usage
from . import messages as msg
from .errors import (
    ChannelClosed,
    DecodeError,
    EmitError,
    FrameTooLarge,
    HandshakeError,
    LpmError,
    ProtocolError,
)
from .frames import max_frame_len_from_env
from .request import Request, _current
from .streams import RequestStream, ResponseCredit, Streamed, send_response_stream
from .threads import DaemonPool
from .transport import Channel, Claimed, claim

log = logging.getLogger("lpm_worker")

#: How a session ended (:meth:`Worker.serve` returns one).
SOFT_KILL = "soft_kill"
HARD_KILL = "hard_kill"
EOF = "eof"

# The bytes of a StreamData frame around its data, at most: variant, id, length.
_STREAM_DATA_OVERHEAD = 1 + 17 + 10


def _is_async(fn):
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


# serde_json reads neither NaN nor Infinity: refuse them here, with a clear message.
_encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def _to_json(value):
    return _encode_json(value).encode()


def _error_message(e):
    return str(e) or type(e).__name__


class _Handler:
    __slots__ = ("fn", "raw", "inline", "is_async")

    def __init__(self, fn, raw, inline):
        self.fn = fn
        self.raw = raw
        self.inline = inline
        self.is_async = _is_async(fn)


class _InFlight:
    """A request the worker holds: from its arrival to its answer (or its stream's end)."""

    __slots__ = ("id", "task", "stream", "credit")

    def __init__(self, request_id, stream):
        self.id = request_id
        self.task = None
        self.stream = stream
        self.credit = None


class Worker:
    """An lpm worker: register handlers, then :meth:`run`.

    ``Worker()`` claims its channel at once (the socketpair of
    ``LPM_IPC_FD``, else stdin and stdout, see :mod:`lpm_worker.transport`),
    so create it before anything prints. ``channel`` hands it a connected
    socket instead (tests). Payloads are JSON; ``max_frame_len`` defaults
    to ``LPM_MAX_FRAME_LEN`` or 16 MiB. With ``auto_ready=False`` the
    worker sends ``Ready`` only when you call :meth:`ready`. Synchronous
    handlers run on up to ``threads`` daemon threads.
    """

    def __init__(self, *, channel=None, max_frame_len=None, auto_ready=True, threads=None):
        self._claimed = claim() if channel is None else Claimed("socket", sock=channel)
        self._limit = max_frame_len or max_frame_len_from_env()
        self._auto_ready = auto_ready
        self._pool = DaemonPool(threads)
        self._untyped = None
        self._calls = {}
        self._events = {}
        self._soft_kill_hook = None
        self._start_hook = None
        self._running = False
        self._slot = None
        # Set by serve():
        self._loop = None
        self._loop_thread = None
        self._channel = None
        self._done = None
        self._greeted = None
        self._call_list = []
        self._call_names = []
        self._in_flight = {}
        self._idle = None
        self._emits = {}
        self._next_emit = 0
        self._background = set()
        self._soft_kill_task = None

    # ---- registration ----

    def handle(self, name, *, raw=False, inline=False):
        """Decorator: ``fn(value)`` serves the call ``name`` and returns its answer.

        ``value`` is the request's JSON payload, decoded; the return value is
        encoded as JSON (return a :class:`Streamed` to answer with a byte
        stream). With ``raw=True`` the handler gets and returns ``bytes``.
        ``async def`` handlers run on the event loop; plain functions run on
        a daemon thread, or on the loop itself with ``inline=True`` (no
        thread hop, but ``Ping`` waits while they run). An exception
        becomes ``Failed`` with its message.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("a call name is a non-empty string")

        def register(fn):
            if self._running:
                raise RuntimeError(f"cannot add call {name!r}: the worker is running and its Hello is sent")
            if name in self._calls:
                raise ValueError(f"call {name!r} already has a handler (each name is announced once)")
            self._calls[name] = _Handler(fn, raw, inline)
            return fn

        return register

    def on_request(self, fn=None, *, raw=False, inline=False):
        """Decorator: the handler of untyped requests (call 0), as :meth:`handle` otherwise."""

        def register(fn):
            if self._untyped is not None:
                raise ValueError("there is an untyped handler already")
            self._untyped = _Handler(fn, raw, inline)
            return fn

        return register(fn) if fn is not None else register

    def on_event(self, name, *, raw=False):
        """Decorator: ``fn(value)`` receives the broadcast event ``name``.

        Plain functions run on the event loop as the event arrives (keep them
        short); ``async def`` ones in a task of their own.
        """

        def register(fn):
            if name in self._events:
                raise ValueError(f"event {name!r} already has a handler")
            self._events[name] = _Handler(fn, raw, True)
            return fn

        return register

    def on_soft_kill(self, fn):
        """Decorator: ``fn()`` runs when the supervisor asks for a soft kill.

        The worker then waits for it (``async def`` or plain) and for every
        request in flight, sends ``SoftKillDone`` and exits with status 0.
        """
        self._soft_kill_hook = fn
        return fn

    def on_start(self, fn):
        """Decorator: ``fn()`` runs after the handshake, before ``Ready`` (warm-up)."""
        self._start_hook = fn
        return fn

    # ---- what handlers may use ----

    @property
    def slot(self):
        """This worker's slot in the pool (from the supervisor's ``Hello``), or ``None`` before it."""
        return self._slot

    @property
    def transport(self):
        """``"socketpair"``, ``"stdio"``, or ``"socket"`` for one handed to the constructor."""
        return self._claimed.kind

    def ready(self):
        """Sends ``Ready``: the worker takes requests (again)."""
        self._post(msg.READY)

    def busy(self):
        """Sends ``Busy``: no new requests until :meth:`ready`."""
        self._post(msg.BUSY)

    def report_stats(self, stats):
        """Sends ``Stats``: ``{name: number}`` (or ``(name, number)`` pairs), shown in the pool's health."""
        pairs = stats.items() if hasattr(stats, "items") else stats
        self._post(msg.stats([(str(name), float(value)) for name, value in pairs]))

    def emit_nowait(self, name, value=None, *, raw=False):
        """Sends the event ``name`` to the supervisor's subscribers; no reply. Safe from any thread."""
        self._post(msg.emit(name, bytes(value) if raw else _to_json(value)))

    async def emit(self, name, value=None, *, reply=False, raw=False):
        """Sends the event ``name``; with ``reply=True`` waits for and returns the reply's value.

        Raises :class:`EmitError` when the reply is an error (no subscriber
        replied), :class:`ChannelClosed` when the channel ends first. With
        ``raw=True`` the value and the reply are bytes.
        """
        self._check_running()
        payload = bytes(value) if raw else _to_json(value)
        if not reply:
            self._channel.send(msg.emit(name, payload))
            await self._channel.drain()
            return None
        self._next_emit += 1
        emit_id = self._next_emit
        answer = self._loop.create_future()
        self._emits[emit_id] = answer
        try:
            self._channel.send(msg.emit(name, payload, emit_id))
            data = await answer
        finally:
            self._emits.pop(emit_id, None)
        if raw:
            return data
        try:
            return json.loads(data)
        except ValueError as e:
            raise EmitError(f"the reply to {name!r} is not JSON ({e})") from None

    # ---- running ----

    def run(self):
        """Serves until the supervisor ends the session, then exits the process.

        Exit status 0 after a soft kill, a hard kill or end of file, 1 after
        a failed handshake or a protocol error (with the reason on stderr).
        """
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        code = 0
        try:
            reason = loop.run_until_complete(self.serve())
        except LpmError as e:
            print(f"lpm_worker: {e}", file=sys.stderr)
            code = 1
        else:
            if reason == HARD_KILL:
                os._exit(0)
        _exit(code)

    async def serve(self):
        """Serves the session on the running event loop; returns how it ended.

        Returns ``"soft_kill"``, ``"hard_kill"`` or ``"eof"``. Raises
        :class:`HandshakeError` or :class:`ProtocolError`.
        """
        if self._running:
            raise RuntimeError("the worker is already running")
        self._running = True
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._done = loop.create_future()
        self._greeted = loop.create_future()
        self._idle = asyncio.Event()
        self._call_list = [None] + list(self._calls.values())
        self._call_names = [None] + list(self._calls)
        # Our Hello goes first, so that a supervisor we refuse sees why too.
        hello = msg.hello(os.getpid(), msg.CODEC_JSON, list(self._calls), takes_fds=False)
        self._channel = Channel(self._limit, self._receive, self._channel_closed, hello)
        try:
            self._channel.open(self._claimed)
            await self._greeted
            if self._start_hook is not None:
                await _call_hook(self._start_hook)
            if self._auto_ready and not self._channel.closed:
                self.ready()
            reason = await self._done
            if reason == SOFT_KILL:
                try:
                    self._channel.send(msg.SOFT_KILL_DONE)
                    await self._channel.close()
                except ChannelClosed:
                    pass  # the supervisor left first: nobody is waiting for the word
            return reason
        finally:
            self._stop()

    # ---- inbound frames ----

    def _receive(self, body):
        try:
            message = msg.decode(body)
        except DecodeError as e:
            self._fail(ProtocolError(f"the supervisor sent a malformed frame ({e}); closing the channel"))
            return
        if not self._greeted.done():
            self._greet(message)
            return
        handler = _DISPATCH.get(type(message))
        handler(self, message)

    def _greet(self, message):
        if type(message) is not msg.Hello:
            error = HandshakeError(
                f"the supervisor's first frame is {type(message).__name__}, not Hello; "
                "is this program started by an lpm pool?"
            )
        elif message.version != msg.PROTOCOL_VERSION:
            error = HandshakeError(
                f"the supervisor speaks protocol version {message.version}, this library "
                f"version {msg.PROTOCOL_VERSION}: use the lpm_worker that ships with that lpm"
            )
        elif message.codec != msg.CODEC_JSON:
            error = HandshakeError(
                f"the pool's payload codec is {msg.CODEC_NAMES[message.codec]}, but this worker "
                "speaks JSON: start the pool with Config::codec(Codec::Json)"
            )
        else:
            self._slot = message.slot
            self._greeted.set_result(None)
            return
        self._fail(error)

    def _on_request(self, m):
        if m.fd_kind is not None:
            kind = msg.FD_KINDS[m.fd_kind]
            self._refuse(m.id, f"this worker takes no descriptors (takes_fds: false) but got a {kind}")
            return
        if m.id in self._in_flight:
            self._refuse(
                m.id, f"request {m.id.hex()} is already in flight on this worker; the supervisor sent it twice"
            )
            return
        call = m.call
        if call == 0:
            handler, name = self._untyped, None
        elif call < len(self._call_list):
            handler, name = self._call_list[call], self._call_names[call]
        else:
            handler = None
        if handler is None:
            self._send(msg.not_handled(m.id))
            return
        stream = RequestStream(m.id, self._grant) if m.streamed else None
        state = _InFlight(m.id, stream)
        self._in_flight[m.id] = state
        self._idle.clear()
        request = Request(m.id, name, m.created_at, m.trace, self._slot, stream)
        serving = self._serve_request(state, handler, request, m.payload)
        state.task = eager.start(self._loop, serving, contextvars.copy_context())

    def _on_cancel(self, m):
        state = self._in_flight.pop(m.id, None)
        if state is None:
            return  # unknown or answered already
        if state.task is not None:
            state.task.cancel()
        self._settled()

    def _on_ping(self, m):
        self._send(msg.pong(m.seq))

    def _on_stream_data(self, m):
        state = self._in_flight.get(m.id)
        if state is not None and state.stream is not None:
            state.stream._feed(m.data)

    def _on_stream_end(self, m):
        state = self._in_flight.get(m.id)
        if state is not None and state.stream is not None:
            state.stream._finish(m.ok, m.value)

    def _on_stream_credit(self, m):
        state = self._in_flight.get(m.id)
        if state is not None and state.credit is not None:
            state.credit.add(m.bytes)

    def _on_event(self, m):
        handler = self._events.get(m.name)
        if handler is None:
            return
        if handler.raw:
            value = m.payload
        else:
            try:
                value = json.loads(m.payload)
            except ValueError as e:
                log.warning("event %r: the payload is not JSON (%s); ignored", m.name, e)
                return
        if handler.is_async:
            task = self._loop.create_task(_logged(handler.fn(value), f"event {m.name!r}"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return
        try:
            handler.fn(value)
        except Exception:
            log.exception("the handler of event %r failed", m.name)

    def _on_emit_reply(self, m):
        answer = self._emits.pop(m.emit_id, None)
        if answer is None or answer.done():
            return
        if m.ok:
            answer.set_result(m.value)
        else:
            answer.set_exception(EmitError(m.value))

    def _on_soft_kill(self, _m):
        if self._soft_kill_task is None:
            self._soft_kill_task = self._loop.create_task(self._soft_kill())

    def _on_hard_kill(self, _m):
        self._finish(HARD_KILL)
        self._channel.abort()

    def _on_report_usage(self, _m):
        self._send(msg.usage(*usage.current()))

    def _on_hello(self, _m):
        log.warning("a second Hello from the supervisor; ignored")

    # ---- serving ----

    async def _serve_request(self, state, handler, request, payload):
        _current.set(request)
        request_id = state.id
        try:
            value = _decode_payload(handler, payload)
            if handler.is_async:
                result = await handler.fn(value)
            elif handler.inline:
                result = handler.fn(value)
            else:
                result = await self._pool.submit(self._loop, contextvars.copy_context(), handler.fn, value)
            if inspect.isawaitable(result):
                result = await result
            streamed = isinstance(result, Streamed)
            answer = result.value if streamed else result
            payload = _answer_bytes(handler, answer)
        except asyncio.CancelledError:
            if self._in_flight.get(request_id) is state and not self._channel.closed:
                # Cancelled by the handler's own code, not by the supervisor: still one answer.
                self._answer_failed(state, "the handler was cancelled")
            raise
        except Exception as e:
            self._answer_failed(state, _error_message(e))
            return
        if not streamed:
            self._answer(state, msg.response(request_id, payload))
            return
        if self._in_flight.get(request_id) is not state:
            return
        state.credit = ResponseCredit()
        try:
            self._channel.send(msg.response_streamed(request_id, payload))
        except FrameTooLarge as e:
            self._answer_failed(state, f"the answer cannot be sent: {e}")
            return
        except ChannelClosed:
            return
        chunk = min(msg.STREAM_CHUNK, self._limit - _STREAM_DATA_OVERHEAD)
        try:
            await send_response_stream(
                request_id,
                result.source,
                state.credit,
                self._channel,
                chunk,
                lambda: self._in_flight.get(request_id) is state,
            )
        except ChannelClosed:
            return
        if self._in_flight.get(request_id) is state:
            del self._in_flight[request_id]
            self._settled()

    def _answer(self, state, body):
        """Sends the one answer of ``state``'s request, if the supervisor still waits for it."""
        if self._in_flight.get(state.id) is not state:
            return
        try:
            self._channel.send(body)
        except FrameTooLarge as e:
            self._send(msg.failed(state.id, f"the answer cannot be sent: {e}", self._limit))
        except ChannelClosed:
            pass
        del self._in_flight[state.id]
        self._settled()

    def _refuse(self, request_id, message):
        """Fails a request that never got a handler."""
        self._send(msg.failed(request_id, message, self._limit))

    def _answer_failed(self, state, message):
        self._answer(state, msg.failed(state.id, message, self._limit))

    def _settled(self):
        if not self._in_flight:
            self._idle.set()

    def _grant(self, request_id, count):
        if request_id in self._in_flight and not self._channel.closed:
            self._send(msg.stream_credit(request_id, count))

    async def _soft_kill(self):
        if self._soft_kill_hook is not None:
            await _call_hook(self._soft_kill_hook)
        while self._in_flight:
            await self._idle.wait()
        self._finish(SOFT_KILL)

    # ---- plumbing ----

    def _send(self, body):
        try:
            self._channel.send(body)
        except ChannelClosed:
            pass

    def _post(self, body):
        self._check_running()
        if threading.get_ident() == self._loop_thread:
            self._channel.send(body)
        else:
            self._channel.send_threadsafe(body)

    def _check_running(self):
        if self._channel is None:
            raise RuntimeError("the worker is not running yet: call run() first")
        if self._channel.closed:
            raise ChannelClosed("the channel to the supervisor is closed")

    def _finish(self, reason):
        if not self._done.done():
            self._done.set_result(reason)

    def _fail(self, error):
        # Before the handshake serve() awaits the greeting, after it the end.
        if not self._greeted.done():
            self._greeted.set_exception(error)
        elif not self._done.done():
            self._done.set_exception(error)
        self._channel.abort()

    def _channel_closed(self, error):
        if isinstance(error, ProtocolError):
            self._fail(error)
            return
        if not self._greeted.done():
            self._greeted.set_exception(
                HandshakeError(f"the channel closed before the supervisor's Hello ({error or 'end of file'})")
            )
        # End of file, or the supervisor hung up mid-write: it is gone either way.
        self._finish(EOF)

    def _stop(self):
        """Ends everything still running: nothing more can be sent."""
        if self._channel is not None and not self._channel.closed:
            self._channel.abort()
        for state in self._in_flight.values():
            if state.task is not None:
                state.task.cancel()
            if state.stream is not None:
                state.stream._abandon("the worker is stopping")
        self._in_flight.clear()
        for answer in self._emits.values():
            if not answer.done():
                answer.set_exception(ChannelClosed("the channel closed before the emit's reply"))
        self._emits.clear()
        for task in list(self._background):
            task.cancel()
        if self._soft_kill_task is not None:
            self._soft_kill_task.cancel()
        for future in (self._greeted, self._done):
            if future.done() and not future.cancelled():
                future.exception()  # serve() raised or returned what mattered; the rest is moot


def _decode_payload(handler, payload):
    if handler.raw:
        return payload
    try:
        # Decoding first spares json.loads its guess of the encoding: serde_json writes UTF-8.
        return json.loads(payload.decode("utf-8"))
    except ValueError as e:
        raise ValueError(f"the request's payload is not JSON ({e})") from None


def _answer_bytes(handler, value):
    if handler.raw:
        if value is None:
            return b""
        return bytes(value)
    return _to_json(value)


async def _call_hook(hook):
    try:
        result = hook()
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("the hook %s failed", getattr(hook, "__name__", hook))


async def _logged(awaitable, what):
    try:
        await awaitable
    except Exception:
        log.exception("the handler of %s failed", what)


def _exit(code):
    """Exits now, even when threads the worker did not start are still running."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    lingering = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if lingering:
        # sys.exit would wait for them; the supervisor expects this worker gone.
        os._exit(code)
    sys.exit(code)


_DISPATCH = {
    msg.Request: Worker._on_request,
    msg.Ping: Worker._on_ping,
    msg.Cancel: Worker._on_cancel,
    msg.StreamData: Worker._on_stream_data,
    msg.StreamEnd: Worker._on_stream_end,
    msg.StreamCredit: Worker._on_stream_credit,
    msg.Event: Worker._on_event,
    msg.EmitReply: Worker._on_emit_reply,
    msg.SoftKill: Worker._on_soft_kill,
    msg.HardKill: Worker._on_hard_kill,
    msg.ReportUsage: Worker._on_report_usage,
    msg.Hello: Worker._on_hello,
}
