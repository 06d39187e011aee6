"""What a handler can learn about the request it serves."""

import contextvars
import uuid

_current = contextvars.ContextVar("lpm_worker_request", default=None)


def current_request():
    """The :class:`Request` the calling handler serves, or ``None`` outside a handler.

    Works in ``async`` handlers, in the tasks they start, and in synchronous
    handlers on their thread.
    """
    return _current.get()


class Request:
    """One request, as the supervisor sent it."""

    __slots__ = ("id_bytes", "call", "created_at_ns", "trace", "slot", "stream")

    def __init__(self, id_bytes, call, created_at_ns, trace, slot, stream):
        #: The request id's 16 bytes (stable across retries).
        self.id_bytes = id_bytes
        #: The call's name, or ``None`` for an untyped request.
        self.call = call
        #: When the caller created it: nanoseconds since the Unix epoch.
        self.created_at_ns = created_at_ns
        #: The caller's W3C ``traceparent``, or ``None``.
        self.trace = trace
        #: This worker's slot in the pool.
        self.slot = slot
        #: The request's in-band byte stream (a :class:`~lpm_worker.RequestStream`), or ``None``.
        self.stream = stream

    @property
    def id(self):
        """The request id as a :class:`uuid.UUID`."""
        return uuid.UUID(bytes=self.id_bytes)

    def __repr__(self):
        return f"Request(id={self.id}, call={self.call!r}, streamed={self.stream is not None})"
