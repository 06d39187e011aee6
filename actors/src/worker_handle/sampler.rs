//! Samples one process's RSS and CPU with sysinfo.

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// RSS (bytes) and CPU (percent of one core) of one process.
#[derive(Debug)]
pub(crate) struct Sampler {
    system: Option<System>,
    pid: Pid,
}

impl Sampler {
    pub(crate) fn new(pid: u32) -> Self {
        let system = System::new()
            .inspect_err(|e| tracing::warn!(pid, error = %e, "cannot sample worker RSS/CPU"))
            .ok();
        Self {
            system,
            pid: Pid::from_u32(pid),
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
        system
            .process(self.pid)
            .map(|p| (p.memory(), p.cpu_usage()))
    }
}
