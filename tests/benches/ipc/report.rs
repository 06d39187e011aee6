//! The report: the summary table (each workload against its baseline),
//! the details of every figure, and the JSON results file.

use std::thread;

use lpm::Codec;

use crate::hot_path::{LpmFigures, W2Variant};
use crate::json::{latency_json, num, throughput_json, Json};
use crate::measure::{paired_ratio, spread, Figure, Latency, Throughput};
use crate::params::Params;
use crate::pool::{encoded_payload, WorkerKind};
use crate::workload::Section;
use crate::{MSG_LEN, WINDOW};

/// The machine the run is on.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) kernel: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load when the run started: on a
    /// shared machine, what else was running.
    pub(crate) load_at_start: String,
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

impl Machine {
    /// Reads `/proc` and the CPU count.
    pub(crate) fn probe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Self {
            nproc: thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            kernel,
            load_at_start: load_average(),
        }
    }
}

/// One row of the comparison table.
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) lpm: Option<f64>,
    /// The figure compared with: the raw baseline's, or W2's for its variants.
    pub(crate) base: Option<f64>,
    /// What `base` is.
    pub(crate) base_is: &'static str,
    pub(crate) unit: &'static str,
    /// `lpm / base`: for latency, how many times slower; for throughput,
    /// the fraction of the baseline's rate; for CPU, how many times more.
    pub(crate) ratio: Option<f64>,
    /// The same ratio per round, paired (see `paired_ratio`), the median of them.
    pub(crate) paired: Option<f64>,
    pub(crate) ratio_note: &'static str,
}

impl Row {
    /// A row of `lpm` against `base`, the ratio `lpm / base` described by `ratio_note`.
    pub(crate) fn vs(
        workload: String,
        unit: &'static str,
        lpm: Option<f64>,
        base: Option<f64>,
        base_is: &'static str,
        ratio_note: &'static str,
    ) -> Self {
        Self {
            workload,
            lpm,
            base,
            base_is,
            unit,
            ratio: lpm.zip(base).map(|(l, b)| l / b),
            paired: None,
            ratio_note,
        }
    }

    /// A row with no baseline.
    pub(crate) fn alone(workload: String, unit: &'static str, lpm: Option<f64>) -> Self {
        Self::vs(workload, unit, lpm, None, "-", "-")
    }
}

/// The p50 and p99 rows of one latency workload against its raw baseline.
pub(crate) fn latency_rows(
    rows: &mut Vec<Row>,
    workload: &str,
    label: &str,
    lpm: Option<&Latency>,
    raw: Option<&Latency>,
) {
    for (what, pick) in [
        ("p50", (|l: &Latency| l.p50_us) as fn(&Latency) -> f64),
        ("p99", |l: &Latency| l.p99_us),
    ] {
        let (lpm, raw) = (lpm.map(pick), raw.map(pick));
        rows.push(Row {
            workload: format!("{workload} {what} {label}"),
            lpm,
            base: raw,
            base_is: "raw socketpair",
            unit: "us",
            ratio: lpm.zip(raw).map(|(l, r)| l / r),
            paired: None,
            ratio_note: "lpm/raw (x slower)",
        });
    }
}

pub(crate) fn ok<T>(r: &Option<Result<T, String>>) -> Option<&T> {
    r.as_ref().and_then(|r| r.as_ref().ok())
}

pub(crate) fn fmt_spread(figure: &impl Figure) -> String {
    spread(figure).map_or("-".to_owned(), |s| format!("{s:.0}%"))
}

pub(crate) fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) if matches!(unit, "req/s" | "msg/s" | "MB/s" | "B") => format!("{v:.0} {unit}"),
        Some(v) => format!("{v:.2} {unit}"),
        None => "-".to_owned(),
    }
}

