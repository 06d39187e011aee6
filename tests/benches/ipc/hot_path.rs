//! The hot path, as in the W1 and W2: sequential round trips
//! through a one-worker pool (W1, and W1c on one CPU), and a window of
//! requests in flight over a two-worker pool (W2 and its variants: decoded
//! answers, typed calls, the JSON codec).

use std::time::Instant;

use lpm::{Call, Codec, Pool};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf, Bytes};

use crate::measure::{median_round, Costs, Latency, Snapshot, Throughput};
use crate::one_cpu::on_one_cpu;
use crate::params::Params;
use crate::pool::{
    bench_config, encoded_payload, is_echo, start_pool, stop_pool, timed, window, Stretch,
    WorkerKind,
};
use crate::{MSG_LEN, STEP_TIMEOUT, WINDOW};
/// W2 and its variants: how the caller sends its requests, in which codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum W2Variant {
    /// W2: `Pool::enqueue` of the bytes, postcard.
    Untyped,
    /// W2d: W2, and the caller decodes each answer (`Response::data`), as a
    /// typed call does: the like-for-like baseline of W2t.
    UntypedDecoded,
    /// W2t: `Pool::call(Echo)`, the bytes held inline, postcard.
    Typed,
    /// W2tv: `Pool::call(EchoVec)`, the bytes in a `Vec`, postcard.
    TypedVec,
    /// W2j: W2 with the JSON codec.
    Json,
    /// W2tj: W2t with the JSON codec.
    TypedJson,
    /// W2s: W2 with a `tracing` subscriber that listens at INFO, so not to
    /// the requests' DEBUG spans: what a service's usual logging costs lpm.
    Subscribed,
    /// W2tr: W2 with the requests' spans on (`lpm::request=debug`, written
    /// by the fmt subscriber to nowhere): what tracing every request costs.
    Traced,
}

impl W2Variant {
    pub(crate) const ALL: [W2Variant; 8] = [
        W2Variant::Untyped,
        W2Variant::UntypedDecoded,
        W2Variant::Typed,
        W2Variant::TypedVec,
        W2Variant::Json,
        W2Variant::TypedJson,
        W2Variant::Subscribed,
        W2Variant::Traced,
    ];

    /// Its name in `LPM_BENCH_ONLY`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            W2Variant::Untyped => "w2",
            W2Variant::UntypedDecoded => "w2d",
            W2Variant::Typed => "w2t",
            W2Variant::TypedVec => "w2tv",
            W2Variant::Json => "w2j",
            W2Variant::TypedJson => "w2tj",
            W2Variant::Subscribed => "w2s",
            W2Variant::Traced => "w2tr",
        }
    }

    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            W2Variant::Untyped => "W2",
            W2Variant::UntypedDecoded => "W2d",
            W2Variant::Typed => "W2t",
            W2Variant::TypedVec => "W2tv",
            W2Variant::Json => "W2j",
            W2Variant::TypedJson => "W2tj",
            W2Variant::Subscribed => "W2s",
            W2Variant::Traced => "W2tr",
        }
    }

    /// What it sends, for the report.
    pub(crate) fn what(self) -> &'static str {
        match self {
            W2Variant::Untyped => "untyped, postcard",
            W2Variant::UntypedDecoded => "untyped, answer decoded, postcard",
            W2Variant::Typed => "typed, postcard",
            W2Variant::TypedVec => "typed ByteBuf, postcard",
            W2Variant::Json => "untyped, JSON",
            W2Variant::TypedJson => "typed, JSON",
            W2Variant::Subscribed => "untyped, a subscriber at INFO",
            W2Variant::Traced => "untyped, request spans on",
        }
    }

    /// Its key in the JSON results.
    pub(crate) fn json_key(self) -> &'static str {
        match self {
            W2Variant::Untyped => "w2_throughput",
            W2Variant::UntypedDecoded => "w2d_throughput_decoded",
            W2Variant::Typed => "w2t_throughput_typed",
            W2Variant::TypedVec => "w2tv_throughput_typed_bytebuf",
            W2Variant::Json => "w2j_throughput_json",
            W2Variant::TypedJson => "w2tj_throughput_typed_json",
            W2Variant::Subscribed => "w2s_throughput_subscriber_at_info",
            W2Variant::Traced => "w2tr_throughput_traced",
        }
    }

    pub(crate) fn codec(self) -> Codec {
        match self {
            W2Variant::Json | W2Variant::TypedJson => Codec::Json,
            _ => Codec::Postcard,
        }
    }

    /// Whether it can run against `kind`: `raw_echo` serves no typed call
    /// and announces postcard only.
    pub(crate) fn runs_on(self, kind: WorkerKind) -> bool {
        matches!(self, W2Variant::Untyped | W2Variant::UntypedDecoded)
            || kind == WorkerKind::Runtime
    }

    /// The subscriber the run is made under, if any (the supervisor's
    /// side; the workers log nothing).
    pub(crate) fn subscriber(self) -> Option<tracing::Dispatch> {
        let filter = match self {
            W2Variant::Subscribed => "info",
            W2Variant::Traced => "info,lpm::request=debug",
            _ => return None,
        };
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::sink)
            .finish();
        Some(tracing::Dispatch::new(subscriber))
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The typed echo as W2t's caller declares it: the wire name and encoding
/// of `bench_echo`'s `Echo(ByteBuf)` (bytes: a length and the bytes in
/// postcard, an array of numbers in JSON), the bytes held inline.
#[derive(Serialize, Deserialize)]
pub(crate) struct Echo(ByteArray<MSG_LEN>);

