'use strict';
// A worker for the library's own tests: request streams, stray output on
// stdout, answers over the frame limit, and an untyped handler.

const { Readable } = require('stream');
const { Worker } = require('../lpm-worker');

const worker = new Worker();
const go = new Promise((resolve) => worker.onEvent('go', resolve));

// Reads the whole request stream (after the event `go` with `{ wait: true }`);
// answers its length and the sum of its bytes.
worker.handle('digest', async (options, ctx) => {
  if (options?.wait) await go;
  let bytes = 0;
  let sum = 0;
  for await (const chunk of ctx.requestStream) {
    bytes += chunk.length;
    for (const byte of chunk) sum = (sum + byte) % 1000000007;
  }
  return { bytes, sum };
});

// Writes to stdout the ways a handler might; over stdio none of it may reach the channel.
worker.handle('print', (text) => {
  console.log(text);
  console.info(text);
  process.stdout.write(`${text}\n`);
  return 'printed';
});

// Answers a string of `length` characters.
worker.handle('big', ({ length }) => 'x'.repeat(length));

// Answers with a stream from a Readable that fails after `bytes` bytes.
worker.handle('broken_stream', ({ bytes }, ctx) => {
  async function* failing() {
    yield Buffer.alloc(bytes, 1);
    throw new Error('the disk went away');
  }
  return ctx.respondWithStream(failing(), 'partial');
});

// Waits for its cancel, then answers with a stream anyway; emits
// `source_closed` once the library has destroyed the unsent source.
worker.handle('late_stream', async (_value, ctx) => {
  await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
  const source = Readable.from([Buffer.from('never sent')]);
  source.on('close', () => worker.emit('source_closed', null));
  return ctx.respondWithStream(source, null);
});

worker.onRequest((value) => ({ untyped: value }));

worker.run();
