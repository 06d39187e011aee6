//! The health of a pool's slots as a text table, for a terminal or a log.

use std::fmt;

use super::WorkerHealth;

/// Displays worker health reports as a table, one row per slot under a
/// header, each line ended by a newline.
///
/// ```text
/// slot     pid      state  rss MiB  cpu %  in flight  served  restarts  sockets   uptime
///    0    4242      ready     10.0    1.5          2     120         1        3    12.2s
///    1       -   starting      0.0    0.0          0       0         0        0     0.0s
/// ```
///
/// # Examples
///
/// ```no_run
/// use lpm_actors::HealthTable;
///
/// # async fn demo(pool: lpm_actors::Pool) -> Result<(), lpm_actors::Error> {
/// print!("{}", HealthTable(&pool.health().await?));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HealthTable<'a>(pub &'a [WorkerHealth]);

impl fmt::Display for HealthTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>4} {:>7} {:>10} {:>8} {:>6} {:>10} {:>7} {:>9} {:>8} {:>8}",
            "slot",
            "pid",
            "state",
            "rss MiB",
            "cpu %",
            "in flight",
            "served",
            "restarts",
            "sockets",
            "uptime"
        )?;
        for w in self.0 {
            let pid = w.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            writeln!(
                f,
                "{:>4} {:>7} {:>10} {:>8.1} {:>6.1} {:>10} {:>7} {:>9} {:>8} {:>7.1}s",
                w.slot,
                pid,
                w.state.as_str(),
                w.rss as f64 / (1024.0 * 1024.0),
                w.cpu,
                w.in_flight,
                w.served,
                w.restarts,
                w.sockets,
                w.uptime.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::WorkerState;

    #[test]
    fn a_row_per_slot_under_a_header_in_aligned_columns() {
        let mut ready = WorkerHealth::down(0, 1, WorkerState::Ready);
        ready.pid = Some(4242);
        ready.rss = 10 << 20;
        ready.cpu = 1.5;
        ready.in_flight = 2;
        ready.served = 120;
        ready.sockets = 3;
        ready.uptime = Duration::from_millis(12_250);
        let starting = WorkerHealth::down(1, 0, WorkerState::Starting);
        let table = HealthTable(&[ready, starting]).to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines,
            [
                "slot     pid      state  rss MiB  cpu %  in flight  served  restarts  sockets   uptime",
                "   0    4242      ready     10.0    1.5          2     120         1        3    12.2s",
                "   1       -   starting      0.0    0.0          0       0         0        0     0.0s",
            ]
        );
        assert!(table.ends_with('\n'));
    }

    #[test]
    fn no_slots_is_the_header_alone() {
        assert_eq!(HealthTable(&[]).to_string().lines().count(), 1);
    }
}
