//! `typed_worker`: serves the typed calls of `lpm_tests::typed` with
//! `Worker::handle`, the typed events with `Worker::subscribe`, and echoes
//! untyped requests with `on_request` (in the pool's codec, whatever it is).
//!
//! * `--pin-json`: speaks JSON whatever the pool says (`Worker::from_env_with`),
//!   to show a codec mismatch at the handshake;
//! * `--without-reverse`: does not serve `Reverse`;
//! * `--log`: logs at INFO to stderr, with `tracing`'s fmt subscriber.

use lpm::worker::{CallContext, Request, Worker};
use lpm::Codec;
use lpm_tests::typed::{
    count_primes, AskTime, Cancelled, CountPrimes, Keys, Reload, Reloaded, Reverse, Summarise,
    Summary, WaitForCancel, Waiting, WhatTime, WhatTrace, TRACED_LINE,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lpm::WorkerError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    if flag("--log") {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    let worker = if flag("--pin-json") {
        Worker::from_env_with(Codec::Json).await?
    } else {
        Worker::from_env().await?
    };

    worker.handle(|c: CountPrimes, _: CallContext| async move { Ok(count_primes(c.below)) });
    if !flag("--without-reverse") {
        worker.handle(|Reverse(s): Reverse, _: CallContext| async move {
            Ok(s.chars().rev().collect::<String>())
        });
    }
    worker.handle(|Summarise(xs): Summarise, _: CallContext| async move {
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Ok(Summary {
            count: xs.len(),
            min,
            max,
        })
    });
    worker.handle(|Keys(value): Keys, _: CallContext| async move {
        let keys = value
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        Ok(keys)
    });
    let handle = worker.clone();
    worker.handle(move |_: WaitForCancel, ctx: CallContext| {
        let worker = handle.clone();
        async move {
            worker.publish(&Waiting { id: ctx.id() })?;
            ctx.cancelled().await;
            worker.publish(&Cancelled { id: ctx.id() })?;
            Ok(())
        }
    });
    worker.handle(|_: WhatTrace, ctx: CallContext| async move {
        tracing::info!("{TRACED_LINE}");
        Ok(ctx.trace_parent().map(|context| context.to_string()))
    });
    let handle = worker.clone();
    worker.handle(move |_: AskTime, _: CallContext| {
        let answer = handle.ask(&WhatTime);
        async move { Ok(answer.await?) }
    });

    let handle = worker.clone();
    worker.subscribe(move |reload: Reload| {
        let worker = handle.clone();
        async move {
            let _ = worker.publish(&Reloaded {
                pid: std::process::id(),
                config: reload.config,
            });
        }
    });

    worker.on_request(|req: Request| async move {
        let bytes = req.bytes().to_vec();
        req.respond_bytes(bytes)?;
        Ok(())
    });
    worker.ready();
    worker.run().await
}
