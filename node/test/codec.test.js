'use strict';
// The envelope encodings against the hex dumps of protocol/WIRE.md. The dumps
// are read from WIRE.md itself, so this test breaks when the page and the
// library disagree (node --test node/test).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');

const { Writer, Reader } = require('../lpm-worker/lib/postcard');
const { encode, decodeToWorker, Codec } = require('../lpm-worker/lib/messages');
const { encodeFrame, FrameDecoder } = require('../lpm-worker/lib/frames');
const { MalformedFrame, FrameTooLarge } = require('../lpm-worker/lib/errors');

const WIRE = fs.readFileSync(path.join(__dirname, '../../protocol/WIRE.md'), 'utf8');
const MAX = 16 * 1024 * 1024;
const ID = Buffer.from('67e5504410b1426f9247bb680e5fe0c8', 'hex');
const CREATED_AT = 1700000000123456789n;

/** The text of WIRE.md from the heading `from` to the heading `to`. */
function section(from, to) {
  const start = WIRE.indexOf(from);
  const end = WIRE.indexOf(to, start);
  assert.ok(start >= 0 && end > start, `WIRE.md has the section "${from}"`);
  return WIRE.slice(start, end);
}

const hex = (text) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** Every inline `xx xx ...` dump of a section, in order. */
function inlineDumps(text) {
  return [...text.matchAll(/`([0-9a-f]{2}(?: [0-9a-f]{2})+)`/g)].map((m) => hex(m[1]));
}

