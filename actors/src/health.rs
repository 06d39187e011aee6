//! The per-worker health snapshot returned by [`Health`](crate::Health).

use std::time::Duration;

mod table;

pub use table::HealthTable;

/// Where a worker slot is in its life.
///
/// It displays and serializes as its lower-case name ([`WorkerState::as_str`]):
/// `"starting"`, `"ready"`, `"busy"`, `"draining"`, `"restarting"` or `"stopped"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkerState {
    /// Spawned, not yet ready.
    Starting,
    /// Takes requests.
    Ready,
    /// Said busy: gets no new requests until ready again.
    Busy,
    /// Finishing its requests before it exits (soft kill, resize).
    Draining,
    /// Dead, waiting for its restart.
    Restarting,
    /// Dead and not coming back (restart limit reached and no revival, or
    /// the pool stopped). A slot given up that will be revived
    /// ([`Config::revive_after`](crate::Config::revive_after)) shows `Restarting`.
    Stopped,
}

impl WorkerState {
    /// The state's lower-case name, e.g. `"ready"`: stable across releases,
    /// for metric labels, logs and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready => "ready",
            WorkerState::Busy => "busy",
            WorkerState::Draining => "draining",
            WorkerState::Restarting => "restarting",
            WorkerState::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for WorkerState {
    /// Writes [`WorkerState::as_str`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a worker's `rss` and `cpu` come from.
///
/// It serializes as its lower-case name (`"sampled"`, `"reported"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UsageSource {
    /// Sampled by the supervisor from the worker's process (`/proc`).
    #[default]
    Sampled,
    /// Reported by the worker itself when asked: a remote worker (its
    /// `Hello` names a pid other than the process the pool started, e.g.
    /// one behind `ssh`), whose process the supervisor cannot see.
    Reported,
}

/// Health of one worker slot.
///
/// It serializes as an object with the fields below, under the same names,
/// so a `/health` endpoint can answer `Json(pool.health().await?)` as is:
/// `uptime` in seconds (a float), `state` as its name (see [`WorkerState`]),
/// `stats` as an object of name to value (in the order the worker reported
/// them), and `pid` as `null` while no process runs.
///
/// ```json
/// {"slot": 0, "pid": 4242, "rss": 10485760, "cpu": 1.5, "cpu_time": 0.75,
///  "usage": "sampled", "in_flight": 2, "served": 120, "restarts": 0, "recycles": 0,
///  "quarantined": 0, "uptime": 12.25, "state": "ready", "stats": {"heap": 1024.0},
///  "sockets": 0, "target": 4}
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The slot.
    pub slot: usize,
    /// The current process, if one is running (for a remote worker, its
    /// launcher: the process the pool started).
    pub pid: Option<u32>,
    /// Resident set size in bytes, from the last sample or report.
    pub rss: u64,
    /// CPU use in percent of one core, from the last two samples or reports.
    pub cpu: f32,
    /// CPU time the current process has used (user and system), from the
    /// last sample (serialized in seconds).
    #[serde(serialize_with = "crate::error::secs")]
    pub cpu_time: Duration,
    /// Whether `rss` and `cpu` were sampled here or reported by the worker.
    pub usage: UsageSource,
    /// Requests assigned and not yet answered, or answered with a stream
    /// that has not ended yet.
    pub in_flight: usize,
    /// Requests this process has answered.
    pub served: u64,
    /// Times this slot was restarted.
    pub restarts: u32,
    /// Times this slot's worker was recycled at a limit (`Config::max_requests`, `Config::max_rss`).
    pub recycles: u32,
    /// Requests quarantined in this slot: each of their attempts killed a worker
    /// ([`Error::Quarantined`](crate::Error::Quarantined)).
    pub quarantined: u64,
    /// How long the current process has run (serialized in seconds).
    #[serde(serialize_with = "crate::error::secs")]
    pub uptime: Duration,
    /// The slot's state.
    pub state: WorkerState,
    /// Statistics the worker reported itself (`Worker::report_stats`)
    /// (serialized as an object of name to value; a name reported twice
    /// appears twice, and JSON readers keep the last).
    #[serde(serialize_with = "stats_as_map")]
    pub stats: Vec<(String, f64)>,
    /// Connections handed to this worker ([`Enqueue::tcp`](crate::Enqueue::tcp))
    /// that it has not closed yet.
    pub sockets: usize,
    /// How many workers the pool aims for now: [`Config::workers`](crate::Config::workers),
    /// as [`Resize`](crate::Resize) or the autoscaler
    /// ([`Config::autoscale`](crate::Config::autoscale)) last set it. The same in
    /// every slot's entry; while workers are being retired or started, the
    /// slots listed differ from it.
    pub target: usize,
}

impl WorkerHealth {
    pub(crate) fn down(slot: usize, restarts: u32, state: WorkerState) -> Self {
        Self {
            slot,
            pid: None,
            rss: 0,
            cpu: 0.0,
            cpu_time: Duration::ZERO,
            usage: UsageSource::Sampled,
            in_flight: 0,
            served: 0,
            restarts,
            recycles: 0,
            quarantined: 0,
            uptime: Duration::ZERO,
            state,
            sockets: 0,
            stats: Vec::new(),
            target: 0,
        }
    }
}

/// `[("heap", 1.0)]` as `{"heap": 1.0}`: what a JSON reader looks a statistic up by.
fn stats_as_map<S: serde::Serializer>(
    stats: &[(String, f64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(stats.iter().map(|(name, value)| (name, value)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn worker_health_serializes_with_uptime_in_seconds_and_stats_as_an_object() {
        let mut h = WorkerHealth::down(1, 2, WorkerState::Ready);
        h.pid = Some(4242);
        h.rss = 10 << 20;
        h.cpu = 1.5;
        h.cpu_time = Duration::from_millis(750);
        h.in_flight = 3;
        h.served = 120;
        h.recycles = 1;
        h.quarantined = 4;
        h.uptime = Duration::from_millis(12_250);
        h.stats = vec![("heap".into(), 1024.0), ("hits".into(), 7.0)];
        h.sockets = 5;
        h.target = 4;
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({
                "slot": 1,
                "pid": 4242,
                "rss": 10485760,
                "cpu": 1.5,
                "cpu_time": 0.75,
                "usage": "sampled",
                "in_flight": 3,
                "served": 120,
                "restarts": 2,
                "recycles": 1,
                "quarantined": 4,
                "uptime": 12.25,
                "state": "ready",
                "stats": {"heap": 1024.0, "hits": 7.0},
                "sockets": 5,
                "target": 4,
            })
        );
        // Stats keep the worker's order.
        let text = serde_json::to_string(&h).unwrap();
        assert!(
            text.contains(r#""stats":{"heap":1024.0,"hits":7.0}"#),
            "{text}"
        );
    }

    #[test]
    fn a_slot_without_a_process_has_a_null_pid() {
        let h = WorkerHealth::down(0, 5, WorkerState::Stopped);
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["pid"], json!(null));
        assert_eq!(v["uptime"], json!(0.0));
        assert_eq!(v["state"], json!("stopped"));
        assert_eq!(v["stats"], json!({}));
    }

    #[test]
    fn worker_state_displays_and_serializes_as_its_name() {
        for (state, name) in [
            (WorkerState::Starting, "starting"),
            (WorkerState::Ready, "ready"),
            (WorkerState::Busy, "busy"),
            (WorkerState::Draining, "draining"),
            (WorkerState::Restarting, "restarting"),
            (WorkerState::Stopped, "stopped"),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(serde_json::to_value(state).unwrap(), json!(name));
        }
    }
}