/// One line of the details table: a latency figure.
pub(crate) fn print_latency(name: &str, r: &Option<Result<Latency, String>>) {
    match r {
        None => {}
        Some(Err(e)) => println!("{name:<36} FAILED: {e}"),
        Some(Ok(l)) => println!(
            "{:<36} {:>12} {:>7} {:>9.2} {:>9.2} {:>7} {:>11.2} {:>10.2} {:>9.2} {:>8.1}",
            name,
            format!("{} rt", l.samples),
            fmt_spread(l),
            l.p50_us,
            l.p99_us,
            l.errors,
            l.costs.parent_cpu_us,
            l.costs.child_cpu_us,
            l.costs.parent_switches,
            l.costs.allocs
        ),
    }
}

/// One line of the details table: a throughput figure.
pub(crate) fn print_throughput(name: &str, r: &Option<Result<Throughput, String>>) {
    match r {
        None => {}
        Some(Err(e)) => println!("{name:<36} FAILED: {e}"),
        Some(Ok(t)) => println!(
            "{:<36} {:>12} {:>7} {:>9} {:>9} {:>7} {:>11.2} {:>10.2} {:>9.2} {:>8.1}",
            name,
            format!("{:.0}/s", t.per_sec),
            fmt_spread(t),
            t.p50_us.map_or("-".to_owned(), |v| format!("{v:.1}")),
            t.p99_us.map_or("-".to_owned(), |v| format!("{v:.1}")),
            t.errors,
            t.costs.parent_cpu_us,
            t.costs.child_cpu_us,
            t.costs.parent_switches,
            t.costs.allocs
        ),
    }
}

/// Everything one run measured.
pub(crate) struct Results {
    pub(crate) machine: Machine,
    pub(crate) params: Params,
    pub(crate) r1: Option<Result<Latency, String>>,
    pub(crate) r1c: Option<Result<Latency, String>>,
    pub(crate) r2: Option<Result<Throughput, String>>,
    pub(crate) r2u: Option<Result<Throughput, String>>,
    pub(crate) lpm: Vec<(WorkerKind, LpmFigures)>,
    /// The workloads beside the hot path, in the order they ran.
    pub(crate) sections: Vec<Box<dyn Section>>,
}

