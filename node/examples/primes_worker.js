'use strict';
// A worker for the Rust call `CountPrimes { below } -> u64` (the README's
// example) in a pool with the JSON codec:
//
//   Pool::start(WorkerCommand::new("node").arg("node/examples/primes_worker.js"),
//               Config::default().codec(Codec::Json))
//   let n: u64 = pool.call(CountPrimes { below: 100 }).await?;   // 25
//
// It counts in slices and yields to the event loop between them, so a long
// count still answers Ping and notices Cancel.

const { setImmediate: yieldToLoop } = require('timers/promises');
const { Worker } = require('../lpm-worker');

const SLICE = 10000;
const worker = new Worker();
let served = 0;

function isPrime(n) {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

worker.handle('count_primes', async ({ below }, ctx) => {
  let count = 0;
  for (let n = 0; n < below; n++) {
    if (isPrime(n)) count++;
    if (n % SLICE === SLICE - 1) {
      await yieldToLoop();
      ctx.signal.throwIfAborted();
    }
  }
  served++;
  if (served % 100 === 0) worker.reportStats({ served });
  return count;
});

worker.onSoftKill(() => console.error(`primes worker ${process.pid}: served ${served}, stopping`));

worker.run().then((slot) => console.error(`primes worker ${process.pid} serves slot ${slot}`));
