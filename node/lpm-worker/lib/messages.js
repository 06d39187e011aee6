'use strict';
// The messages of protocol version 4 (protocol/WIRE.md, "Messages"): ToWorker
// decoded into plain objects, ToSupervisor encoded from arguments. Ids stay
// 16-byte Buffers; u64 fields are BigInts.

const { Reader, Writer } = require('./postcard');
const { MalformedFrame } = require('./errors');

const PROTOCOL_VERSION = 4;

/** `Codec` variant indices. */
const Codec = Object.freeze({ Postcard: 0, Json: 1 });
const CODEC_NAMES = ['postcard', 'json'];

/** `FdKind` variant indices. */
const FD_KINDS = ['Pipe', 'File', 'TcpStream', 'UnixStream', 'TcpListener', 'UnixListener'];

/** `ToWorker` variant names by index. */
const TO_WORKER = [
  'Hello',
  'Request',
  'Event',
  'EmitReply',
  'SoftKill',
  'HardKill',
  'Cancel',
  'Ping',
  'RequestWithFd',
  'EventWithFd',
  'RequestStreamed',
  'StreamData',
  'StreamEnd',
  'StreamCredit',
  'ReportUsage',
];

/** `ToSupervisor` variant indices. */
const ToSupervisor = Object.freeze({
  Hello: 0,
  Ready: 1,
  Busy: 2,
  Response: 3,
  Failed: 4,
  Ack: 5,
  Emit: 6,
  SoftKillDone: 7,
  Stats: 8,
  Pong: 9,
  ResponseWithStream: 10,
  StreamEnd: 11,
  SocketClosed: 12,
  NotHandled: 13,
  ResponseStreamed: 14,
  StreamData: 15,
  StreamCredit: 16,
  Usage: 17,
});

function codecName(index) {
  return CODEC_NAMES[index] ?? `codec ${index}`;
}

function readCodec(r) {
  const index = r.u32('a codec');
  if (index >= CODEC_NAMES.length) throw new MalformedFrame(`unknown codec ${index}`);
  return index;
}

function readFdKind(r) {
  const index = r.u32('a descriptor kind');
  if (index >= FD_KINDS.length) throw new MalformedFrame(`unknown descriptor kind ${index}`);
  return FD_KINDS[index];
}

/** The fields shared by Request, RequestWithFd and RequestStreamed. */
function readRequest(r) {
  return {
    id: r.uuid(),
    createdAt: r.u64('created_at'),
    call: r.u32('a call number'),
    payload: r.bytes('a payload'),
    trace: r.option(function () {
      return this.string('a trace context');
    }),
  };
}

/** Decodes one `ToWorker` body; throws MalformedFrame unless it is exactly one message. */
function decodeToWorker(body) {
  const r = new Reader(body);
  const index = r.u32('a variant index');
  const type = TO_WORKER[index];
  if (type === undefined) throw new MalformedFrame(`unknown ToWorker variant ${index}`);
  let msg;
  switch (type) {
    case 'Hello':
      msg = { version: r.u16('a version'), slot: r.u32('a slot'), codec: readCodec(r) };
      break;
    case 'Request':
    case 'RequestStreamed':
      msg = readRequest(r);
      break;
    case 'RequestWithFd':
      msg = readRequest(r);
      msg.kind = readFdKind(r);
      break;
    case 'Event':
      msg = { name: r.string('an event name'), payload: r.bytes('a payload') };
      break;
    case 'EventWithFd':
      msg = { name: r.string('an event name'), payload: r.bytes('a payload'), kind: readFdKind(r) };
      break;
    case 'EmitReply':
      msg = {
        emitId: r.u64('an emit id'),
        outcome: r.result(
          function () {
            return this.bytes('a reply payload');
          },
          function () {
            return this.string('a reason');
          },
        ),
      };
      break;
    case 'Cancel':
      msg = { id: r.uuid() };
      break;
    case 'Ping':
      msg = { seq: r.u64('a ping sequence number') };
      break;
    case 'StreamData':
      msg = { id: r.uuid(), data: r.bytes('stream data') };
      break;
    case 'StreamEnd':
      msg = {
        id: r.uuid(),
        outcome: r.result(
          function () {
            return this.u64('a byte count');
          },
          function () {
            return this.string('a reason');
          },
        ),
      };
      break;
    case 'StreamCredit':
      msg = { id: r.uuid(), bytes: r.u64('a credit') };
      break;
    default:
      // SoftKill, HardKill, ReportUsage: unit variants.
      msg = {};
  }
  r.end(type);
  msg.type = type;
  return msg;
}

function body(index) {
  return new Writer().u8(index);
}

/** Encoders of the `ToSupervisor` bodies (no frame header). */
const encode = {
  hello(pid, codec, calls, takesFds) {
    return body(ToSupervisor.Hello)
      .varint(PROTOCOL_VERSION)
      .varint(pid)
      .varint(codec)
      .vec(calls, Writer.prototype.string)
      .bool(takesFds)
      .finish();
  },
  ready: () => Buffer.from([ToSupervisor.Ready]),
  busy: () => Buffer.from([ToSupervisor.Busy]),
  softKillDone: () => Buffer.from([ToSupervisor.SoftKillDone]),
  response(id, payload) {
    return body(ToSupervisor.Response).uuid(id).bytes(payload).finish();
  },
  failed(id, message) {
    return body(ToSupervisor.Failed).uuid(id).string(message).finish();
  },
  ack(id) {
    return body(ToSupervisor.Ack).uuid(id).finish();
  },
  notHandled(id) {
    return body(ToSupervisor.NotHandled).uuid(id).finish();
  },
  emit(name, payload, replyTo) {
    return body(ToSupervisor.Emit)
      .string(name)
      .bytes(payload)
      .option(replyTo, Writer.prototype.varint)
      .finish();
  },
  /** `stats`: an array of [name, number] pairs. */
  stats(stats) {
    return body(ToSupervisor.Stats)
      .vec(stats, function ([name, value]) {
        this.string(name).f64(value);
      })
      .finish();
  },
  pong(seq) {
    return body(ToSupervisor.Pong).varint(seq).finish();
  },
  responseStreamed(id, payload) {
    return body(ToSupervisor.ResponseStreamed).uuid(id).bytes(payload).finish();
  },
  streamData(id, data) {
    return new Writer(data.length + 24).u8(ToSupervisor.StreamData).uuid(id).bytes(data).finish();
  },
  /** `outcome`: `{ ok: byteCount }` or `{ err: reason }`. */
  streamEnd(id, outcome) {
    const w = body(ToSupervisor.StreamEnd).uuid(id);
    if ('err' in outcome) w.u8(1).string(outcome.err);
    else w.u8(0).varint(outcome.ok);
    return w.finish();
  },
  streamCredit(id, bytes) {
    return body(ToSupervisor.StreamCredit).uuid(id).varint(bytes).finish();
  },
  usage(rssBytes, cpuNs) {
    return body(ToSupervisor.Usage).varint(rssBytes).varint(cpuNs).finish();
  },
};

module.exports = {
  PROTOCOL_VERSION,
  Codec,
  ToSupervisor,
  codecName,
  decodeToWorker,
  encode,
};