impl Call for Echo {
    const NAME: &'static str = "echo";
    type Reply = ByteArray<MSG_LEN>;
}

/// The same call with `bench_echo`'s own types, the bytes in a `Vec` (W2tv).
#[derive(Serialize, Deserialize)]
pub(crate) struct EchoVec(ByteBuf);

impl Call for EchoVec {
    const NAME: &'static str = "echo";
    type Reply = ByteBuf;
}

/// W1: sequential round trips through a one-worker pool.
pub(crate) async fn lpm_latency(kind: WorkerKind, p: &Params) -> Result<Latency, String> {
    let (pool, pids) = start_pool(kind, bench_config(1, Codec::Postcard)).await?;
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let run = async {
        let mut errors = 0;
        for _ in 0..p.warm_iters {
            let r = pool.enqueue(Bytes::new(&payload)).await;
            errors += u64::from(!is_echo(&r, &expected));
        }
        let mut samples = Vec::with_capacity(p.latency_iters);
        let before = Snapshot::start(&pids);
        let deadline = before.at + p.latency_max;
        for _ in 0..p.latency_iters {
            let start = Instant::now();
            if start >= deadline {
                break;
            }
            let r = pool.enqueue(Bytes::new(&payload)).await;
            samples.push(start.elapsed().as_nanos() as u64);
            errors += u64::from(!is_echo(&r, &expected));
        }
        let after = Snapshot::end(&pids);
        let costs = Costs::between(&before, &after, samples.len() as u64);
        Latency::from_samples(samples, errors, costs)
    };
    let bound = p.latency_max + STEP_TIMEOUT;
    let result = tokio::time::timeout(bound, run).await;
    stop_pool(&pool).await;
    result.map_err(|_| format!("W1 {} did not finish within {bound:?}", kind.key()))
}

/// One timed untyped request whose answer is decoded, as W2t's is (W2d).
pub(crate) async fn timed_decoded(pool: &Pool, payload: &[u8; MSG_LEN]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.enqueue(Bytes::new(payload)).await;
    let back = r.and_then(|r| r.data::<ByteArray<MSG_LEN>>());
    let ns = start.elapsed().as_nanos() as u64;
    (
        ns,
        matches!(back, Ok(back) if back.into_array() == *payload),
    )
}

/// One timed typed call, the bytes inline (W2t, W2tj).
pub(crate) async fn timed_call(pool: &Pool, payload: &[u8; MSG_LEN]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.call(Echo(ByteArray::new(*payload))).await;
    let ns = start.elapsed().as_nanos() as u64;
    (ns, matches!(r, Ok(back) if back.into_array() == *payload))
}

/// One timed typed call, the bytes in a `Vec` (W2tv).
pub(crate) async fn timed_call_vec(pool: &Pool, payload: &[u8]) -> (u64, bool) {
    let start = Instant::now();
    let r = pool.call(EchoVec(ByteBuf::from(payload))).await;
    let ns = start.elapsed().as_nanos() as u64;
    (ns, matches!(r, Ok(back) if back.as_slice() == payload))
}

