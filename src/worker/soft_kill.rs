//! Soft kill: the hook's [`Done`], and the wait for it and for the requests in flight.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::oneshot;

use super::request::panic_message;
use super::worker::Shared;

/// The hook registered with [`Worker::on_soft_kill`](super::Worker::on_soft_kill).
pub(crate) type SoftKillHook = Box<dyn FnOnce(Done) -> BoxFuture<'static, ()> + Send>;

/// Handed to the soft-kill hook: call [`Done::done`] once the worker's own
/// cleanup is finished.
///
/// The worker answers the soft kill only after this, after every request
/// in flight is answered or cancelled, and after every connection handed to
/// it ([`Socket`](super::Socket)) is dropped: a hook that serves
/// connections should tell them to finish. Dropping a `Done` (also when the hook panics)
/// counts as done, so a hook cannot hold the worker forever by mistake;
/// keep it alive for as long as the cleanup takes.
pub struct Done {
    _signal: oneshot::Sender<()>,
    called: bool,
}

impl Done {
    /// Says the cleanup is finished.
    pub fn done(mut self) {
        self.called = true;
        tracing::debug!("soft-kill hook is done");
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.called {
            tracing::debug!("soft-kill `Done` dropped without calling `done()`; counted as done");
        }
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").finish_non_exhaustive()
    }
}

/// Starts the soft kill: runs the hook (if any) in its own task and returns
/// a future that completes once the hook is done, no request is in flight
/// and no handed-off connection is open.
pub(crate) fn start(hook: Option<SoftKillHook>, shared: Arc<Shared>) -> BoxFuture<'static, ()> {
    let hook_done = hook.map(|hook| {
        let (signal, done_rx) = oneshot::channel();
        let done = Done {
            _signal: signal,
            called: false,
        };
        tokio::spawn(async move {
            let outcome = AssertUnwindSafe(async move { hook(done).await })
                .catch_unwind()
                .await;
            if let Err(panic) = outcome {
                tracing::warn!("soft-kill hook panicked: {}", panic_message(panic.as_ref()));
            }
        });
        done_rx
    });
    Box::pin(async move {
        if let Some(done_rx) = hook_done {
            // `Err` means the `Done` was dropped: that counts as done too.
            let _ = done_rx.await;
        }
        // A request still in flight may yet open a connection.
        loop {
            shared.in_flight.wait_idle().await;
            shared.sockets.wait_none().await;
            if shared.in_flight.len() == 0 {
                break;
            }
        }
    })
}
