'use strict';
// The framed channel over a readable and a writable: frames in, bodies out.
// Outgoing frames are gathered and written in one write once the current
// job's microtasks are done, so the answers of the requests that arrived in
// one read leave together.

const { FrameDecoder, encodeFrame } = require('./frames');

class Channel {
  /**
   * @param {{ input, output }} ends the transport's streams
   * @param {number} maxFrameLen the frame limit, both ways
   * @param {{ onBody(body), onEnd(truncated), onError(err) }} sink what to call on input
   */
  constructor({ input, output }, maxFrameLen, sink) {
    this.input = input;
    this.output = output;
    this.maxFrameLen = maxFrameLen;
    this.decoder = new FrameDecoder(maxFrameLen);
    this.queue = [];
    this.queued = 0;
    this.flushScheduled = false;
    this.flushWaiters = [];
    this.closed = false;

    input.on('data', (chunk) => {
      let bodies;
      try {
        bodies = this.decoder.push(chunk);
      } catch (err) {
        sink.onError(err);
        return;
      }
      for (const body of bodies) sink.onBody(body);
    });
    input.on('end', () => sink.onEnd(!this.decoder.atBoundary()));
    input.on('error', (err) => sink.onError(err));
    if (output !== input) output.on('error', (err) => sink.onError(err));
  }

  /** Queues one message body. Throws FrameTooLarge over the limit, and sends nothing then. */
  send(body) {
    if (this.closed) return;
    const frame = encodeFrame(body, this.maxFrameLen);
    this.queue.push(frame);
    this.queued += frame.length;
    this.schedule();
  }

  schedule() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Writes what is queued now; returns whether the writable wants more. */
  flush() {
    this.flushScheduled = false;
    let wantsMore = true;
    if (this.queue.length > 0 && !this.closed) {
      const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue, this.queued);
      this.queue = [];
      this.queued = 0;
      wantsMore = this.output.write(data);
    }
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    if (waiters.length > 0) {
      if (wantsMore) for (const wake of waiters) wake();
      else this.output.once('drain', () => waiters.forEach((wake) => wake()));
    }
    return wantsMore;
  }

  /** Resolves once what is queued now is written and the writable takes more. */
  flushed() {
    return new Promise((resolve) => {
      this.flushWaiters.push(resolve);
      this.schedule();
    });
  }

  /** Writes what is queued and the last body, then calls `done`. Nothing is sent after it. */
  finish(lastBody, done) {
    if (lastBody) this.send(lastBody);
    this.flush();
    this.closed = true;
    this.output.write(Buffer.alloc(0), () => done());
  }
}

module.exports = { Channel };
