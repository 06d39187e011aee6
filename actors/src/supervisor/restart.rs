//! When to restart a dead worker: a sliding window of recent restarts and an
//! exponential backoff. The clock is passed in, so the policy is tested without sleeping.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// At most `max` restarts within `window`, each after a doubling delay.
#[derive(Debug, Clone)]
pub(crate) struct RestartWindow {
    max: u32,
    window: Duration,
    initial: Duration,
    cap: Duration,
    recent: VecDeque<Instant>,
}

impl RestartWindow {
    pub(crate) fn new(max: u32, window: Duration, initial: Duration, cap: Duration) -> Self {
        Self {
            max,
            window,
            initial,
            cap,
            recent: VecDeque::new(),
        }
    }

    /// Records a death at `now`: `Continue(delay)` to restart after `delay`,
    /// `Break(restarts)` when the window already holds `max` restarts.
    pub(crate) fn record(&mut self, now: Instant) -> ControlFlow<u32, Duration> {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.recent.pop_front();
        }
        let count = self.recent.len() as u32;
        if count >= self.max {
            return ControlFlow::Break(count);
        }
        self.recent.push_back(now);
        ControlFlow::Continue(self.backoff(count))
    }

    /// No delay for the first restart in the window, then initial, 2×, 4× ... up to the cap.
    fn backoff(&self, earlier: u32) -> Duration {
        if earlier == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(earlier - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> RestartWindow {
        RestartWindow::new(
            3,
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_millis(250),
        )
    }

    #[test]
    fn allows_max_restarts_in_the_window_with_growing_capped_delays() {
        let mut w = window();
        let t0 = Instant::now();
        assert_eq!(w.record(t0), ControlFlow::Continue(Duration::ZERO));
        assert_eq!(
            w.record(t0 + Duration::from_secs(1)),
            ControlFlow::Continue(Duration::from_millis(100))
        );
        assert_eq!(
            w.record(t0 + Duration::from_secs(2)),
            ControlFlow::Continue(Duration::from_millis(200))
        );
        assert_eq!(w.record(t0 + Duration::from_secs(3)), ControlFlow::Break(3));
    }

    #[test]
    fn restarts_older_than_the_window_stop_counting() {
        let mut w = window();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(w.record(t0 + Duration::from_secs(i)).is_continue());
        }
        // The first restart (t0) left the window at t0+10s; one slot is free again.
        assert_eq!(
            w.record(t0 + Duration::from_secs(10)),
            ControlFlow::Continue(Duration::from_millis(200))
        );
        assert!(w.record(t0 + Duration::from_secs(10)).is_break());
        // Long after, the window is empty and the delay starts over.
        assert_eq!(
            w.record(t0 + Duration::from_secs(100)),
            ControlFlow::Continue(Duration::ZERO)
        );
    }

    #[test]
    fn delay_is_capped() {
        let mut w = RestartWindow::new(
            40,
            Duration::from_secs(1000),
            Duration::from_millis(100),
            Duration::from_secs(5),
        );
        let t0 = Instant::now();
        let last = (0..40)
            .map(|i| w.record(t0 + Duration::from_millis(i)))
            .last();
        assert_eq!(last, Some(ControlFlow::Continue(Duration::from_secs(5))));
    }
}
