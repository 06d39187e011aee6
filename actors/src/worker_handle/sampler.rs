//! Samples one process's RSS and CPU with sysinfo.

use std::time::Duration;

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// RSS (bytes) and CPU (percent of one core, and time used) of one process.
#[derive(Debug)]
pub(crate) struct Sampler {
    system: Option<System>,
    pid: Pid,
    cpu_time: Duration,
}

impl Sampler {
    pub(crate) fn new(pid: u32) -> Self {
        let system = System::new()
            .inspect_err(|e| tracing::warn!(pid, error = %e, "cannot sample worker RSS/CPU"))
            .ok();
        Self {
            system,
            pid: Pid::from_u32(pid),
            cpu_time: Duration::ZERO,
        }
    }

    /// `(rss, cpu)`, or `None` once the process is gone. CPU is 0 on the first
    /// sample (it is measured between two samples).
    pub(crate) fn sample(&mut self) -> Option<(u64, f32)> {
        let system = self.system.as_mut()?;
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        let process = system.process(self.pid)?;
        self.cpu_time = Duration::from_millis(process.accumulated_cpu_time());
        Some((process.memory(), process.cpu_usage()))
    }

    /// The CPU time the process had used at the last sample that found it.
    pub(crate) fn cpu_time(&self) -> Duration {
        self.cpu_time
    }
}
