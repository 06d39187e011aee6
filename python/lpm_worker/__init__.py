"""lpm_worker: write lpm pool workers in Python (standard library only, Python 3.9+).

```python
from lpm_worker import Worker

worker = Worker()          # claims the channel: the socketpair, or stdin/stdout

@worker.handle("add")      # the Rust side's Call::NAME
async def add(args):
    return args["a"] + args["b"]

worker.run()               # handshake, Ready, serve; exits when the pool says so
```

The pool must use the JSON payload codec (``Config::codec(Codec::Json)``).
The wire protocol is protocol/WIRE.md (version 4); python/README.md has the
whole API.
"""

from .errors import (
    ChannelClosed,
    DecodeError,
    EmitError,
    FrameTooLarge,
    HandshakeError,
    LpmError,
    ProtocolError,
    StreamError,
)
from .messages import PROTOCOL_VERSION
from .request import Request, current_request
from .streams import RequestStream, Streamed
from .worker import EOF, HARD_KILL, SOFT_KILL, Worker

__all__ = [
    "ChannelClosed",
    "DecodeError",
    "EmitError",
    "EOF",
    "FrameTooLarge",
    "HARD_KILL",
    "HandshakeError",
    "LpmError",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Request",
    "RequestStream",
    "SOFT_KILL",
    "StreamError",
    "Streamed",
    "Worker",
    "current_request",
]
