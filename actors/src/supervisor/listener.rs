//! Listener broadcast: one listening socket shared by every worker.

use std::sync::Arc;

use actix::prelude::*;

use super::Supervisor;
use crate::stream::Listener;
use crate::worker_handle::SendListener;

/// Sends the event `name` with `payload` and a duplicate of `listener` to
/// every live worker, so they all accept on the same address (the kernel
/// spreads the connections); answers how many workers it reached.
///
/// The supervisor keeps no copy once the workers have theirs. Workers that
/// start later (restarts, resize) do not get it: broadcast again on
/// [`PoolEvent::ChildSpawned`](crate::PoolEvent::ChildSpawned) if they should.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct BroadcastListener {
    /// Event name, matched against the workers' `on_event` handlers.
    pub name: String,
    /// Postcard-encoded payload.
    pub payload: Vec<u8>,
    /// The listening socket.
    pub listener: Listener,
}

impl Handler<BroadcastListener> for Supervisor {
    type Result = usize;

    fn handle(&mut self, msg: BroadcastListener, _ctx: &mut Context<Self>) -> usize {
        let (kind, fd) = msg.listener.into_parts();
        let event = SendListener {
            name: msg.name,
            payload: msg.payload,
            kind,
            fd: Arc::new(fd),
        };
        let mut reached = 0;
        for live in self.serving() {
            live.handle.do_send(event.clone());
            reached += 1;
        }
        reached
    }
}
