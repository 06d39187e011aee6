'use strict';
// The worker: the handshake, then dispatch of every message the supervisor
// sends (protocol/WIRE.md, "Session"), with handlers running as async
// functions on the event loop while the reader keeps answering Ping and
// Cancel.

const { Channel } = require('./channel');
const { openChannel } = require('./transport');
const { maxFrameLenFromEnv } = require('./frames');
const { PROTOCOL_VERSION, Codec, codecName, decodeToWorker, encode } = require('./messages');
const { HandshakeError, EmitError, ChannelClosed, FrameTooLarge } = require('./errors');
const {
  STREAM_CHUNK,
  StreamedResponse,
  ResponseStream,
  RequestStream,
  errorMessage,
} = require('./streams');
const { Context } = require('./context');

/** Room a StreamData frame needs besides its data: variant, id, length. */
const STREAM_DATA_OVERHEAD = 32;

/** A payload as JSON bytes; `undefined` is written as `null`. */
function jsonBytes(value) {
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new TypeError(`a ${typeof value} is not a JSON value`);
  return Buffer.from(text, 'utf8');
}

/** A JSON payload's value; an empty payload is `null`. */
function parsePayload(bytes) {
  return bytes.length === 0 ? null : JSON.parse(bytes.toString('utf8'));
}

function log(text) {
  process.stderr.write(`lpm-worker[${process.pid}]: ${text}\n`);
}

/** One request the worker holds, from its arrival to its answer or its cancel. */
class InFlight {
  constructor(id, key) {
    this.id = id;
    this.key = key;
    // Made on first use of `ctx.signal`: most requests never look at it.
    this.controller = null;
    this.cancelled = false;
    this.requestStream = null;
    this.responseStream = null;
    // Answered (or answering with a stream) or cancelled: never answered again.
    this.settled = false;
  }

  get signal() {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort();
    }
    return this.controller.signal;
  }

  cancel() {
    this.cancelled = true;
    this.controller?.abort();
  }
}

class Worker {
  /**
   * @param {object} [options]
   * @param {boolean} [options.ready=true] send `Ready` as soon as the
   *   handshake is done; with `false`, call `ready()` when the worker can serve.
   */
  constructor({ ready = true } = {}) {
    this.autoReady = ready;
    this.handlers = new Map();
    this.untyped = null;
    this.eventHandlers = new Map();
    this.softKillHook = null;
    /** The pool slot from the supervisor's Hello; null until the handshake. */
    this.slot = null;
    /** 'socketpair' or 'stdio' once running. */
    this.transport = null;

    this.channel = null;
    this.greeted = false;
    this.waitingForHandshake = [];
    this.onHandshake = null;
    this.callTable = [];
    this.inFlight = new Map();
    this.asks = new Map();
    this.nextEmitId = 0n;
    this.softKill = null;
    this.idleWaiters = [];
    this.stopping = false;
  }

  /**
   * Serves the call `name` (a Rust `Call::NAME`) with `handler(value, ctx)`,
   * an async function or one that returns a value. Its result is the answer
   * (JSON); a thrown error's message fails the request.
   */
  handle(name, handler) {
    if (typeof name !== 'string' || name === '') throw new TypeError('a call name is a non-empty string');
    if (typeof handler !== 'function') throw new TypeError(`the handler of "${name}" is not a function`);
    if (this.channel) throw new Error(`handle("${name}") after run(): the Hello lists the calls, register them first`);
    if (this.handlers.has(name)) throw new Error(`the call "${name}" already has a handler`);
    this.handlers.set(name, handler);
    return this;
  }

  /** Serves untyped requests (call 0, `pool.enqueue`) with `handler(value, ctx)`. */
  onRequest(handler) {
    if (typeof handler !== 'function') throw new TypeError('the request handler is not a function');
    this.untyped = handler;
    return this;
  }

  /** Calls `handler(value, name)` for each broadcast event `name`. */
  onEvent(name, handler) {
    if (typeof handler !== 'function') throw new TypeError(`the handler of event "${name}" is not a function`);
    this.eventHandlers.set(name, handler);
    return this;
  }

