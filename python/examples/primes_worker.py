"""A small lpm worker in Python: it counts primes.

It serves the call ``count_primes`` (``CountPrimes { below: u64 }`` answering
``u64`` on the Rust side, as in tests/src/typed.rs) and reports how many
requests it served as a statistic. Start it from a pool with the JSON codec:

    let pool = Pool::start(
        WorkerCommand::new("python3").arg("python/examples/primes_worker.py"),
        Config::default().codec(Codec::Json),
    );
    let primes: u64 = pool.call(CountPrimes { below: 100 }).await?; // 25
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from lpm_worker import Worker  # noqa: E402

worker = Worker()
served = 0
served_lock = threading.Lock()  # handlers run on several threads


# A plain function: CPU-bound work runs on a worker thread, so the event loop
# still answers the supervisor's heartbeats (between the GIL's switches).
@worker.handle("count_primes")
def count_primes(args):
    global served
    below = args["below"]
    sieve = bytearray([1]) * max(below, 2)
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(below**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, below, n)))
    with served_lock:
        served += 1
        count = served
    worker.report_stats({"served": count})
    return sum(sieve[:below])


@worker.on_soft_kill
def goodbye():
    print(f"primes_worker {os.getpid()}: served {served} requests", file=sys.stderr)


if __name__ == "__main__":
    worker.run()
