'use strict';
// A scripted supervisor for the library's tests: it starts a real worker
// process over stdio or a socketpair, speaks the frames of protocol/WIRE.md
// to it, and lets a test wait for the worker's messages. Its ToWorker
// encoder and ToSupervisor decoder are its own, written from WIRE.md's
// tables; the library's codec is checked against WIRE.md's hex dumps in
// codec.test.js.

const { spawn } = require('child_process');
const crypto = require('crypto');
const { Writer, Reader } = require('../lpm-worker/lib/postcard');
const { FrameDecoder, encodeFrame } = require('../lpm-worker/lib/frames');

/** How long any single wait may take before the test fails. */
const DEADLINE_MS = 10000;
const MAX = 16 * 1024 * 1024;

const ToWorker = {
  hello: (version, slot, codec) => new Writer().u8(0).varint(version).varint(slot).varint(codec).finish(),
  request: (id, call, value, { streamed = false, raw } = {}) =>
    new Writer()
      .u8(streamed ? 10 : 1)
      .uuid(id)
      .varint(BigInt(Date.now()) * 1000000n)
      .varint(call)
      .bytes(raw ?? Buffer.from(JSON.stringify(value)))
      .option(null, Writer.prototype.string)
      .finish(),
  event: (name, value) => new Writer().u8(2).string(name).bytes(Buffer.from(JSON.stringify(value))).finish(),
  emitReply: (emitId, outcome) => {
    const w = new Writer().u8(3).varint(emitId);
    if ('err' in outcome) w.u8(1).string(outcome.err);
    else w.u8(0).bytes(Buffer.from(JSON.stringify(outcome.ok)));
    return w.finish();
  },
  softKill: () => Buffer.from([4]),
  hardKill: () => Buffer.from([5]),
  cancel: (id) => new Writer().u8(6).uuid(id).finish(),
  ping: (seq) => new Writer().u8(7).varint(seq).finish(),
  streamData: (id, data) => new Writer().u8(11).uuid(id).bytes(data).finish(),
  streamEnd: (id, outcome) => {
    const w = new Writer().u8(12).uuid(id);
    if ('err' in outcome) w.u8(1).string(outcome.err);
    else w.u8(0).varint(outcome.ok);
    return w.finish();
  },
  streamCredit: (id, bytes) => new Writer().u8(13).uuid(id).varint(bytes).finish(),
  reportUsage: () => Buffer.from([14]),
};

const NAMES = [
  'Hello',
  'Ready',
  'Busy',
  'Response',
  'Failed',
  'Ack',
  'Emit',
  'SoftKillDone',
  'Stats',
  'Pong',
  'ResponseWithStream',
  'StreamEnd',
  'SocketClosed',
  'NotHandled',
  'ResponseStreamed',
  'StreamData',
  'StreamCredit',
  'Usage',
];

function decodeToSupervisor(body) {
  const r = new Reader(body);
  const type = NAMES[r.u32()];
  const idHex = () => r.uuid().toString('hex');
  let msg;
  switch (type) {
    case 'Hello':
      msg = {
        version: r.u16(),
        pid: r.u32(),
        codec: r.u32(),
        calls: r.vec(Reader.prototype.string),
        takesFds: r.bool(),
      };
      break;
    case 'Response':
    case 'ResponseStreamed':
      msg = { id: idHex(), value: JSON.parse(r.bytes().toString()) };
      break;
    case 'Failed':
      msg = { id: idHex(), message: r.string() };
      break;
    case 'Ack':
    case 'NotHandled':
    case 'SocketClosed':
      msg = { id: idHex() };
      break;
    case 'Emit':
      msg = { name: r.string(), value: JSON.parse(r.bytes().toString()), replyTo: r.option(Reader.prototype.u64) };
      break;
    case 'Stats':
      msg = {
        stats: r.vec(function () {
          return [this.string(), this.f64()];
        }),
      };
      break;
    case 'Pong':
      msg = { seq: r.u64() };
      break;
    case 'StreamData':
      msg = { id: idHex(), data: Buffer.from(r.bytes()) };
      break;
    case 'StreamEnd':
      msg = { id: idHex(), outcome: r.result(Reader.prototype.u64, Reader.prototype.string) };
      break;
    case 'StreamCredit':
      msg = { id: idHex(), bytes: r.u64() };
      break;
    case 'Usage':
      msg = { rssBytes: r.u64(), cpuNs: r.u64() };
      break;
    case undefined:
      throw new Error(`unknown ToSupervisor variant ${body[0]}`);
    default:
      msg = {};
  }
  r.end(type);
  msg.type = type;
  return msg;
}