  /** Runs `hook()` (may be async) when a soft kill starts, before the in-flight requests are awaited. */
  onSoftKill(hook) {
    if (typeof hook !== 'function') throw new TypeError('the soft-kill hook is not a function');
    this.softKillHook = hook;
    return this;
  }

  /** Tells the supervisor the worker takes requests (again). */
  ready() {
    this.send(encode.ready());
  }

  /** Tells the supervisor to send no new requests until `ready()`; those in flight still run. */
  busy() {
    this.send(encode.busy());
  }

  /** Emits the event `name` to the supervisor's subscribers; no reply. */
  emit(name, value) {
    this.send(encode.emit(name, jsonBytes(value), null));
  }

  /**
   * Emits the event `name` and resolves with the reply's value; rejects with
   * EmitError when no subscriber replied or the reply is an error.
   */
  async ask(name, value) {
    const emitId = this.nextEmitId++;
    const body = encode.emit(name, jsonBytes(value), emitId);
    if (this.stopping) throw new ChannelClosed();
    return new Promise((resolve, reject) => {
      this.asks.set(emitId, { name, resolve, reject });
      try {
        this.send(body);
      } catch (err) {
        this.asks.delete(emitId);
        reject(err);
      }
    });
  }

  /** Reports numbers shown in the pool's health: `{ name: value }` or `[[name, value]]`. */
  reportStats(stats) {
    const pairs = Symbol.iterator in Object(stats) ? [...stats] : Object.entries(stats);
    this.send(encode.stats(pairs.map(([name, value]) => [String(name), Number(value)])));
  }

  /** How many requests the worker holds (a streaming answer counts until its end). */
  get requests() {
    return this.inFlight.size;
  }

  /**
   * Connects to the supervisor and serves until it stops the worker, which
   * then exits the process. Resolves with the slot once the handshake is done.
   */
  run() {
    if (this.channel) throw new Error('run() was called twice');
    let ends;
    let maxFrameLen;
    try {
      maxFrameLen = maxFrameLenFromEnv();
      ends = openChannel();
    } catch (err) {
      this.fatal(err.message);
    }
    this.transport = ends.kind;
    this.maxChunk = Math.max(1, Math.min(STREAM_CHUNK, maxFrameLen - STREAM_DATA_OVERHEAD));
    this.callTable = [...this.handlers.entries()];
    this.channel = new Channel(ends, maxFrameLen, {
      onBody: (body) => this.receive(body),
      onEnd: (truncated) => this.hangUp(truncated),
      onError: (err) => this.channelFailed(err),
    });
    const names = this.callTable.map(([name]) => name);
    this.channel.send(encode.hello(process.pid, Codec.Json, names, false));
    return new Promise((resolve) => {
      this.onHandshake = resolve;
    });
  }

  /** Sends a body, or keeps it until the handshake is done. */
  send(body) {
    if (this.stopping) return;
    if (this.greeted) this.channel.send(body);
    else this.waitingForHandshake.push(body);
  }

  receive(body) {
    if (this.stopping) return;
    let msg;
    try {
      msg = decodeToWorker(body);
    } catch (err) {
      this.fatal(err.message);
    }
    if (!this.greeted) {
      this.greet(msg);
      return;
    }
    switch (msg.type) {
      case 'Request':
        this.serve(msg, false);
        break;
      case 'RequestStreamed':
        this.serve(msg, true);
        break;
      case 'Ping':
        this.channel.send(encode.pong(msg.seq));
        break;
      case 'Cancel':
        this.cancel(msg.id);
        break;
      case 'Event':
        this.deliverEvent(msg.name, msg.payload);
        break;
      case 'EmitReply':
        this.deliverReply(msg.emitId, msg.outcome);
        break;
      case 'StreamData':
        this.inFlight.get(msg.id.toString('latin1'))?.requestStream?.data(msg.data);
        break;
      case 'StreamEnd':
        this.inFlight.get(msg.id.toString('latin1'))?.requestStream?.end(msg.outcome);
        break;
      case 'StreamCredit':
        this.inFlight.get(msg.id.toString('latin1'))?.responseStream?.grant(Number(msg.bytes));
        break;
      case 'ReportUsage':
        this.reportUsage();
        break;
      case 'SoftKill':
        this.startSoftKill();
        break;
      case 'HardKill':
        process.exit(0);
        break;
      case 'RequestWithFd':
        // Its descriptor was not read (no SCM_RIGHTS here) and is lost.
        this.channel.send(
          encode.failed(
            msg.id,
            `this worker said takes_fds: false in its Hello and cannot receive the ${msg.kind} ` +
              'the supervisor sent with the request',
          ),
        );
        break;
      case 'EventWithFd':
        log(`event "${msg.name}" carries a ${msg.kind}, which this worker cannot receive; ignored`);
        break;
      case 'Hello':
        log("a second Hello from the supervisor; ignored");
        break;
    }
  }

