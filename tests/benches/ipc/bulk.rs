//! W3: 1 MiB payloads echoed by one worker, one at a time and a few in
//! flight, in MB/s; against R3, the raw socketpair echoing 1 MiB messages
//! with the same number in flight (a writer thread and a reader thread, so
//! neither side waits for the other's buffer).

use lpm::Codec;

use crate::json::{throughput_json, Json};
use crate::measure::{median_round, Throughput};
use crate::params::Params;
use crate::pool::{
    bench_config, encoded_payload, start_pool, stop_pool, timed, window, Stretch, WorkerKind,
};
use crate::raw::{raw_throughput, Flow};
use crate::report::{ok, print_throughput, Row};
use crate::workload::{Section, Workload};
use crate::{lift, STEP_TIMEOUT};

/// Bytes of every W3 payload and R3 message.
pub(crate) const BULK_LEN: usize = 1 << 20;
/// Payloads in flight: sequential, and a small window.
const DEPTHS: [usize; 2] = [1, 4];

/// MB/s (10^6 bytes of payload echoed per second) of a rate of 1 MiB messages.
fn mb_per_sec(t: &Throughput) -> f64 {
    t.per_sec * BULK_LEN as f64 / 1e6
}

/// Rounds, by depth.
type RoundsByDepth = [Vec<Result<Throughput, String>>; 2];

/// The rounds of R3 and W3, by depth (and worker kind).
#[derive(Debug)]
pub(crate) struct BulkRuns {
    raw: Option<RoundsByDepth>,
    lpm: Vec<(WorkerKind, RoundsByDepth)>,
}

impl BulkRuns {
    /// R3 if `r3` runs, W3 against each worker kind if `w3` runs; `None` if neither.
    pub(crate) fn new(p: &Params, kinds: &[WorkerKind]) -> Option<Self> {
        let raw = p.runs("r3").then(Default::default);
        let lpm: Vec<_> = if p.runs("w3") {
            kinds.iter().map(|&k| (k, Default::default())).collect()
        } else {
            Vec::new()
        };
        (raw.is_some() || !lpm.is_empty()).then_some(Self { raw, lpm })
    }
}

impl Workload for BulkRuns {
    fn round(&mut self, p: &Params, _round: usize) {
        for (i, depth) in DEPTHS.into_iter().enumerate() {
            if let Some(raw) = &mut self.raw {
                eprintln!("  R3 raw 1 MiB echo, {depth} in flight ...");
                raw[i].push(lift(raw_throughput(Flow {
                    msg_len: BULK_LEN,
                    window: depth,
                    batched: true,
                    warm: p.bulk_warm,
                    measure: p.bulk_measure,
                })));
            }
            for (kind, runs) in &mut self.lpm {
                eprintln!("  W3 {} 1 MiB echo, {depth} in flight ...", kind.key());
                let run = actix_rt::System::new().block_on(lpm_bulk(*kind, depth, p));
                runs[i].push(run);
            }
        }
    }

    fn finish(self: Box<Self>) -> Box<dyn Section> {
        let medians = |name: &str, runs: RoundsByDepth| {
            let mut i = 0;
            runs.map(|r| {
                let label = format!("{name}, {} in flight", DEPTHS[i]);
                i += 1;
                median_round(&label, r)
            })
        };
        Box::new(BulkFigures {
            raw: self.raw.map(|r| medians("R3", r)),
            lpm: self
                .lpm
                .into_iter()
                .map(|(kind, runs)| (kind, medians(&format!("W3 {}", kind.key()), runs)))
                .collect(),
        })
    }
}

/// W3: 1 MiB untyped echoes through a one-worker pool, `depth` in flight.
async fn lpm_bulk(kind: WorkerKind, depth: usize, p: &Params) -> Result<Throughput, String> {
    let (pool, pids) = start_pool(kind, bench_config(1, Codec::Postcard)).await?;
    let payload = vec![0xA5u8; BULK_LEN];
    let expected = encoded_payload(Codec::Postcard, &payload);
    let stretch = Stretch {
        depth,
        warm: p.bulk_warm,
        measure: p.bulk_measure,
    };
    let run = window(stretch, &pids, || timed(&pool, &payload, &expected));
    let bound = p.bulk_warm + p.bulk_measure + STEP_TIMEOUT;
    let result = tokio::time::timeout(bound, run).await;
    stop_pool(&pool).await;
    result.map_err(|_| format!("W3 {} did not finish within {bound:?}", kind.key()))
}

/// Median rounds, by depth.
type ByDepth = [Option<Result<Throughput, String>>; 2];

/// The median rounds of R3 and W3.
#[derive(Debug)]
struct BulkFigures {
    raw: Option<ByDepth>,
    lpm: Vec<(WorkerKind, ByDepth)>,
}

impl Section for BulkFigures {
    fn rows(&self, rows: &mut Vec<Row>) {
        for (kind, lpm) in &self.lpm {
            for (i, depth) in DEPTHS.into_iter().enumerate() {
                let raw = self.raw.as_ref().and_then(|r| ok(&r[i]));
                rows.push(Row::vs(
                    format!("W3 1 MiB, {depth} in flight, {} vs R3", kind.key()),
                    "MB/s",
                    ok(&lpm[i]).map(mb_per_sec),
                    raw.map(mb_per_sec),
                    "raw socketpair",
                    "lpm/raw (fraction)",
                ));
            }
        }
    }

    fn print_details(&self) {
        for (i, depth) in DEPTHS.into_iter().enumerate() {
            if let Some(raw) = &self.raw {
                print_throughput(&format!("R3 raw 1 MiB, {depth} in flight"), &raw[i]);
            }
            for (kind, lpm) in &self.lpm {
                let name = format!("W3 {} 1 MiB, {depth} in flight", kind.key());
                print_throughput(&name, &lpm[i]);
            }
        }
    }

    fn json(&self) -> Vec<(&'static str, Json)> {
        let by_depth = |runs: &ByDepth| {
            Json::Arr(
                DEPTHS
                    .iter()
                    .zip(runs)
                    .map(|(&depth, r)| {
                        let mb = ok(r).map_or(Json::Null, |t| Json::Num(mb_per_sec(t)));
                        Json::Obj(vec![
                            ("in_flight", Json::Num(depth as f64)),
                            ("mb_per_sec", mb),
                            ("messages", throughput_json(r)),
                        ])
                    })
                    .collect(),
            )
        };
        let mut out = vec![("bulk_payload_bytes", Json::Num(BULK_LEN as f64))];
        if let Some(raw) = &self.raw {
            out.push(("r3_raw_bulk", by_depth(raw)));
        }
        if !self.lpm.is_empty() {
            let lpm = self
                .lpm
                .iter()
                .map(|(kind, runs)| {
                    Json::Obj(vec![
                        ("worker", Json::Str(kind.key().to_owned())),
                        ("by_in_flight", by_depth(runs)),
                    ])
                })
                .collect();
            out.push(("w3_bulk", Json::Arr(lpm)));
        }
        out
    }
}
