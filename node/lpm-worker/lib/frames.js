'use strict';
// Frames: a u32 little-endian body length, then the body (protocol/WIRE.md,
// "Frames"). The limit is checked on the 4 header bytes, before any of the
// body is kept.

const { FrameTooLarge, MalformedFrame } = require('./errors');

/** The default frame limit, 16 MiB, as the supervisor's `Config::max_frame_len`. */
const DEFAULT_MAX_FRAME_LEN = 16 * 1024 * 1024;

/** The frame limit the supervisor announced in `LPM_MAX_FRAME_LEN`, else the default. */
function maxFrameLenFromEnv(env = process.env) {
  const text = env.LPM_MAX_FRAME_LEN;
  if (text === undefined || text === '') return DEFAULT_MAX_FRAME_LEN;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0 || value > 0xffffffff) {
    throw new RangeError(
      `LPM_MAX_FRAME_LEN is "${text}", not a byte count between 1 and 4294967295`,
    );
  }
  return value;
}

/** Prepends the header to a body. Throws FrameTooLarge over the limit: nothing is sent then. */
function encodeFrame(body, maxFrameLen) {
  if (body.length > maxFrameLen) throw new FrameTooLarge(body.length, maxFrameLen);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.set(body, 4);
  return frame;
}

/**
 * Cuts frames out of a byte stream that arrives in chunks of any size.
 * Chunks are kept as they came and joined once per frame, so a large frame
 * is copied once, not once per chunk.
 */
class FrameDecoder {
  constructor(maxFrameLen) {
    this.maxFrameLen = maxFrameLen;
    this.chunks = [];
    this.buffered = 0;
    // The body length of the frame being read, once its header is whole.
    this.bodyLen = -1;
  }

  /** Adds a chunk; returns the bodies it completed, in order. Throws on a bad header. */
  push(chunk) {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const bodies = [];
    for (;;) {
      if (this.bodyLen < 0) {
        if (this.buffered < 4) break;
        const len = this.take(4).readUInt32LE(0);
        if (len > this.maxFrameLen) throw new FrameTooLarge(len, this.maxFrameLen);
        if (len === 0) throw new MalformedFrame('an empty body (every message has a variant index)');
        this.bodyLen = len;
      }
      if (this.buffered < this.bodyLen) break;
      bodies.push(this.take(this.bodyLen));
      this.bodyLen = -1;
    }
    return bodies;
  }

  /** True when the stream is between frames: EOF here is a clean close. */
  atBoundary() {
    return this.buffered === 0 && this.bodyLen < 0;
  }

  /** Removes the first `n` buffered bytes (n <= buffered). */
  take(n) {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let used = 0;
    while (filled < n) {
      const chunk = this.chunks[used];
      const size = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, size);
      filled += size;
      if (size === chunk.length) used++;
      else this.chunks[used] = chunk.subarray(size);
    }
    // One splice, not a shift per chunk: a frame may arrive in many small reads.
    this.chunks.splice(0, used);
    return out;
  }
}

module.exports = { DEFAULT_MAX_FRAME_LEN, maxFrameLenFromEnv, encodeFrame, FrameDecoder };