  greet(msg) {
    let reason = null;
    if (msg.type !== 'Hello') {
      reason = `the supervisor's first message was ${msg.type}, not Hello`;
    } else if (msg.version !== PROTOCOL_VERSION) {
      reason =
        `the supervisor speaks protocol version ${msg.version} and this library version ` +
        `${PROTOCOL_VERSION}: use the lpm-worker package of the supervisor's lpm release`;
    } else if (msg.codec !== Codec.Json) {
      reason =
        `the pool's payload codec is ${codecName(msg.codec)}, and this library speaks json ` +
        'only: start the pool with Config::codec(Codec::Json)';
    }
    if (reason !== null) {
      // Our Hello still goes out first, so the supervisor sees the mismatch too.
      log(new HandshakeError(reason).message);
      this.stop(1);
      return;
    }
    this.slot = msg.slot;
    this.greeted = true;
    if (this.autoReady) this.channel.send(encode.ready());
    for (const body of this.waitingForHandshake) {
      try {
        this.channel.send(body);
      } catch (err) {
        // Queued before run(), so there was no caller left to throw to.
        log(`a message queued before the handshake was not sent: ${err.message}`);
      }
    }
    this.waitingForHandshake = [];
    this.onHandshake(this.slot);
  }

  serve(msg, streamed) {
    const key = msg.id.toString('latin1');
    if (this.inFlight.has(key)) {
      this.channel.send(
        encode.failed(msg.id, 'the request id is already in flight on this worker; the supervisor sent it twice'),
      );
      return;
    }
    const [name, handler] = msg.call === 0 ? [null, this.untyped] : (this.callTable[msg.call - 1] ?? []);
    if (!handler) {
      this.channel.send(encode.notHandled(msg.id));
      return;
    }
    const entry = new InFlight(msg.id, key);
    this.inFlight.set(key, entry);
    if (streamed) entry.requestStream = new RequestStream(this.channel, msg.id);
    let value;
    try {
      value = parsePayload(msg.payload);
    } catch (err) {
      this.fail(entry, `the request's payload is not JSON (${err.message}); the pool must use Codec::Json`);
      return;
    }
    const ctx = new Context(this, msg, name, entry, entry.requestStream?.readable ?? null);
    // Started after the whole batch is read, so a Cancel or Ping in the same read is seen first.
    queueMicrotask(() => {
      if (entry.settled) return;
      let result;
      try {
        result = handler(value, ctx);
      } catch (err) {
        this.fail(entry, errorMessage(err));
        return;
      }
      Promise.resolve(result).then(
        (answer) => this.answer(entry, answer),
        (err) => this.fail(entry, errorMessage(err)),
      );
    });
  }

  answer(entry, result) {
    if (entry.settled) {
      // Cancelled meanwhile: a stream's source will never be read.
      if (result instanceof StreamedResponse) result.discard();
      return;
    }
    if (result instanceof StreamedResponse) {
      this.answerWithStream(entry, result);
      return;
    }
    let payload;
    try {
      payload = jsonBytes(result);
    } catch (err) {
      this.fail(entry, `the handler's result cannot be written as JSON: ${err.message}`);
      return;
    }
    this.release(entry);
    this.sendAnswer(entry.id, encode.response(entry.id, payload));
  }

  answerWithStream(entry, streamed) {
    let payload;
    try {
      payload = jsonBytes(streamed.value);
    } catch (err) {
      streamed.discard();
      this.fail(entry, `the stream's value cannot be written as JSON: ${err.message}`);
      return;
    }
    // The supervisor sends no more of a request stream once it has the answer.
    entry.requestStream?.close('the request was answered before its stream ended');
    entry.settled = true;
    if (!this.sendAnswer(entry.id, encode.responseStreamed(entry.id, payload))) {
      streamed.discard();
      this.release(entry);
      return;
    }
    entry.responseStream = new ResponseStream(this.maxChunk);
    entry.responseStream.pump(this.channel, entry.id, streamed.source).then(() => this.release(entry));
  }

