'use strict';
// The Node conformance worker: the calls, events and soft-kill hook of
// tests/conformance/SPEC.md, built on lpm-worker. The same Rust scenarios
// (tests/tests/conformance.rs) drive it and the Rust and Python workers.
//
//   node node/examples/conformance_worker.js

const fs = require('fs');
const { setTimeout: sleep } = require('timers/promises');
const { Worker } = require('../lpm-worker');

const worker = new Worker();
let remembered = null;

worker.handle('echo', (value) => value);

worker.handle('add', ({ a, b }) => a + b);

worker.handle('fail', ({ message }) => {
  throw new Error(message);
});

worker.handle('crash_once', ({ marker }) => {
  if (!fs.existsSync(marker)) {
    fs.writeFileSync(marker, `${process.pid}\n`);
    process.exit(3);
  }
  return 'survived';
});

worker.handle('sleep', async ({ ms }, ctx) => {
  try {
    await sleep(ms, undefined, { signal: ctx.signal });
  } catch (err) {
    if (!ctx.cancelled) throw err;
    worker.emit('cancelled', ms);
    return null;
  }
  return ms;
});

worker.handle('busy', async ({ ms }) => {
  worker.busy();
  await sleep(ms);
  worker.ready();
  return ms;
});

worker.handle('ask', ({ question }) => worker.ask('question', question));

worker.handle('recall', () => remembered);

worker.handle('report', ({ name, value }) => {
  worker.reportStats({ [name]: value });
  return null;
});

worker.handle('stream', ({ bytes }, ctx) => ctx.respondWithStream(pattern(bytes), bytes));

worker.handle('slot', () => ({ pid: process.pid, slot: worker.slot }));

worker.handle('trace', (_value, ctx) => ctx.trace);

worker.onEvent('remember', (value) => {
  remembered = value;
});

worker.onSoftKill(() => worker.emit('goodbye', null));

/** `total` bytes, byte i being i % 251, in chunks of 64 KiB. */
function* pattern(total) {
  const CHUNK = 65536;
  const base = Buffer.alloc(CHUNK + 251);
  for (let i = 0; i < base.length; i++) base[i] = i % 251;
  for (let start = 0; start < total; start += CHUNK) {
    const size = Math.min(CHUNK, total - start);
    const from = start % 251;
    yield base.subarray(from, from + size);
  }
}

worker.run();
