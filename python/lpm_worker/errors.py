"""The errors of the worker library. Each says what happened and what to do."""


class LpmError(Exception):
    """Base class of every error this library raises."""


class ProtocolError(LpmError):
    """The supervisor sent something this worker cannot read: the channel ends."""


class DecodeError(ProtocolError):
    """A frame's body is not one valid message (truncated, unknown variant, bad UTF-8 …)."""


class FrameTooLarge(LpmError):
    """A frame would exceed the agreed limit (``LPM_MAX_FRAME_LEN``, 16 MiB by default)."""

    def __init__(self, length, limit):
        super().__init__(
            f"a frame of {length} bytes is over the limit of {limit} bytes "
            "(raise Config::max_frame_len on the supervisor, or send less per message)"
        )
        self.length = length
        self.limit = limit


class HandshakeError(LpmError):
    """The supervisor's ``Hello`` is missing or names another protocol version or codec."""


class ChannelClosed(LpmError):
    """The channel to the supervisor is closed: nothing can be sent or received any more."""


class EmitError(LpmError):
    """An emit's reply is an error: no subscriber replied, or the one that did failed."""


class StreamError(LpmError):
    """A request's in-band stream failed on the caller's side or ended short."""