  /** Sends an answer; one over the frame limit becomes a Failed. Returns whether it went out. */
  sendAnswer(id, body) {
    try {
      this.channel.send(body);
      return true;
    } catch (err) {
      if (!(err instanceof FrameTooLarge)) throw err;
      this.channel.send(
        encode.failed(id, `the answer is ${err.len} bytes, over the frame limit of ${err.max} bytes; answer with a stream instead`),
      );
      return false;
    }
  }

  fail(entry, message) {
    if (entry.settled) return;
    this.release(entry);
    this.channel.send(encode.failed(entry.id, message));
  }

  /** The request is over (answered or cancelled): it no longer counts as in flight. */
  release(entry) {
    entry.settled = true;
    if (this.inFlight.get(entry.key) === entry) this.inFlight.delete(entry.key);
    entry.requestStream?.close('the request was answered before its stream ended');
    if (this.inFlight.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  cancel(id) {
    const entry = this.inFlight.get(id.toString('latin1'));
    // Unknown or answered already: ignored.
    if (!entry) return;
    entry.requestStream?.close('the request was cancelled');
    entry.responseStream?.stop();
    this.release(entry);
    entry.cancel();
  }

  deliverEvent(name, payload) {
    const handler = this.eventHandlers.get(name);
    if (!handler) return;
    let value;
    try {
      value = parsePayload(payload);
    } catch (err) {
      log(`event "${name}" ignored: its payload is not JSON (${err.message})`);
      return;
    }
    const failed = (err) => log(`the handler of event "${name}" failed: ${errorMessage(err)}`);
    // Queued like requests, so a request after an event sees the event's effect.
    queueMicrotask(() => {
      try {
        Promise.resolve(handler(value, name)).catch(failed);
      } catch (err) {
        failed(err);
      }
    });
  }

  deliverReply(emitId, outcome) {
    const ask = this.asks.get(emitId);
    if (!ask) return;
    this.asks.delete(emitId);
    if ('err' in outcome) {
      ask.reject(new EmitError(ask.name, outcome.err));
      return;
    }
    try {
      ask.resolve(parsePayload(outcome.ok));
    } catch (err) {
      ask.reject(new EmitError(ask.name, `the reply is not JSON (${err.message})`));
    }
  }

  reportUsage() {
    const cpu = process.cpuUsage();
    const cpuNs = BigInt(cpu.user + cpu.system) * 1000n;
    this.channel.send(encode.usage(process.memoryUsage.rss(), cpuNs));
  }

  startSoftKill() {
    if (this.softKill) return;
    this.softKill = (async () => {
      if (this.softKillHook) {
        try {
          await this.softKillHook();
        } catch (err) {
          log(`the soft-kill hook failed: ${errorMessage(err)}`);
        }
      }
      while (this.inFlight.size > 0) {
        await new Promise((resolve) => this.idleWaiters.push(resolve));
      }
      this.stop(0, encode.softKillDone());
    })();
  }

  /** Sends what is queued and `lastBody`, then exits with `code`. */
  stop(code, lastBody) {
    if (this.stopping) return;
    this.stopping = true;
    for (const ask of this.asks.values()) ask.reject(new ChannelClosed());
    this.asks.clear();
    this.channel.finish(lastBody, () => process.exit(code));
  }

  /** The supervisor closed the channel (or is gone): exit at once. */
  hangUp(truncated) {
    if (truncated) this.fatal('the channel closed in the middle of a frame');
    process.exit(0);
  }

  channelFailed(err) {
    // The supervisor is gone: the same as end of file.
    if (err.code === 'EPIPE' || err.code === 'ECONNRESET') process.exit(0);
    this.fatal(err.message);
  }

  /** Says why on stderr and exits with status 1. */
  fatal(message) {
    log(message);
    process.exit(1);
  }
}

module.exports = { Worker, jsonBytes, parsePayload };
