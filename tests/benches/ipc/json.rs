//! The results file: a tiny JSON writer, and the JSON of the shared figures.

use std::fmt::Write as _;

use crate::measure::{Costs, Latency, Throughput};

/// A tiny JSON value, enough for the results file.
#[derive(Debug, Clone)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    pub(crate) fn write(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent + 1);
        let close = "  ".repeat(indent);
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) if n.is_finite() => {
                let rounded = (n * 1e3).round() / 1e3;
                let _ = write!(out, "{rounded}");
            }
            Json::Num(_) => out.push_str("null"),
            Json::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    out.push_str(&pad);
                    item.write(out, indent + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (k, v)) in fields.iter().enumerate() {
                    let _ = write!(out, "{pad}\"{k}\": ");
                    v.write(out, indent + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                out.push_str(&close);
                out.push('}');
            }
        }
    }
}

pub(crate) fn num(n: f64) -> Json {
    Json::Num(n)
}

pub(crate) fn costs_json(c: &Costs) -> Json {
    Json::Obj(vec![
        ("parent_cpu_us_per_op", num(c.parent_cpu_us)),
        ("child_cpu_us_per_op", num(c.child_cpu_us)),
        ("parent_context_switches_per_op", num(c.parent_switches)),
        ("allocs_per_op_measuring_thread", num(c.allocs)),
    ])
}

pub(crate) fn latency_json(r: &Option<Result<Latency, String>>) -> Json {
    match r {
        None => Json::Null,
        Some(Err(e)) => Json::Obj(vec![("error", Json::Str(e.clone()))]),
        Some(Ok(l)) => Json::Obj(vec![
            (
                "p50_us_of_each_round",
                Json::Arr(l.rounds.iter().map(|&v| num(v)).collect()),
            ),
            ("samples", num(l.samples as f64)),
            ("errors", num(l.errors as f64)),
            ("p50_us", num(l.p50_us)),
            ("p99_us", num(l.p99_us)),
            ("mean_us", num(l.mean_us)),
            ("costs", costs_json(&l.costs)),
        ]),
    }
}

pub(crate) fn throughput_json(r: &Option<Result<Throughput, String>>) -> Json {
    match r {
        None => Json::Null,
        Some(Err(e)) => Json::Obj(vec![("error", Json::Str(e.clone()))]),
        Some(Ok(t)) => Json::Obj(vec![
            (
                "per_sec_of_each_round",
                Json::Arr(t.rounds.iter().map(|&v| num(v)).collect()),
            ),
            ("ops", num(t.ops as f64)),
            ("secs", num(t.secs)),
            ("per_sec", num(t.per_sec)),
            ("errors", num(t.errors as f64)),
            ("p50_us", t.p50_us.map_or(Json::Null, num)),
            ("p99_us", t.p99_us.map_or(Json::Null, num)),
            ("costs", costs_json(&t.costs)),
            (
                "parent_cpu_us_per_op_of_each_round",
                Json::Arr(t.round_costs.iter().map(|c| num(c.parent_cpu_us)).collect()),
            ),
            (
                "child_cpu_us_per_op_of_each_round",
                Json::Arr(t.round_costs.iter().map(|c| num(c.child_cpu_us)).collect()),
            ),
        ]),
    }
}
