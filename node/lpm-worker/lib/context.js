'use strict';
// What a handler gets besides the request's value: the request's identity,
// its cancellation signal, its request stream, and the way to answer with a
// response stream.

const { StreamedResponse } = require('./streams');

function uuidText(id) {
  const hex = id.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

class Context {
  constructor(worker, request, call, entry, requestStream) {
    this.worker = worker;
    this.call = call;
    this.entry = entry;
    this.requestStream = requestStream;
    this.trace = request.trace;
    this.rawId = request.id;
    this.createdAtNs = request.createdAt;
  }

  /** The request's id in its text form; stable across retries. */
  get id() {
    return uuidText(this.rawId);
  }

  /** When the caller enqueued the request. */
  get createdAt() {
    return new Date(Number(this.createdAtNs / 1000000n));
  }

  /** Aborted when the supervisor cancels the request. */
  get signal() {
    return this.entry.signal;
  }

  /** True once the supervisor cancelled the request: nothing will be sent for it. */
  get cancelled() {
    return this.entry.cancelled;
  }

  /**
   * Answers with `value` and a byte stream read from `source` (a Readable,
   * or an async or sync iterable of Buffers, Uint8Arrays or strings).
   * Return what it returns from the handler.
   */
  respondWithStream(source, value = null) {
    return new StreamedResponse(source, value);
  }
}

module.exports = { Context, uuidText };
