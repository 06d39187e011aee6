//! Listener broadcast: one listening socket shared by every worker.

use std::sync::Arc;

use actix::prelude::*;

use super::{Phase, Supervisor};
use crate::stream::Listener;
use crate::worker_handle::{SendListener, SharedListener, WorkerHandle};
use crate::{Error, Transport};

/// Sends the event `name` with `payload` and a duplicate of `listener` to
/// every live worker, so they all accept on the same address (the kernel
/// spreads the connections); answers how many workers it reached.
///
/// The pool keeps the listener for its life and sends the same event, with
/// a duplicate of it, to every worker it starts later (a restart, a
/// recycled worker's successor, a worker added by a resize), so the pool
/// never drops below strength for accepting. The supervisor's copy is closed
/// when the pool stops (a soft or hard kill completes, or its actors stop);
/// broadcast a listener only once per address, as each broadcast is kept.
///
/// Workers over the stdio transport take no descriptors: the broadcast then
/// fails with [`Error::NoFdPassing`] and the listener is closed. A worker on
/// the socketpair whose `Hello` says it takes no descriptors is skipped (not
/// counted as reached); when no live worker takes descriptors, the
/// broadcast fails the same way.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, Error>")]
pub struct BroadcastListener {
    /// Event name, matched against the workers' `on_event` handlers.
    pub name: String,
    /// Postcard-encoded payload.
    pub payload: Vec<u8>,
    /// The listening socket.
    pub listener: Listener,
}

impl Handler<BroadcastListener> for Supervisor {
    type Result = Result<usize, Error>;

    fn handle(&mut self, msg: BroadcastListener, _ctx: &mut Context<Self>) -> Self::Result {
        if self.command.transport == Transport::Stdio {
            return Err(Error::NoFdPassing {
                what: "listener",
                transport: Transport::Stdio,
            });
        }
        let (kind, fd) = msg.listener.into_parts();
        let event = SendListener(SharedListener {
            name: msg.name,
            payload: msg.payload,
            kind,
            fd: Arc::new(fd),
        });
        let mut reached = 0;
        let mut refused = None;
        for live in self.serving() {
            if let Some(&transport) = self.fd_refusals.get(&live.id) {
                refused = Some(transport);
                continue;
            }
            live.handle.do_send(event.clone());
            reached += 1;
        }
        if let (0, Some(transport)) = (reached, refused) {
            return Err(Error::NoFdPassing {
                what: "listener",
                transport,
            });
        }
        if matches!(self.phase, Phase::Running) {
            self.listeners.push(event);
        }
        Ok(reached)
    }
}

impl Supervisor {
    /// Sends every listener broadcast so far to a worker that just started.
    pub(super) fn send_listeners(&self, handle: &Addr<WorkerHandle>) {
        for listener in &self.listeners {
            handle.do_send(listener.clone());
        }
    }
}
