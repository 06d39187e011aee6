//! Telling a stale answer from a bad one. After `Cancel { id }` the handle
//! sends a `Ping` (the fence): an answer for `id` that arrives before the
//! fence's `Pong` was sent before the worker read the `Cancel`, and is
//! dropped; once the `Pong` is back, no such answer can follow, so an answer
//! for a request the worker does not hold is a protocol violation.

use lpm_protocol::{IdMap, RequestId};

/// The cancelled requests whose fence has not come back yet.
#[derive(Debug, Default)]
pub(super) struct CancelFence {
    /// Each with the seq of the first `Ping` sent after its `Cancel`.
    cancelled: IdMap<u64>,
    /// The seq of the next `Ping`.
    next_ping: u64,
    /// A `Cancel` went out since the last `Ping`.
    due: bool,
}

/// Cancels a worker may leave unfenced (it does not answer `Ping`) before it
/// is taken to break the protocol: what keeps this map bounded.
pub(super) const MAX_UNFENCED: usize = 65_536;

impl CancelFence {
    /// Cancelled requests whose fence has not come back.
    pub(super) fn unfenced(&self) -> usize {
        self.cancelled.len()
    }

    /// `Cancel { id }` is being sent: its answers are stale until a later ping returns.
    pub(super) fn cancelled(&mut self, id: RequestId) {
        self.cancelled.insert(id, self.next_ping);
        self.due = true;
    }

    /// A `Cancel` went out since the last ping: one should follow.
    pub(super) fn is_due(&self) -> bool {
        self.due
    }

    /// The seq for a `Ping` about to be sent (a fence or a heartbeat: either serves).
    pub(super) fn next_ping(&mut self) -> u64 {
        let seq = self.next_ping;
        self.next_ping += 1;
        self.due = false;
        seq
    }

    /// The worker answered `Ping { seq }`: it read every `Cancel` sent before it.
    pub(super) fn pong(&mut self, seq: u64) {
        self.cancelled.retain(|_, fence| *fence > seq);
    }

    /// True when an answer for `id` may be a stale one of a cancelled attempt.
    pub(super) fn is_stale(&self, id: &RequestId) -> bool {
        self.cancelled.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> RequestId {
        RequestId::from_u128(n)
    }

    #[test]
    fn an_answer_is_stale_until_the_fence_comes_back() {
        let mut fence = CancelFence::default();
        fence.cancelled(id(1));
        assert!(fence.is_due());
        let seq = fence.next_ping();
        assert!(!fence.is_due());
        assert!(fence.is_stale(&id(1)));
        fence.pong(seq);
        assert!(!fence.is_stale(&id(1)));
    }

    #[test]
    fn a_pong_for_an_earlier_ping_does_not_clear_a_later_cancel() {
        let mut fence = CancelFence::default();
        let heartbeat = fence.next_ping();
        fence.cancelled(id(1));
        let fence_seq = fence.next_ping();
        fence.pong(heartbeat);
        assert!(
            fence.is_stale(&id(1)),
            "the worker may not have read the Cancel yet"
        );
        fence.pong(fence_seq);
        assert!(!fence.is_stale(&id(1)));
    }

    #[test]
    fn unfenced_cancels_are_counted_until_their_pong() {
        let mut fence = CancelFence::default();
        for n in 0..3 {
            fence.cancelled(id(n));
        }
        assert_eq!(fence.unfenced(), 3);
        let seq = fence.next_ping();
        fence.pong(seq);
        assert_eq!(fence.unfenced(), 0);
    }

    #[test]
    fn one_fence_covers_every_cancel_sent_before_it() {
        let mut fence = CancelFence::default();
        fence.cancelled(id(1));
        fence.cancelled(id(2));
        let seq = fence.next_ping();
        fence.cancelled(id(3));
        fence.pong(seq);
        assert!(!fence.is_stale(&id(1)) && !fence.is_stale(&id(2)));
        assert!(fence.is_stale(&id(3)), "cancelled after the ping");
        assert!(fence.is_due());
    }
}
