'use strict';
// The errors the library throws. Each message says what happened and what to do.

/** A frame whose body is not one valid message: the channel cannot go on. */
class MalformedFrame extends Error {
  constructor(reason) {
    super(`malformed frame from the supervisor: ${reason}`);
    this.name = 'MalformedFrame';
  }
}

/** A frame header announcing more than the frame limit. */
class FrameTooLarge extends Error {
  constructor(len, max) {
    super(
      `a frame of ${len} bytes is over the limit of ${max} bytes ` +
        '(LPM_MAX_FRAME_LEN; the supervisor sets it from Config::max_frame_len)',
    );
    this.name = 'FrameTooLarge';
    this.len = len;
    this.max = max;
  }
}

/** The supervisor's Hello does not match this worker. */
class HandshakeError extends Error {
  constructor(reason) {
    super(`lpm handshake failed: ${reason}`);
    this.name = 'HandshakeError';
  }
}

/** The supervisor answered an `ask` with an error, or the channel closed first. */
class EmitError extends Error {
  constructor(name, reason) {
    super(`the emit "${name}" got no reply: ${reason}`);
    this.name = 'EmitError';
    this.event = name;
    this.reason = reason;
  }
}

/** The channel to the supervisor is closed: nothing can be sent any more. */
class ChannelClosed extends Error {
  constructor() {
    super('the channel to the supervisor is closed; the worker is stopping');
    this.name = 'ChannelClosed';
  }
}

module.exports = { MalformedFrame, FrameTooLarge, HandshakeError, EmitError, ChannelClosed };