impl Results {
    pub(crate) fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let r1 = ok(&self.r1);
        let r2 = ok(&self.r2);
        let r2u = ok(&self.r2u);
        for (kind, f) in &self.lpm {
            let name = kind.key();
            if f.latency.is_some() {
                let label = format!("round trip, {name} vs R1");
                latency_rows(&mut rows, "W1", &label, ok(&f.latency), r1);
            }
            if f.latency_one_cpu.is_some() {
                let label = format!("round trip 1 CPU, {name} vs R1c");
                latency_rows(
                    &mut rows,
                    "W1c",
                    &label,
                    ok(&f.latency_one_cpu),
                    ok(&self.r1c),
                );
            }
            let w2 = ok(f.w2(W2Variant::Untyped));
            if f.w2(W2Variant::Untyped).is_some() {
                for (what, raw) in [("R2 batched", r2), ("R2u 1 write/msg", r2u)] {
                    let lpm = w2.map(|t| t.per_sec);
                    let raw = raw.map(|t| t.per_sec);
                    rows.push(Row {
                        workload: format!("W2 throughput, {name} vs {what}"),
                        lpm,
                        base: raw,
                        base_is: "raw socketpair",
                        unit: "req/s",
                        ratio: lpm.zip(raw).map(|(l, r)| l / r),
                        paired: None,
                        ratio_note: "lpm/raw (fraction)",
                    });
                }
            }
            // The variants against W2 of the same run: rate, and supervisor CPU per request.
            for variant in W2Variant::ALL.into_iter().skip(1) {
                if f.w2(variant).is_none() {
                    continue;
                }
                let v = ok(f.w2(variant));
                let n = variant.name();
                type Pick = fn(&Throughput) -> f64;
                type PickRounds = fn(&Throughput) -> Vec<f64>;
                for (what, unit, pick, rounds, note) in [
                    (
                        "throughput",
                        "req/s",
                        (|t: &Throughput| t.per_sec) as Pick,
                        (|t: &Throughput| t.rounds.clone()) as PickRounds,
                        "W2x/W2 (fraction)",
                    ),
                    (
                        "supervisor CPU/req",
                        "us",
                        |t: &Throughput| t.costs.parent_cpu_us,
                        |t: &Throughput| t.round_costs.iter().map(|c| c.parent_cpu_us).collect(),
                        "W2x/W2 (x CPU)",
                    ),
                    (
                        "worker CPU/req",
                        "us",
                        |t: &Throughput| t.costs.child_cpu_us,
                        |t: &Throughput| t.round_costs.iter().map(|c| c.child_cpu_us).collect(),
                        "W2x/W2 (x CPU)",
                    ),
                ] {
                    let (lpm, base) = (v.map(pick), w2.map(pick));
                    rows.push(Row {
                        workload: format!("{n} {what}, {name} vs W2"),
                        lpm,
                        base,
                        base_is: "W2 of this run",
                        unit,
                        ratio: lpm.zip(base).map(|(l, b)| l / b),
                        paired: v
                            .zip(w2)
                            .and_then(|(v, w2)| paired_ratio(&rounds(v), &rounds(w2))),
                        ratio_note: note,
                    });
                }
            }
        }
        for section in &self.sections {
            section.rows(&mut rows);
        }
        rows
    }

    pub(crate) fn print(&self) {
        let m = &self.machine;
        println!();
        println!(
            "lpm IPC benchmark ({} run): {} | nproc {} | Linux {}",
            if self.params.quick { "QUICK" } else { "full" },
            m.cpu,
            m.nproc,
            m.kernel
        );
        println!(
            "load average at start {}, at end {}",
            m.load_at_start,
            load_average()
        );
        println!("payload {MSG_LEN} B; W2/R2 window {WINDOW} in flight; W2 uses 2 workers");
        println!(
            "encoded payload: postcard {} B, JSON {} B (serde_bytes in JSON is an array of numbers)",
            encoded_payload(Codec::Postcard, &[0xA5; MSG_LEN]).len(),
            encoded_payload(Codec::Json, &[0xA5; MSG_LEN]).len()
        );
        println!();
        println!(
            "{:<60} {:>14} {:>14} {:>8} {:>8}  ratio is",
            "workload", "lpm", "baseline", "ratio", "paired"
        );
        println!("{}", "-".repeat(129));
        for row in self.rows() {
            println!(
                "{:<60} {:>14} {:>14} {:>8} {:>8}  {}",
                row.workload,
                fmt_opt(row.lpm, row.unit),
                fmt_opt(row.base, row.unit),
                row.ratio.map_or("-".to_owned(), |r| format!("{r:.3}")),
                row.paired.map_or("-".to_owned(), |r| format!("{r:.3}")),
                row.ratio_note
            );
        }
        println!(
            "(ratio: of the median rounds; paired: the median over rounds of each round's ratio)"
        );
        println!();
        println!(
            "details ({} round(s) per workload, median round shown; spread = (max-min)/median of the rounds'",
            self.params.rounds
        );
        println!("p50 or rate. Per op: parent/child us = CPU of this process (supervisor side, or the raw writer and");
        println!("reader) / of the worker or echo processes; ctxsw = this process's context switches; allocs = on the");
        println!("measuring thread, for lpm the actix thread that runs every actor and the calling loop)");
        println!(
            "{:<36} {:>12} {:>7} {:>9} {:>9} {:>7} {:>11} {:>10} {:>9} {:>8}",
            "figure",
            "value",
            "spread",
            "p50 us",
            "p99 us",
            "errors",
            "parent us",
            "child us",
            "ctxsw",
            "allocs"
        );
        print_latency("R1 raw latency", &self.r1);
        print_latency("R1c raw latency, 1 CPU", &self.r1c);
        print_throughput("R2 raw batched", &self.r2);
        print_throughput("R2u raw 1 write/msg", &self.r2u);
        for (kind, f) in &self.lpm {
            print_latency(&format!("W1 {}", kind.label()), &f.latency);
            print_latency(&format!("W1c {}, 1 CPU", kind.key()), &f.latency_one_cpu);
            print_throughput(&format!("W2 {}", kind.label()), f.w2(W2Variant::Untyped));
            for variant in W2Variant::ALL.into_iter().skip(1) {
                let name = format!("{} {}, {}", variant.name(), kind.key(), variant.what());
                print_throughput(&name, f.w2(variant));
            }
        }
        for section in &self.sections {
            section.print_details();
        }
        println!();
    }

    pub(crate) fn json(&self) -> String {
        let m = &self.machine;
        let p = &self.params;
        let lpm = self
            .lpm
            .iter()
            .map(|(kind, f)| {
                let mut fields = vec![
                    ("worker", Json::Str(kind.key().to_owned())),
                    ("binary", Json::Str(kind.label().to_owned())),
                    ("w1_latency", latency_json(&f.latency)),
                ];
                for variant in W2Variant::ALL {
                    fields.push((variant.json_key(), throughput_json(f.w2(variant))));
                }
                fields.push(("w1c_latency_one_cpu", latency_json(&f.latency_one_cpu)));
                Json::Obj(fields)
            })
            .collect();
        let rows = self
            .rows()
            .into_iter()
            .map(|r| {
                Json::Obj(vec![
                    ("workload", Json::Str(r.workload)),
                    ("unit", Json::Str(r.unit.to_owned())),
                    ("lpm", r.lpm.map_or(Json::Null, num)),
                    ("baseline", r.base.map_or(Json::Null, num)),
                    ("baseline_is", Json::Str(r.base_is.to_owned())),
                    ("ratio", r.ratio.map_or(Json::Null, num)),
                    ("paired_ratio", r.paired.map_or(Json::Null, num)),
                    ("ratio_is", Json::Str(r.ratio_note.to_owned())),
                ])
            })
            .collect();
        let mut fields = vec![
            (
                "machine",
                Json::Obj(vec![
                    ("nproc", num(m.nproc as f64)),
                    ("cpu", Json::Str(m.cpu.clone())),
                    ("kernel", Json::Str(m.kernel.clone())),
                    ("load_average_at_start", Json::Str(m.load_at_start.clone())),
                    ("load_average_at_end", Json::Str(load_average())),
                ]),
            ),
            (
                "params",
                Json::Obj(vec![
                    ("quick", Json::Bool(p.quick)),
                    ("payload_bytes", num(MSG_LEN as f64)),
                    (
                        "payload_bytes_postcard",
                        num(encoded_payload(Codec::Postcard, &[0xA5; MSG_LEN]).len() as f64),
                    ),
                    (
                        "payload_bytes_json",
                        num(encoded_payload(Codec::Json, &[0xA5; MSG_LEN]).len() as f64),
                    ),
                    ("window", num(WINDOW as f64)),
                    ("rounds", num(p.rounds as f64)),
                    ("latency_iters", num(p.latency_iters as f64)),
                    ("raw_measure_secs", num(p.raw_measure.as_secs_f64())),
                    ("lpm_measure_secs", num(p.lpm_measure.as_secs_f64())),
                    ("bulk_measure_secs", num(p.bulk_measure.as_secs_f64())),
                    ("respawn_reps", num(p.respawn_reps as f64)),
                    (
                        "pool_sizes",
                        Json::Arr(p.pool_sizes.iter().map(|&n| num(n as f64)).collect()),
                    ),
                    ("scale_measure_secs", num(p.scale_measure.as_secs_f64())),
                    ("online_reps", num(p.online_reps as f64)),
                    ("storm_measure_secs", num(p.storm_measure.as_secs_f64())),
                    ("queued_requests", num(p.queued_requests as f64)),
                ]),
            ),
            ("r1_raw_latency", latency_json(&self.r1)),
            ("r1c_raw_latency_one_cpu", latency_json(&self.r1c)),
            ("r2_raw_batched", throughput_json(&self.r2)),
            ("r2u_raw_unbatched", throughput_json(&self.r2u)),
            ("lpm", Json::Arr(lpm)),
        ];
        for section in &self.sections {
            fields.extend(section.json());
        }
        fields.push(("table", Json::Arr(rows)));
        let doc = Json::Obj(fields);
        let mut out = String::new();
        doc.write(&mut out, 0);
        out.push('\n');
        out
    }
}