/** The bytes of each ```text block whose lines start with hex bytes, in order. */
function blockDumps(text) {
  const blocks = [...text.matchAll(/```text\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks.map((block) =>
    Buffer.concat(
      block
        .split('\n')
        .map((line) => line.match(/^([0-9a-f]{2}(?: [0-9a-f]{2})*)(?: {2,}|$)/))
        .filter(Boolean)
        .map((m) => hex(m[1])),
    ),
  );
}

const frame = (body) => encodeFrame(body, MAX);

/** Decodes one whole frame of the supervisor's. */
function decodeFrame(bytes) {
  const bodies = new FrameDecoder(MAX).push(bytes);
  assert.equal(bodies.length, 1, 'exactly one frame');
  return decodeToWorker(bodies[0]);
}

test('the postcard table of WIRE.md', () => {
  const writers = {
    '7u8': (w) => w.u8(7),
    '-1i8': (w) => w.u8(-1 & 0xff),
    true: (w) => w.bool(true),
    '127u32': (w) => w.varint(127),
    '128u32': (w) => w.varint(128),
    '300u32': (w) => w.varint(300),
    '-1i32': (w) => w.zigzag(-1),
    '-2i32': (w) => w.zigzag(-2),
    '300i32': (w) => w.zigzag(300),
    '1.5f64': (w) => w.f64(1.5),
    '"hi"': (w) => w.string('hi'),
    '[1u8, 2]': (w) => w.bytes(Buffer.from([1, 2])),
    'vec![1u16, 300]': (w) => w.vec([1, 300], Writer.prototype.varint),
    '(1u8, "hi")': (w) => w.u8(1).string('hi'),
    'None::<u64>': (w) => w.option(null, Writer.prototype.varint),
    'Some(300u64)': (w) => w.option(300n, Writer.prototype.varint),
    'Ok::<u8, String>(7)': (w) => w.u8(0).u8(7),
    'Err::<u8, String>("no")': (w) => w.u8(1).string('no'),
    '67e55044-10b1-426f-9247-bb680e5fe0c8': (w) => w.uuid(ID),
    'Timestamp(1_000_000_000)': (w) => w.varint(1000000000n),
  };
  const rows = [...section('## Postcard rules', '## Messages').matchAll(/`([^`]*)` → `([^`]*)`/g)];
  assert.equal(rows.length, Object.keys(writers).length, 'every example of the table is checked');
  for (const [, expr, bytes] of rows) {
    assert.ok(expr in writers, `a writer for ${expr}`);
    assert.deepEqual(writers[expr](new Writer()).finish(), hex(bytes), expr);
  }
});

test('the postcard table decodes back', () => {
  assert.equal(new Reader(hex('ac 02')).u32(), 300);
  assert.equal(new Reader(hex('80 94 eb dc 03')).u64(), 1000000000n);
  assert.equal(new Reader(hex('02 68 69')).string(), 'hi');
  assert.deepEqual(new Reader(hex('10 67 e5 50 44 10 b1 42 6f 92 47 bb 68 0e 5f e0 c8')).uuid(), ID);
  assert.equal(new Reader(hex('01 ac 02')).option(Reader.prototype.u64), 300n);
  assert.equal(new Reader(hex('00')).option(Reader.prototype.u64), null);
  assert.deepEqual(new Reader(hex('01 02 6e 6f')).result(Reader.prototype.u8, Reader.prototype.string), {
    err: 'no',
  });
  assert.equal(new Reader(hex('00 00 00 00 00 00 f8 3f')).f64(), 1.5);
});

test('u64 varints past 2^53 keep every bit', () => {
  const max = 0xffffffffffffffffn;
  const bytes = new Writer().varint(max).finish();
  assert.equal(bytes.length, 10);
  assert.equal(new Reader(bytes).u64(), max);
  const big = 2n ** 53n + 1n;
  assert.equal(new Reader(new Writer().varint(big).finish()).u64(), big);
});

test('the five fixed frames', () => {
  const [ready, busy, softKillDone, softKill, hardKill] = inlineDumps(
    section('Frames of the variants without fields', 'New variants are only ever appended'),
  );
  assert.deepEqual(frame(encode.ready()), ready);
  assert.deepEqual(frame(encode.busy()), busy);
  assert.deepEqual(frame(encode.softKillDone()), softKillDone);
  assert.equal(decodeFrame(softKill).type, 'SoftKill');
  assert.equal(decodeFrame(hardKill).type, 'HardKill');
});

test('the worked examples', async (t) => {
  const examples = section('## Worked examples', '## A minimal reader and writer');
  const blocks = blockDumps(examples);
  const inline = inlineDumps(examples);
  assert.equal(blocks.length, 6, 'six worked examples with a block dump');
  assert.equal(inline.length, 9, 'nine inline dumps in the worked examples');
  const [workerHello, request, jsonRequest, emit, responseStreamed, usage] = blocks;
  const [
    supervisorHello,
    cancel,
    response,
    notHandled,
    emitReply,
    streamData,
    streamEnd,
    streamCredit,
    reportUsage,
  ] = inline;

  await t.test("1: the worker's Hello and the supervisor's", () => {
    assert.deepEqual(frame(encode.hello(4242, Codec.Json, ['count_primes'], false)), workerHello);
    assert.deepEqual(decodeFrame(supervisorHello), { type: 'Hello', version: 4, slot: 2, codec: Codec.Json });
  });

  await t.test('2: an untyped request, and its Cancel', () => {
    const msg = decodeFrame(request);
    assert.equal(msg.type, 'Request');
    assert.deepEqual(msg.id, ID);
    assert.equal(msg.createdAt, CREATED_AT);
    assert.equal(msg.call, 0);
    assert.deepEqual(msg.payload, hex('02 68 69 03'));
    assert.equal(msg.trace, null);
    assert.deepEqual(decodeFrame(cancel), { type: 'Cancel', id: ID });
  });

  await t.test('3: a JSON call with a trace context, its Response and NotHandled', () => {
    const msg = decodeFrame(jsonRequest);
    assert.equal(msg.type, 'Request');
    assert.equal(msg.call, 1);
    assert.equal(msg.createdAt, CREATED_AT);
    assert.deepEqual(JSON.parse(msg.payload), { below: 100 });
    assert.equal(msg.trace, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.deepEqual(frame(encode.response(ID, Buffer.from('25'))), response);
    assert.deepEqual(frame(encode.notHandled(ID)), notHandled);
  });

  await t.test('4: an emit awaiting a reply, and the reply', () => {
    assert.deepEqual(frame(encode.emit('tick', Buffer.alloc(0), 300n)), emit);
    assert.deepEqual(decodeFrame(emitReply), {
      type: 'EmitReply',
      emitId: 300n,
      outcome: { ok: hex('01') },
    });
  });

  await t.test('5: a response stream in-band, and its credit', () => {
    assert.deepEqual(frame(encode.responseStreamed(ID, hex('01'))), responseStreamed);
    assert.deepEqual(frame(encode.streamData(ID, Buffer.from('abc'))), streamData);
    assert.deepEqual(frame(encode.streamEnd(ID, { ok: 3 })), streamEnd);
    assert.deepEqual(decodeFrame(streamCredit), { type: 'StreamCredit', id: ID, bytes: 65536n });
  });

  await t.test('6: usage, asked and reported', () => {
    assert.equal(decodeFrame(reportUsage).type, 'ReportUsage');
    assert.deepEqual(frame(encode.usage(52428800, 1250000000n)), usage);
  });
});

test('the other messages encode field by field', () => {
  const id = hex('10') ;
  assert.deepEqual(encode.failed(ID, 'no'), Buffer.concat([hex('04'), id, ID, hex('02 6e 6f')]));
  assert.deepEqual(encode.ack(ID), Buffer.concat([hex('05'), id, ID]));
  assert.deepEqual(encode.pong(2n ** 64n - 1n), hex('09 ff ff ff ff ff ff ff ff ff 01'));
  assert.deepEqual(encode.stats([['hits', 1.5]]), hex('08 01 04 68 69 74 73 00 00 00 00 00 00 f8 3f'));
  assert.deepEqual(encode.streamEnd(ID, { err: 'no' }), Buffer.concat([hex('0b'), id, ID, hex('01 02 6e 6f')]));
  assert.deepEqual(encode.streamCredit(ID, 65536), Buffer.concat([hex('10'), id, ID, hex('80 80 04')]));
  assert.deepEqual(encode.emit('e', Buffer.from('1'), null), hex('06 01 65 01 31 00'));
});

test('the other messages decode field by field', () => {
  const id = Buffer.concat([hex('10'), ID]);
  const requestFields = Buffer.concat([id, hex('05 00 02 31 32 00')]);
  assert.deepEqual(decodeToWorker(Buffer.concat([hex('0a'), requestFields])), {
    type: 'RequestStreamed',
    id: ID,
    createdAt: 5n,
    call: 0,
    payload: Buffer.from('12'),
    trace: null,
  });
  assert.equal(decodeToWorker(Buffer.concat([hex('08'), requestFields, hex('03')])).kind, 'UnixStream');
  assert.deepEqual(decodeToWorker(hex('02 01 65 01 31')), { type: 'Event', name: 'e', payload: Buffer.from('1') });
  assert.deepEqual(decodeToWorker(hex('09 01 65 00 04')), {
    type: 'EventWithFd',
    name: 'e',
    payload: Buffer.alloc(0),
    kind: 'TcpListener',
  });
  assert.deepEqual(decodeToWorker(hex('03 07 01 02 6e 6f')), { type: 'EmitReply', emitId: 7n, outcome: { err: 'no' } });
  assert.deepEqual(decodeToWorker(hex('07 ff ff ff ff ff ff ff ff ff 01')), { type: 'Ping', seq: 2n ** 64n - 1n });
  assert.deepEqual(decodeToWorker(Buffer.concat([hex('0b'), id, hex('02 61 62')])), {
    type: 'StreamData',
    id: ID,
    data: Buffer.from('ab'),
  });
  assert.deepEqual(decodeToWorker(Buffer.concat([hex('0c'), id, hex('00 02')])), {
    type: 'StreamEnd',
    id: ID,
    outcome: { ok: 2n },
  });
  assert.deepEqual(decodeToWorker(Buffer.concat([hex('0c'), id, hex('01 01 78')])), {
    type: 'StreamEnd',
    id: ID,
    outcome: { err: 'x' },
  });
});

test('malformed bodies are refused', () => {
  const cases = {
    'an unknown variant': hex('0f'),
    'trailing bytes': hex('04 00'),
    'a truncated field': hex('07 80'),
    'an overlong u32 varint': hex('00 04 80 80 80 80 80 01 01'),
    'a u32 that overflows': hex('00 04 ff ff ff ff 1f 01'),
    'a u16 that overflows': hex('00 ff ff 07 00 01'),
    'a u64 that overflows': hex('07 ff ff ff ff ff ff ff ff ff 02'),
    'an unknown codec': hex('00 04 00 02'),
    'an id of 15 bytes': Buffer.concat([hex('06 0f'), ID.subarray(0, 15)]),
    'a bad Option tag': Buffer.concat([hex('01 10'), ID, hex('00 00 00 02')]),
    'invalid UTF-8': hex('02 01 ff 00'),
    'a length past the end': hex('02 05 61'),
  };
  for (const [what, body] of Object.entries(cases)) {
    assert.throws(() => decodeToWorker(body), MalformedFrame, what);
  }
});

test('frames: the limit, checked on the header', () => {
  const decoder = new FrameDecoder(8);
  assert.deepEqual(decoder.push(Buffer.concat([hex('08 00 00 00'), Buffer.alloc(8, 7)])), [Buffer.alloc(8, 7)]);
  assert.throws(() => new FrameDecoder(8).push(hex('09 00 00 00')), FrameTooLarge);
  assert.throws(() => new FrameDecoder(8).push(hex('00 00 00 00')), MalformedFrame);
  assert.throws(() => encodeFrame(Buffer.alloc(9), 8), FrameTooLarge);
  assert.equal(encodeFrame(Buffer.alloc(8), 8).length, 12);
});

test('frames: cut out of chunks of any size', () => {
  const frames = [hex('01 00 00 00 04'), hex('01 00 00 00 05'), frame(encode.pong(7n)), frame(Buffer.alloc(70000, 1))];
  const stream = Buffer.concat(frames);
  for (const size of [1, 3, 5, 4096, stream.length]) {
    const decoder = new FrameDecoder(MAX);
    const bodies = [];
    for (let at = 0; at < stream.length; at += size) bodies.push(...decoder.push(stream.subarray(at, at + size)));
    assert.deepEqual(
      bodies,
      frames.map((f) => f.subarray(4)),
      `chunks of ${size}`,
    );
    assert.ok(decoder.atBoundary());
  }
  const partial = new FrameDecoder(MAX);
  partial.push(hex('01 00'));
  assert.ok(!partial.atBoundary(), 'EOF inside a header is not a clean close');
});
