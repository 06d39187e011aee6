//! [`Metrics`] in the Prometheus text format (version 0.0.4), written by
//! `prometheus-client`, the Prometheus project's own Rust client: it names
//! and types each metric by the conventions (`_total`, units in the name,
//! `le` buckets), escapes what must be, and has no global registry, so a
//! snapshot is encoded as it is without being copied into live metric objects.

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{Histogram, Metrics};
use crate::{WorkerHealth, WorkerState};

/// The `Content-Type` of what [`Metrics::to_prometheus`] writes:
/// `text/plain; version=0.0.4; charset=utf-8`.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The states every `lpm_workers{state=...}` series is written for, even at 0.
const STATES: [WorkerState; 6] = [
    WorkerState::Starting,
    WorkerState::Ready,
    WorkerState::Busy,
    WorkerState::Draining,
    WorkerState::Restarting,
    WorkerState::Stopped,
];

impl Metrics {
    /// The snapshot in the Prometheus text format (version 0.0.4, served as
    /// [`PROMETHEUS_CONTENT_TYPE`]), for a `/metrics` endpoint.
    ///
    /// | metric | type | labels |
    /// |---|---|---|
    /// | `lpm_requests_total` | counter | `outcome`: [`Outcome::as_str`](crate::Outcome::as_str) |
    /// | `lpm_retries_total` | counter | |
    /// | `lpm_timeouts_total` | counter | |
    /// | `lpm_restarts_total` | counter | `reason`: [`RestartReason::as_str`](crate::RestartReason::as_str) |
    /// | `lpm_recycles_total` | counter | |
    /// | `lpm_queue_depth` | gauge | |
    /// | `lpm_queue_depth_max` | gauge | |
    /// | `lpm_queue_wait_seconds` | histogram | |
    /// | `lpm_service_seconds` | histogram | |
    /// | `lpm_workers` | gauge | `state`: [`WorkerState::as_str`] |
    /// | `lpm_worker_rss_bytes` | gauge | `slot` |
    /// | `lpm_worker_cpu_seconds_total` | counter | `slot` (the current process's; it starts over with a new one) |
    /// | `lpm_worker_in_flight` | gauge | `slot` |
    ///
    /// Every outcome, reason and state is written, at 0 too, so each series
    /// exists from the first scrape. The histograms have buckets at 1, 2.5
    /// and 5 times each power of ten from 1 µs to 100 s.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(pool: lpm_actors::Pool) -> Result<(), lpm_actors::Error> {
    /// let text = pool.metrics().await?.to_prometheus();
    /// assert!(text.contains("# TYPE lpm_requests_total counter"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exposition(self.clone())));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String does not fail");
        text
    }
}

/// A snapshot as a collector: each scrape of the registry encodes it.
#[derive(Debug)]
struct Exposition(Metrics);

impl Collector for Exposition {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let m = &self.0;
        counters(
            &mut out,
            "lpm_requests",
            "Requests that ended, by outcome: served, cancelled, or the error kind.",
            None,
            "outcome",
            m.requests.iter().map(|(o, n)| (o.as_str(), n)),
        )?;
        counter(
            &mut out,
            "lpm_retries",
            "Attempts made beyond each request's first.",
            m.retries,
        )?;
        counter(
            &mut out,
            "lpm_timeouts",
            "Attempts that ran out of time, in the queue or on a worker.",
            m.timeouts,
        )?;
        counters(
            &mut out,
            "lpm_restarts",
            "Worker slots restarted, by reason.",
            None,
            "reason",
            m.restarts.iter().map(|(r, n)| (r.as_str(), n)),
        )?;
        counter(
            &mut out,
            "lpm_recycles",
            "Workers replaced by a successor at a recycling limit.",
            m.recycles,
        )?;
        gauge(
            &mut out,
            "lpm_queue_depth",
            "Requests waiting in the queue.",
            m.queue_depth as u64,
        )?;
        gauge(
            &mut out,
            "lpm_queue_depth_max",
            "The most requests that ever waited in the queue at once.",
            m.queue_depth_max as u64,
        )?;
        histogram(
            &mut out,
            "lpm_queue_wait",
            "Time requests waited before they were handed to a worker.",
            &m.queue_wait,
        )?;
        histogram(
            &mut out,
            "lpm_service",
            "Time from handing a request to its worker to its outcome.",
            &m.service_time,
        )?;
        let mut states: BTreeMap<&str, u64> = STATES.iter().map(|s| (s.as_str(), 0)).collect();
        for w in &m.workers {
            *states.entry(w.state.as_str()).or_default() += 1;
        }
        gauges(
            &mut out,
            "lpm_workers",
            "Worker slots, by state.",
            None,
            "state",
            states.into_iter(),
        )?;
        let slots =
            |value: fn(&WorkerHealth) -> u64| m.workers.iter().map(move |w| (w.slot, value(w)));
        gauges(
            &mut out,
            "lpm_worker_rss",
            "Resident memory of each slot's worker, from its last sample.",
            Some(&Unit::Bytes),
            "slot",
            slots(|w| w.rss),
        )?;
        counters(
            &mut out,
            "lpm_worker_cpu",
            "CPU time used by each slot's current worker process.",
            Some(&Unit::Seconds),
            "slot",
            m.workers.iter().map(|w| (w.slot, w.cpu_time.as_secs_f64())),
        )?;
        gauges(
            &mut out,
            "lpm_worker_in_flight",
            "Requests on each slot's worker.",
            None,
            "slot",
            slots(|w| w.in_flight as u64),
        )
    }
}

