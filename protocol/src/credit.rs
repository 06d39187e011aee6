//! The sending side's flow control of one in-band stream: how many bytes it
//! may still send before the receiver grants more (see the wire page,
//! "In-band streams").

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Bytes one in-band stream may still send, shared by the task that sends
/// the stream (it takes credit) and whoever reads the receiver's
/// `StreamCredit` frames (it grants credit) or stops the stream (it closes it).
///
/// One task takes; any number may grant. Granting saturates instead of
/// overflowing, so a peer's grant can never panic the process.
#[derive(Debug)]
pub struct Credit {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    available: u64,
    closed: bool,
    waiting: Option<Waker>,
}

impl Credit {
    /// A stream that may send `initial` bytes to begin with
    /// ([`STREAM_WINDOW`](crate::STREAM_WINDOW)).
    pub fn new(initial: u64) -> Self {
        Self {
            state: Mutex::new(State {
                available: initial,
                closed: false,
                waiting: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover the data if something did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The receiver allows `bytes` more.
    pub fn grant(&self, bytes: u64) {
        let mut state = self.lock();
        state.available = state.available.saturating_add(bytes);
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }

    /// The stream stops (cancelled, answered, or its peer is gone): the
    /// sender's next [`Credit::take`] gives `None`.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }

    /// Whether [`Credit::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.lock().available
    }

    /// Takes up to `max` bytes of credit, waiting while there is none:
    /// `Some(n)` with `1 <= n <= max`, or `None` once the stream is closed.
    pub fn poll_take(&self, cx: &mut Context<'_>, max: usize) -> Poll<Option<usize>> {
        let mut state = self.lock();
        if state.closed {
            return Poll::Ready(None);
        }
        if state.available == 0 || max == 0 {
            state.waiting = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = state.available.min(max as u64);
        state.available -= n;
        Poll::Ready(Some(n as usize))
    }

    /// As [`Credit::poll_take`].
    pub async fn take(&self, max: usize) -> Option<usize> {
        std::future::poll_fn(|cx| self.poll_take(cx, max)).await
    }

    /// Returns credit taken and not spent (the sender had fewer bytes).
    pub fn give_back(&self, bytes: u64) {
        self.grant(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn takes_at_most_what_was_granted_and_waits_for_more() {
        let credit = std::sync::Arc::new(Credit::new(10));
        assert_eq!(credit.take(4).await, Some(4));
        assert_eq!(credit.take(100).await, Some(6));
        let taker = {
            let credit = std::sync::Arc::clone(&credit);
            tokio::spawn(async move { credit.take(100).await })
        };
        tokio::task::yield_now().await;
        assert!(!taker.is_finished(), "no credit left: it waits");
        credit.grant(3);
        assert_eq!(taker.await.unwrap(), Some(3));
    }

    #[tokio::test]
    async fn a_closed_stream_takes_nothing_more() {
        let credit = std::sync::Arc::new(Credit::new(0));
        let taker = {
            let credit = std::sync::Arc::clone(&credit);
            tokio::spawn(async move { credit.take(1).await })
        };
        tokio::task::yield_now().await;
        credit.close();
        assert_eq!(taker.await.unwrap(), None);
        credit.grant(5);
        assert_eq!(credit.take(1).await, None);
    }

    #[test]
    fn a_huge_grant_saturates() {
        let credit = Credit::new(u64::MAX - 1);
        credit.grant(u64::MAX);
        assert_eq!(credit.available(), u64::MAX);
    }
}