/** A fresh request id: 16 bytes, and its hex form as the decoder shows it. */
function newId() {
  const id = crypto.randomBytes(16);
  return { id, hex: id.toString('hex') };
}

class Supervisor {
  /**
   * Starts `node script` over `transport` ('stdio' or 'socketpair').
   * Nothing is sent until the test says so.
   */
  constructor(script, { transport = 'stdio', env = {} } = {}) {
    const socketpair = transport === 'socketpair';
    const childEnv = { ...process.env, ...env };
    delete childEnv.LPM_IPC_FD;
    if (socketpair) childEnv.LPM_IPC_FD = '3';
    // libuv makes each 'pipe' of the stdio array a socketpair.
    this.child = spawn(process.execPath, [script], {
      env: childEnv,
      stdio: socketpair ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'],
    });
    this.toWorker = socketpair ? this.child.stdio[3] : this.child.stdin;
    this.fromWorker = socketpair ? this.child.stdio[3] : this.child.stdout;
    this.stdout = '';
    this.stderr = '';
    if (socketpair) this.child.stdout.on('data', (d) => (this.stdout += d));
    this.child.stderr.on('data', (d) => (this.stderr += d));
    this.toWorker.on('error', () => {});

    this.decoder = new FrameDecoder(MAX);
    this.inbox = [];
    this.waiter = null;
    this.failure = null;
    this.fromWorker.on('data', (chunk) => {
      try {
        for (const body of this.decoder.push(chunk)) this.inbox.push(decodeToSupervisor(body));
      } catch (err) {
        this.failure = err;
      }
      this.wake();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        this.wake();
        resolve(this.exit);
      });
    });
  }

  wake() {
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) waiter();
  }

  send(body) {
    this.toWorker.write(encodeFrame(body, MAX));
  }

  /** Sends the Hello and checks the worker's Hello and Ready; returns the worker's Hello. */
  async handshake({ slot = 0 } = {}) {
    this.send(ToWorker.hello(4, slot, 1));
    const hello = await this.next('Hello');
    await this.next('Ready');
    return hello;
  }

  /**
   * The next message of the worker's; with `type`, fails unless it is of that
   * type. Fails after DEADLINE_MS, or when the worker exits first.
   */
  async next(type) {
    const deadline = Date.now() + DEADLINE_MS;
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.inbox.length > 0) {
        const msg = this.inbox.shift();
        if (type && msg.type !== type) {
          throw new Error(`expected ${type} from the worker, got ${JSON.stringify(msg, jsonSafe)}`);
        }
        return msg;
      }
      if (this.exit) {
        throw new Error(`the worker exited (${JSON.stringify(this.exit)}) while ${type ?? 'a message'} was awaited; stderr: ${this.stderr}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type ?? 'message'} from the worker within ${DEADLINE_MS} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Sends a Ping and collects every message up to its Pong. */
  async fence(seq = 1000n) {
    this.send(ToWorker.ping(seq));
    const before = [];
    for (;;) {
      const msg = await this.next();
      if (msg.type === 'Pong' && msg.seq === seq) return before;
      before.push(msg);
    }
  }

  /** Waits for the worker's exit, within the deadline. */
  async waitExit() {
    const timeout = new Promise((_, reject) => {
      const timer = setTimeout(() => reject(new Error(`the worker did not exit within ${DEADLINE_MS} ms`)), DEADLINE_MS);
      timer.unref();
    });
    return Promise.race([this.exited, timeout]);
  }

  kill() {
    if (!this.exit) this.child.kill('SIGKILL');
  }
}

function jsonSafe(_key, value) {
  return typeof value === 'bigint' ? `${value}n` : value;
}

module.exports = { Supervisor, ToWorker, newId, DEADLINE_MS };