fn counter(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(out.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// A counter with one label, one series per value of it.
fn counters<L, V>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    label: &str,
    series: impl Iterator<Item = (L, V)>,
) -> fmt::Result
where
    L: prometheus_client::encoding::EncodeLabelValue,
    V: prometheus_client::encoding::EncodeCounterValue,
{
    let mut family = out.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (value, count) in series {
        let labels = [(label, value)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(out.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A gauge with one label, one series per value of it.
fn gauges<L>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    label: &str,
    series: impl Iterator<Item = (L, u64)>,
) -> fmt::Result
where
    L: prometheus_client::encoding::EncodeLabelValue,
{
    let mut family = out.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (value, level) in series {
        let labels = [(label, value)];
        ConstGauge::new(level).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn histogram(out: &mut DescriptorEncoder, name: &str, help: &str, h: &Histogram) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = h
        .coarse_buckets()
        .into_iter()
        .map(|(bound, n)| (bound.as_secs_f64(), n))
        .collect();
    let mut metric =
        out.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum().as_secs_f64(),
        h.count(),
        &buckets,
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{Recorder, RestartReason};
    use crate::ErrorKind;

    fn text() -> String {
        let recorder = Recorder::default();
        recorder.served();
        recorder.served();
        recorder.failed(ErrorKind::Timeout);
        recorder.timed_out();
        recorder.restarted(RestartReason::Crashed);
        recorder.waited(Duration::from_micros(3));
        recorder.serviced(Duration::from_millis(2));
        recorder.serviced(Duration::from_secs(200));
        let mut worker = WorkerHealth::down(3, 0, WorkerState::Ready);
        worker.rss = 1 << 20;
        worker.cpu_time = Duration::from_millis(1500);
        worker.in_flight = 2;
        Metrics::new(&recorder, 0, vec![worker]).to_prometheus()
    }

    fn has_line(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
    }

    #[test]
    fn counters_and_gauges_have_conventional_names_types_and_labels() {
        let text = text();
        has_line(&text, "# TYPE lpm_requests_total counter");
        has_line(&text, r#"lpm_requests_total{outcome="served"} 2"#);
        has_line(&text, r#"lpm_requests_total{outcome="timeout"} 1"#);
        has_line(&text, r#"lpm_requests_total{outcome="cancelled"} 0"#);
        has_line(&text, "lpm_timeouts_total 1");
        has_line(&text, "lpm_retries_total 0");
        has_line(&text, r#"lpm_restarts_total{reason="crashed"} 1"#);
        has_line(&text, "# TYPE lpm_queue_depth gauge");
        has_line(&text, r#"lpm_workers{state="ready"} 1"#);
        has_line(&text, r#"lpm_workers{state="stopped"} 0"#);
        has_line(&text, r#"lpm_worker_rss_bytes{slot="3"} 1048576"#);
        has_line(&text, "# TYPE lpm_worker_cpu_seconds_total counter");
        has_line(&text, r#"lpm_worker_cpu_seconds_total{slot="3"} 1.5"#);
        has_line(&text, r#"lpm_worker_in_flight{slot="3"} 2"#);
        has_line(&text, "lpm_queue_depth_max 0");
    }

    #[test]
    fn histograms_are_cumulative_in_seconds_up_to_inf() {
        let text = text();
        has_line(&text, "# TYPE lpm_service_seconds histogram");
        has_line(&text, r#"lpm_service_seconds_bucket{le="0.001"} 0"#);
        has_line(&text, r#"lpm_service_seconds_bucket{le="0.0025"} 1"#);
        has_line(&text, r#"lpm_service_seconds_bucket{le="100"} 1"#);
        has_line(&text, r#"lpm_service_seconds_bucket{le="+Inf"} 2"#);
        has_line(&text, "lpm_service_seconds_count 2");
        has_line(&text, "lpm_service_seconds_sum 200.002");
        has_line(&text, r#"lpm_queue_wait_seconds_bucket{le="2.5e-06"} 0"#);
        has_line(&text, r#"lpm_queue_wait_seconds_bucket{le="5e-06"} 1"#);
        has_line(&text, "lpm_queue_wait_seconds_count 1");
    }
}
