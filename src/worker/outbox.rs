//! The one write buffer every message to the supervisor goes through.
//!
//! Handlers append encoded frames to a shared buffer; a single writer task
//! swaps the buffer out and writes all of it at once, so under load many
//! responses leave in one syscall and no handler ever waits for the socket.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use lpm_protocol::{OutFds, ToSupervisor};
use tokio::sync::Notify;

use super::channel::Channel;
use crate::WorkerError;

/// Initial capacity of each of the two buffers.
const INITIAL_CAPACITY: usize = 64 * 1024;
/// A buffer that grew beyond this is given back after use.
const MAX_RETAINED: usize = 4 * 1024 * 1024;

/// Frames waiting for the writer task.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer; signalled when the buffer stops being empty, or on close.
    wake: Notify,
    max_frame_len: usize,
}

#[derive(Debug)]
struct State {
    buf: Vec<u8>,
    /// Descriptors that go out with some frames of `buf`.
    fds: OutFds,
    closed: bool,
}

impl Outbox {
    pub(crate) fn new(max_frame_len: usize) -> Self {
        Self {
            state: Mutex::new(State {
                buf: Vec::with_capacity(INITIAL_CAPACITY),
                fds: OutFds::default(),
                closed: false,
            }),
            wake: Notify::new(),
            max_frame_len,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; recover the data if something did.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one message for the writer.
    ///
    /// # Errors
    ///
    /// [`WorkerError::ChannelClosed`] after [`Outbox::close`];
    /// [`WorkerError::PayloadTooLarge`] when the frame would exceed the limit
    /// (nothing is queued then).
    pub(crate) fn push(&self, msg: &ToSupervisor) -> Result<(), WorkerError> {
        let mut state = self.lock();
        if state.closed {
            return Err(WorkerError::ChannelClosed);
        }
        let was_empty = state.buf.is_empty();
        lpm_protocol::encode_frame(msg, &mut state.buf, self.max_frame_len).map_err(
            |e| match e {
                lpm_protocol::Error::FrameTooLarge { len, max } => {
                    WorkerError::PayloadTooLarge { len, max }
                }
                other => WorkerError::channel(other),
            },
        )?;
        drop(state);
        // A non-empty buffer means the writer was woken already and has not
        // taken the buffer yet: it will take this frame too.
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues a message that carries a descriptor (a response stream's pipe);
    /// the descriptor goes out with the frame's first byte.
    ///
    /// # Errors
    ///
    /// As [`Outbox::push`]; the descriptor is closed on error.
    pub(crate) fn push_with_fd(&self, mut msg: ToSupervisor) -> Result<(), WorkerError> {
        use lpm_protocol::CarriesFd;
        let Some(fd) = msg.fd_slot().and_then(lpm_protocol::Fd::take) else {
            return Err(WorkerError::channel(lpm_protocol::Error::MissingFd {
                message: msg.kind(),
            }));
        };
        let mut state = self.lock();
        if state.closed {
            return Err(WorkerError::ChannelClosed);
        }
        let was_empty = state.buf.is_empty();
        let at = state.buf.len();
        lpm_protocol::encode_frame(&msg, &mut state.buf, self.max_frame_len).map_err(
            |e| match e {
                lpm_protocol::Error::FrameTooLarge { len, max } => {
                    WorkerError::PayloadTooLarge { len, max }
                }
                other => WorkerError::channel(other),
            },
        )?;
        state.fds.push(at, fd);
        drop(state);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The frame limit (a frame's body at most this many bytes).
    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Refuses further messages; the writer writes what is queued and stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Whether [`Outbox::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The writer task: writes everything queued, with one write call per
    /// batch when the channel takes it, until the outbox is closed and empty.
    ///
    /// # Errors
    ///
    /// The channel's error; the outbox is closed then.
    pub(crate) async fn write_all(self: Arc<Self>, channel: Channel) -> io::Result<()> {
        let mut spare = Vec::with_capacity(INITIAL_CAPACITY);
        let mut spare_fds = OutFds::default();
        loop {
            let closed = {
                let mut state = self.lock();
                std::mem::swap(&mut state.buf, &mut spare);
                std::mem::swap(&mut state.fds, &mut spare_fds);
                state.closed
            };
            if !spare.is_empty() {
                let written = channel.write_all(&spare, &mut spare_fds).await;
                if let Err(e) = written {
                    self.close();
                    return Err(e);
                }
                if spare.capacity() > MAX_RETAINED {
                    spare = Vec::with_capacity(INITIAL_CAPACITY);
                } else {
                    spare.clear();
                }
            }
            if closed {
                // `push` refuses messages once closed, and the swap above saw
                // `closed` under the same lock: nothing can be left behind.
                return Ok(());
            }
            self.wake.notified().await;
            // Let the handlers that are ready to run queue their answers
            // first: one write then carries many of them.
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_after_close_is_refused() {
        let outbox = Outbox::new(1024);
        outbox.push(&ToSupervisor::Ready).unwrap();
        outbox.close();
        assert!(outbox.is_closed());
        assert!(matches!(
            outbox.push(&ToSupervisor::Busy),
            Err(WorkerError::ChannelClosed)
        ));
    }

    #[test]
    fn too_large_frame_is_refused_and_nothing_is_queued() {
        let outbox = Outbox::new(8);
        let big = ToSupervisor::Stats(vec![("a long statistic name".into(), 1.0)]);
        assert!(matches!(
            outbox.push(&big),
            Err(WorkerError::PayloadTooLarge { max: 8, .. })
        ));
        assert!(outbox.lock().buf.is_empty());
    }
}