/// W2 and its variants: `WINDOW` requests in flight over a two-worker pool.
pub(crate) async fn lpm_throughput(
    kind: WorkerKind,
    variant: W2Variant,
    p: &Params,
) -> Result<Throughput, String> {
    let codec = variant.codec();
    let (pool, pids) = start_pool(kind, bench_config(2, codec)).await?;
    let stretch = Stretch {
        depth: WINDOW,
        warm: p.lpm_warm,
        measure: p.lpm_measure,
    };
    let payload = [0xA5u8; MSG_LEN];
    let expected = encoded_payload(codec, &payload);
    // One loop, monomorphised per kind of request: no dynamic call per request.
    let run = async {
        match variant {
            W2Variant::Untyped | W2Variant::Json | W2Variant::Subscribed | W2Variant::Traced => {
                window(stretch, &pids, || timed(&pool, &payload, &expected)).await
            }
            W2Variant::UntypedDecoded => {
                window(stretch, &pids, || timed_decoded(&pool, &payload)).await
            }
            W2Variant::Typed | W2Variant::TypedJson => {
                window(stretch, &pids, || timed_call(&pool, &payload)).await
            }
            W2Variant::TypedVec => window(stretch, &pids, || timed_call_vec(&pool, &payload)).await,
        }
    };
    let bound = p.lpm_warm + p.lpm_measure + STEP_TIMEOUT;
    let result = tokio::time::timeout(bound, run).await;
    stop_pool(&pool).await;
    result.map_err(|_| {
        format!(
            "{} {} did not finish within {bound:?}",
            variant.name(),
            kind.key()
        )
    })
}

#[derive(Debug, Default)]
pub(crate) struct LpmFigures {
    pub(crate) latency: Option<Result<Latency, String>>,
    /// W2 and its variants, by `W2Variant::index`.
    pub(crate) throughput: [Option<Result<Throughput, String>>; W2Variant::ALL.len()],
    /// W1 on one CPU.
    pub(crate) latency_one_cpu: Option<Result<Latency, String>>,
}

impl LpmFigures {
    pub(crate) fn w2(&self, variant: W2Variant) -> &Option<Result<Throughput, String>> {
        &self.throughput[variant.index()]
    }
}

/// The rounds of W1, W2 (and its variants) and W1c for one worker kind.
#[derive(Debug, Default)]
pub(crate) struct LpmRuns {
    pub(crate) latency: Vec<Result<Latency, String>>,
    pub(crate) throughput: [Vec<Result<Throughput, String>>; W2Variant::ALL.len()],
    pub(crate) latency_one_cpu: Vec<Result<Latency, String>>,
}

impl LpmRuns {
    /// One round (`round` counts from 1) of W1, W2 and its variants, and
    /// W1c, each in a fresh actix System. The W2 variants take turns going
    /// first, so that none always runs right after another.
    pub(crate) fn round(&mut self, kind: WorkerKind, p: &Params, round: usize) {
        if p.runs("w1") {
            eprintln!("  W1 {} ...", kind.key());
            let run = actix_rt::System::new().block_on(lpm_latency(kind, p));
            self.latency.push(run);
        }
        let variants: Vec<W2Variant> = W2Variant::ALL
            .into_iter()
            .filter(|v| v.runs_on(kind) && p.runs(v.key()))
            .collect();
        for i in 0..variants.len() {
            let variant = variants[(i + round - 1) % variants.len()];
            eprintln!(
                "  {} {} ({}) ...",
                variant.name(),
                kind.key(),
                variant.what()
            );
            let run = || actix_rt::System::new().block_on(lpm_throughput(kind, variant, p));
            let run = match variant.subscriber() {
                Some(subscriber) => tracing::dispatcher::with_default(&subscriber, run),
                None => run(),
            };
            self.throughput[variant.index()].push(run);
        }
        if p.runs("w1c") {
            eprintln!("  W1c {} (one CPU) ...", kind.key());
            let run = on_one_cpu(|| actix_rt::System::new().block_on(lpm_latency(kind, p)));
            self.latency_one_cpu
                .push(run.map_err(|e| e.to_string()).and_then(|r| r));
        }
    }

    pub(crate) fn medians(mut self, kind: WorkerKind) -> LpmFigures {
        let k = kind.key();
        LpmFigures {
            latency: median_round(&format!("W1 {k}"), self.latency),
            throughput: W2Variant::ALL.map(|v| {
                let runs = std::mem::take(&mut self.throughput[v.index()]);
                median_round(&format!("{} {k}", v.name()), runs)
            }),
            latency_one_cpu: median_round(&format!("W1c {k}"), self.latency_one_cpu),
        }
    }

    /// Whether any of these workloads runs against `kind`.
    pub(crate) fn any(kind: WorkerKind, p: &Params) -> bool {
        p.uses(kind)
            && (p.runs("w1")
                || p.runs("w1c")
                || W2Variant::ALL
                    .iter()
                    .any(|v| v.runs_on(kind) && p.runs(v.key())))
    }
}
