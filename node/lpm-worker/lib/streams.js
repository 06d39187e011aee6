'use strict';
// In-band streams (protocol/WIRE.md, "In-band streams"): StreamData chunks of
// at most 64 KiB within a credit that starts at 256 KiB per stream, then one
// StreamEnd. Response streams go out within the supervisor's credit; request
// streams come in, and credit is granted as the handler reads.

const { Readable } = require('stream');
const { encode } = require('./messages');

/** The most bytes one StreamData frame carries (`STREAM_CHUNK`). */
const STREAM_CHUNK = 65536;
/** The credit a stream starts with (`STREAM_WINDOW`). */
const STREAM_WINDOW = 262144;

/** What a handler returns to answer with a stream: see `Context#respondWithStream`. */
class StreamedResponse {
  constructor(source, value) {
    const iterable =
      source !== null &&
      typeof source === 'object' &&
      (typeof source[Symbol.asyncIterator] === 'function' ||
        typeof source[Symbol.iterator] === 'function');
    if (!iterable) {
      throw new TypeError(
        'respondWithStream needs a Readable or an (async) iterable of Buffers, ' +
          'Uint8Arrays or strings',
      );
    }
    this.source = source;
    this.value = value;
  }

  /** Releases a source that will not be sent (a Readable is destroyed). */
  discard() {
    if (typeof this.source.destroy === 'function') this.source.destroy();
    else if (typeof this.source.return === 'function') Promise.resolve(this.source.return()).catch(() => {});
  }
}

function toBuffer(chunk) {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`a stream chunk must be a Buffer, a Uint8Array or a string, not ${typeof chunk}`);
}

/**
 * The sending side of one response stream: the credit the supervisor
 * granted, and a way to wait for more.
 */
class ResponseStream {
  /** @param {number} maxChunk the most data per StreamData: STREAM_CHUNK, less under a small frame limit */
  constructor(maxChunk = STREAM_CHUNK) {
    this.maxChunk = maxChunk;
    this.credit = STREAM_WINDOW;
    this.stopped = false;
    this.wake = null;
  }

  /** StreamCredit arrived. */
  grant(bytes) {
    this.credit += bytes;
    this.notify();
  }

  /** The request was cancelled: send nothing more. */
  stop() {
    this.stopped = true;
    this.notify();
  }

  notify() {
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }

  /** Resolves once there is credit or the stream was stopped. */
  waitForCredit() {
    if (this.credit > 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /**
   * Sends `source` as StreamData frames, then StreamEnd: Ok(total), or
   * Err(message) when the source throws. Stops early, sending nothing more,
   * once `stop` is called. Never throws.
   */
  async pump(channel, id, source) {
    let total = 0;
    try {
      for await (const item of source) {
        // Leaving the loop early returns the iterator, which destroys a Readable.
        if (this.stopped) break;
        const chunk = toBuffer(item);
        for (let offset = 0; offset < chunk.length; ) {
          await this.waitForCredit();
          if (this.stopped) break;
          const size = Math.min(chunk.length - offset, this.maxChunk, this.credit);
          channel.send(encode.streamData(id, chunk.subarray(offset, offset + size)));
          this.credit -= size;
          total += size;
          offset += size;
          await channel.flushed();
        }
        if (this.stopped) break;
      }
    } catch (err) {
      if (!this.stopped) channel.send(encode.streamEnd(id, { err: errorMessage(err) }));
      return;
    }
    if (!this.stopped) channel.send(encode.streamEnd(id, { ok: total }));
  }
}

/**
 * The receiving side of one request stream: a Readable the handler reads,
 * fed by StreamData, granting credit as its buffer drains so that at most
 * STREAM_WINDOW bytes sit unread.
 */
class RequestStream {
  constructor(channel, id) {
    this.channel = channel;
    this.id = id;
    this.received = 0;
    this.granted = STREAM_WINDOW;
    this.open = true;
    this.readable = new Readable({
      highWaterMark: STREAM_CHUNK,
      read: () => this.grant(),
    });
    // Errors reach a reader through for-await, pipeline or its own listener;
    // one it never listens for must not crash the worker.
    this.readable.on('error', () => {});
  }

  grant() {
    if (!this.open) return;
    const consumed = this.received - this.readable.readableLength;
    const extra = consumed + STREAM_WINDOW - this.granted;
    // Granted in steps of a chunk or more, so reading byte by byte sends few frames.
    if (extra >= STREAM_CHUNK) {
      this.granted += extra;
      this.channel.send(encode.streamCredit(this.id, extra));
    }
  }

  /** StreamData arrived. */
  data(bytes) {
    if (!this.open) return;
    this.received += bytes.length;
    if (this.received > this.granted) {
      this.fail(
        `the supervisor sent ${this.received} bytes of the request stream ` +
          `with ${this.granted} bytes of credit granted (a protocol violation)`,
      );
      return;
    }
    // The body may be a view into a larger read: copy, so it is not kept alive.
    this.readable.push(Buffer.from(bytes));
  }

  /** StreamEnd arrived. */
  end(outcome) {
    if (!this.open) return;
    if ('err' in outcome) {
      this.fail(`the caller's stream failed: ${outcome.err}`);
    } else if (outcome.ok !== BigInt(this.received)) {
      this.fail(`the stream ended after ${this.received} bytes, but the supervisor counted ${outcome.ok}`);
    } else {
      this.open = false;
      this.readable.push(null);
    }
  }

  /** The request was cancelled or answered: no more bytes will come. */
  close(reason) {
    if (!this.open) return;
    this.fail(reason);
  }

  fail(reason) {
    this.open = false;
    this.readable.destroy(new Error(reason));
  }
}

function errorMessage(err) {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

module.exports = {
  STREAM_CHUNK,
  STREAM_WINDOW,
  StreamedResponse,
  ResponseStream,
  RequestStream,
  errorMessage,
};
