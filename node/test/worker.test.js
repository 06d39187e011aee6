'use strict';
// The worker library against a scripted supervisor (supervisor.js), with the
// conformance worker and a test worker as real child processes, over stdio
// and over a socketpair. Waits have deadlines; nothing is timed.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Supervisor, ToWorker, newId } = require('../testing/supervisor');

const CONFORMANCE = path.join(__dirname, '../examples/conformance_worker.js');
const TEST_WORKER = path.join(__dirname, '../testing/fixture_worker.js');
const TRANSPORTS = ['stdio', 'socketpair'];

/** Starts `script`, does the handshake; returns the supervisor and a call-number lookup. */
async function start(t, script, options = {}) {
  const sup = new Supervisor(script, options);
  t.after(() => sup.kill());
  const hello = await sup.handshake(options);
  const call = (name) => {
    const n = hello.calls.indexOf(name);
    assert.ok(n >= 0, `the worker serves ${name}`);
    return n + 1;
  };
  return { sup, hello, call };
}

/** Sends a request for `name` and returns its id. */
function request(sup, call, name, value, options) {
  const { id, hex } = newId();
  sup.send(ToWorker.request(id, call(name), value, options));
  return { id, hex };
}

for (const transport of TRANSPORTS) {
  test(`${transport}: the Hello lists the calls and says takes_fds false`, async (t) => {
    const { sup, hello } = await start(t, CONFORMANCE, { transport, slot: 3 });
    assert.equal(hello.version, 4);
    assert.equal(hello.pid, sup.child.pid);
    assert.equal(hello.codec, 1);
    assert.equal(hello.takesFds, false);
    assert.deepEqual(hello.calls, [
      'echo',
      'add',
      'fail',
      'crash_once',
      'sleep',
      'busy',
      'ask',
      'recall',
      'report',
      'stream',
      'slot',
      'trace',
    ]);
  });

  test(`${transport}: typed calls, a handler error, NotHandled`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport, slot: 5 });
    const echo = request(sup, call, 'echo', { nested: [1, 'two', null] });
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: echo.hex, value: { nested: [1, 'two', null] } });
    const add = request(sup, call, 'add', { a: 2, b: 40 });
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: add.hex, value: 42 });
    const fail = request(sup, call, 'fail', { message: 'out of cheese' });
    const failed = await sup.next('Failed');
    assert.equal(failed.id, fail.hex);
    assert.match(failed.message, /out of cheese/);
    const slot = request(sup, call, 'slot', null);
    assert.deepEqual((await sup.next('Response')).value, { pid: sup.child.pid, slot: 5 });
    const untyped = newId();
    sup.send(ToWorker.request(untyped.id, 0, 'plain'));
    assert.deepEqual(await sup.next('NotHandled'), { type: 'NotHandled', id: untyped.hex });
    const unknown = newId();
    sup.send(ToWorker.request(unknown.id, 99, null));
    assert.deepEqual(await sup.next('NotHandled'), { type: 'NotHandled', id: unknown.hex });
    assert.ok(slot);
  });

  test(`${transport}: Ping is answered while a handler waits; a cancelled request gets no answer, its retry one`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    const held = request(sup, call, 'sleep', { ms: 60000 });
    assert.deepEqual(await sup.fence(1n), []);
    sup.send(ToWorker.cancel(held.id));
    // The handler notices the cancel and emits, but answers nothing.
    const before = await sup.fence(2n);
    const cancelled = before.length > 0 ? before : [await sup.next('Emit')];
    assert.deepEqual(cancelled, [{ type: 'Emit', name: 'cancelled', value: 60000, replyTo: null }]);
    // The same id again is a new request, answered once.
    sup.send(ToWorker.request(held.id, call('sleep'), { ms: 1 }));
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: held.hex, value: 1 });
    assert.deepEqual(await sup.fence(3n), []);
  });

  test(`${transport}: broadcast events, emit with a reply, stats, usage`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    sup.send(ToWorker.event('remember', { kept: true }));
    request(sup, call, 'recall', null);
    assert.deepEqual((await sup.next('Response')).value, { kept: true });

    const ask = request(sup, call, 'ask', { question: 'six times seven?' });
    const emit = await sup.next('Emit');
    assert.equal(emit.name, 'question');
    assert.equal(emit.value, 'six times seven?');
    assert.equal(typeof emit.replyTo, 'bigint');
    sup.send(ToWorker.emitReply(emit.replyTo, { ok: 42 }));
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: ask.hex, value: 42 });

    const refused = request(sup, call, 'ask', { question: 'anyone?' });
    const second = await sup.next('Emit');
    assert.notEqual(second.replyTo, emit.replyTo);
    sup.send(ToWorker.emitReply(second.replyTo, { err: 'no subscriber replied' }));
    const failed = await sup.next('Failed');
    assert.equal(failed.id, refused.hex);
    assert.match(failed.message, /no subscriber replied/);

    const report = request(sup, call, 'report', { name: 'cache_hits', value: 12.5 });
    assert.deepEqual(await sup.next('Stats'), { type: 'Stats', stats: [['cache_hits', 12.5]] });
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: report.hex, value: null });

    sup.send(ToWorker.reportUsage());
    const usage = await sup.next('Usage');
    assert.ok(usage.rssBytes > 1000000n, `rss ${usage.rssBytes}`);
    assert.ok(usage.cpuNs > 0n, `cpu ${usage.cpuNs}`);
  });

  test(`${transport}: busy, then ready, then the answer`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    const busy = request(sup, call, 'busy', { ms: 20 });
    await sup.next('Busy');
    await sup.next('Ready');
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: busy.hex, value: 20 });
  });

  test(`${transport}: a 16 MiB response stream moves within the credit`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    const total = 16 * 1024 * 1024;
    const stream = request(sup, call, 'stream', { bytes: total });
    assert.deepEqual(await sup.next('ResponseStreamed'), { type: 'ResponseStreamed', id: stream.hex, value: total });
    let credit = 262144;
    let received = 0;
    let mismatch = -1;
    for (;;) {
      const msg = await sup.next();
      if (msg.type === 'StreamEnd') {
        assert.deepEqual(msg, { type: 'StreamEnd', id: stream.hex, outcome: { ok: BigInt(total) } });
        break;
      }
      assert.equal(msg.type, 'StreamData');
      assert.ok(msg.data.length <= 65536, `a chunk of ${msg.data.length} bytes`);
      credit -= msg.data.length;
      assert.ok(credit >= 0, `the worker sent ${-credit} bytes past its credit`);
      for (let i = 0; i < msg.data.length && mismatch < 0; i++) {
        if (msg.data[i] !== (received + i) % 251) mismatch = received + i;
      }
      received += msg.data.length;
      // Granted as a reader would: what it consumed.
      sup.send(ToWorker.streamCredit(stream.id, msg.data.length));
      credit += msg.data.length;
    }
    assert.equal(received, total);
    assert.equal(mismatch, -1, 'byte i of the stream is i % 251');
  });

  test(`${transport}: a response stream stops when it has no credit and when it is cancelled`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    const stream = request(sup, call, 'stream', { bytes: 1024 * 1024 });
    await sup.next('ResponseStreamed');
    let received = 0;
    while (received < 262144) received += (await sup.next('StreamData')).data.length;
    assert.equal(received, 262144);
    // The window is spent: nothing more comes before the fence.
    assert.deepEqual(await sup.fence(7n), []);
    sup.send(ToWorker.cancel(stream.id));
    sup.send(ToWorker.streamCredit(stream.id, 65536));
    assert.deepEqual(await sup.fence(8n), []);
    const echo = request(sup, call, 'echo', 'after');
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: echo.hex, value: 'after' });
  });

  test(`${transport}: a request stream in-band, with credit granted as the handler reads`, async (t) => {
    const { sup, call } = await start(t, TEST_WORKER, { transport });
    const total = 3 * 1024 * 1024 + 123;
    const digest = request(sup, call, 'digest', null, { streamed: true });
    let credit = 262144;
    let sent = 0;
    let sum = 0;
    while (sent < total) {
      if (credit === 0) {
        const grant = await sup.next('StreamCredit');
        assert.equal(grant.id, digest.hex);
        credit += Number(grant.bytes);
        continue;
      }
      const size = Math.min(65536, credit, total - sent);
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) {
        data[i] = (sent + i) % 253;
        sum = (sum + data[i]) % 1000000007;
      }
      sup.send(ToWorker.streamData(digest.id, data));
      credit -= size;
      sent += size;
    }
    sup.send(ToWorker.streamEnd(digest.id, { ok: BigInt(total) }));
    for (;;) {
      const msg = await sup.next();
      if (msg.type === 'StreamCredit') continue;
      assert.deepEqual(msg, { type: 'Response', id: digest.hex, value: { bytes: total, sum } });
      break;
    }
  });

  test(`${transport}: a request stream that fails, or overruns its credit, fails the handler`, async (t) => {
    const { sup, call } = await start(t, TEST_WORKER, { transport });
    const failing = request(sup, call, 'digest', null, { streamed: true });
    sup.send(ToWorker.streamData(failing.id, Buffer.from('abc')));
    sup.send(ToWorker.streamEnd(failing.id, { err: 'the caller dropped it' }));
    let msg = await sup.next('Failed');
    assert.equal(msg.id, failing.hex);
    assert.match(msg.message, /the caller dropped it/);

    // The handler reads nothing before `go`, so no credit is granted past the window.
    const overrun = request(sup, call, 'digest', { wait: true }, { streamed: true });
    for (let i = 0; i < 5; i++) sup.send(ToWorker.streamData(overrun.id, Buffer.alloc(65536)));
    assert.deepEqual(await sup.fence(1n), []);
    sup.send(ToWorker.event('go', null));
    msg = await sup.next('Failed');
    assert.equal(msg.id, overrun.hex);
    assert.match(msg.message, /327680 bytes of the request stream with 262144 bytes of credit/);
  });

  test(`${transport}: a response stream whose source fails ends with Err`, async (t) => {
    const { sup, call } = await start(t, TEST_WORKER, { transport });
    const broken = request(sup, call, 'broken_stream', { bytes: 10 });
    assert.deepEqual(await sup.next('ResponseStreamed'), { type: 'ResponseStreamed', id: broken.hex, value: 'partial' });
    assert.equal((await sup.next('StreamData')).data.length, 10);
    assert.deepEqual(await sup.next('StreamEnd'), {
      type: 'StreamEnd',
      id: broken.hex,
      outcome: { err: 'the disk went away' },
    });
  });

  test(`${transport}: a stream answered after the cancel is not sent, and its source is destroyed`, async (t) => {
    const { sup, call } = await start(t, TEST_WORKER, { transport });
    const late = request(sup, call, 'late_stream', null);
    assert.deepEqual(await sup.fence(1n), []);
    sup.send(ToWorker.cancel(late.id));
    assert.deepEqual(await sup.next('Emit'), { type: 'Emit', name: 'source_closed', value: null, replyTo: null });
    assert.deepEqual(await sup.fence(2n), []);
  });

  test(`${transport}: an answer over the frame limit fails the request instead`, async (t) => {
    const { sup, call } = await start(t, TEST_WORKER, { transport, env: { LPM_MAX_FRAME_LEN: '4096' } });
    const big = request(sup, call, 'big', { length: 5000 });
    const failed = await sup.next('Failed');
    assert.equal(failed.id, big.hex);
    assert.match(failed.message, /over the frame limit of 4096 bytes/);
    const small = request(sup, call, 'big', { length: 3 });
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: small.hex, value: 'xxx' });
  });

  test(`${transport}: the untyped handler serves call 0`, async (t) => {
    const { sup } = await start(t, TEST_WORKER, { transport });
    const { id, hex } = newId();
    sup.send(ToWorker.request(id, 0, [1, 2]));
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: hex, value: { untyped: [1, 2] } });
  });

  test(`${transport}: soft kill runs the hook, drains the requests in flight, then SoftKillDone and exit 0`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    const held = request(sup, call, 'sleep', { ms: 300 });
    assert.deepEqual(await sup.fence(1n), []);
    sup.send(ToWorker.softKill());
    assert.deepEqual(await sup.next('Emit'), { type: 'Emit', name: 'goodbye', value: null, replyTo: null });
    assert.deepEqual(await sup.next('Response'), { type: 'Response', id: held.hex, value: 300 });
    await sup.next('SoftKillDone');
    assert.deepEqual(await sup.waitExit(), { code: 0, signal: null });
  });

  test(`${transport}: hard kill exits at once, answering nothing`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    request(sup, call, 'sleep', { ms: 60000 });
    assert.deepEqual(await sup.fence(1n), []);
    sup.send(ToWorker.hardKill());
    assert.deepEqual(await sup.waitExit(), { code: 0, signal: null });
    assert.deepEqual(sup.inbox, []);
  });

  test(`${transport}: EOF of the channel ends the worker, even while a handler waits`, async (t) => {
    const { sup, call } = await start(t, CONFORMANCE, { transport });
    request(sup, call, 'sleep', { ms: 60000 });
    assert.deepEqual(await sup.fence(1n), []);
    sup.toWorker.end();
    assert.deepEqual(await sup.waitExit(), { code: 0, signal: null });
  });

  test(`${transport}: crash_once exits mid-request with status 3, then survives`, async (t) => {
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'lpm-node-')), 'marker');
    const first = await start(t, CONFORMANCE, { transport });
    request(first.sup, first.call, 'crash_once', { marker });
    assert.deepEqual(await first.sup.waitExit(), { code: 3, signal: null });
    assert.ok(fs.existsSync(marker));
    const second = await start(t, CONFORMANCE, { transport });
    const retry = request(second.sup, second.call, 'crash_once', { marker });
    assert.deepEqual(await second.sup.next('Response'), { type: 'Response', id: retry.hex, value: 'survived' });
  });

  test(`${transport}: a supervisor with another codec or version is refused, with the reason on stderr`, async (t) => {
    for (const [version, codec, reason] of [
      [4, 0, /codec is postcard.*Codec::Json/],
      [3, 1, /protocol version 3/],
    ]) {
      const sup = new Supervisor(CONFORMANCE, { transport });
      t.after(() => sup.kill());
      sup.send(ToWorker.hello(version, 0, codec));
      await sup.next('Hello');
      assert.deepEqual(await sup.waitExit(), { code: 1, signal: null });
      assert.match(sup.stderr, reason);
    }
  });

  test(`${transport}: a malformed frame ends the worker with status 1`, async (t) => {
    const { sup } = await start(t, CONFORMANCE, { transport });
    sup.send(Buffer.from([0x63]));
    assert.deepEqual(await sup.waitExit(), { code: 1, signal: null });
    assert.match(sup.stderr, /unknown ToWorker variant 99/);
  });
}

test('stdio: console.log and process.stdout.write go to stderr, not into the channel', async (t) => {
  const { sup, call } = await start(t, TEST_WORKER, { transport: 'stdio' });
  const printed = request(sup, call, 'print', 'a stray line');
  assert.deepEqual(await sup.next('Response'), { type: 'Response', id: printed.hex, value: 'printed' });
  assert.deepEqual(await sup.fence(1n), []);
  assert.equal(sup.stderr.split('a stray line').length - 1, 3, `stderr: ${sup.stderr}`);
});

test('stdio: a worker started from a terminal refuses to run', (t) => {
  const { spawnSync } = require('child_process');
  // `script` gives the child a terminal on stdin and stdout where it exists.
  const probe = spawnSync('script', ['-qec', 'true', '/dev/null']);
  if (probe.error || probe.status !== 0) {
    t.skip('no `script` command to give the worker a terminal');
    return;
  }
  const env = { ...process.env };
  delete env.LPM_IPC_FD;
  const run = spawnSync('script', ['-qec', `${process.execPath} ${CONFORMANCE}`, '/dev/null'], { env });
  assert.equal(run.status, 1);
  assert.match(run.stdout.toString(), /start it from an lpm pool/);
});
