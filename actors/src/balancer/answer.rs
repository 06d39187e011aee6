//! The answer to an [`Enqueue`] sent as an actix message: it waits for the
//! request's reply off the balancer's mailbox, decodes it for the caller,
//! and cancels the request when the caller stops waiting, as `Pool::send` does.

use actix::dev::{MessageResponse, OneshotSender};
use actix::WeakAddr;
use lpm_protocol::RequestId;
use tokio::sync::oneshot;

use super::{Balancer, CancelRequest};
use crate::request::Body;
use crate::{Enqueue, Error, Response};

/// What the [`Balancer`] answers an [`Enqueue`] message with: an actix
/// `MessageResponse` that hands the caller `Result<B::Output, Error>`.
pub struct Answer<B: Body>(pub(super) Inner<B>);

pub(super) enum Inner<B: Body> {
    /// Refused before it was queued (it could not be encoded).
    Now(Result<B::Output, Error>),
    /// Queued: the reply comes on `rx`.
    Later {
        id: RequestId,
        rx: oneshot::Receiver<Result<Response, Error>>,
        /// Where to send its cancellation.
        balancer: WeakAddr<Balancer>,
    },
}

impl<B: Body> std::fmt::Debug for Answer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::Now(result) => f.debug_tuple("Now").field(&result.is_ok()).finish(),
            Inner::Later { id, .. } => f.debug_struct("Later").field("id", id).finish(),
        }
    }
}

impl<B: Body> MessageResponse<Balancer, Enqueue<B>> for Answer<B> {
    fn handle(
        self,
        _ctx: &mut actix::Context<Balancer>,
        tx: Option<OneshotSender<Result<B::Output, Error>>>,
    ) {
        let (id, mut rx, balancer) = match self.0 {
            Inner::Now(result) => {
                if let Some(tx) = tx {
                    let _ = tx.send(result);
                }
                return;
            }
            Inner::Later { id, rx, balancer } => (id, rx, balancer),
        };
        let Some(mut tx) = tx else {
            // Sent with `do_send`: nobody awaits the answer, the request runs to its end.
            actix::spawn(async move { drop(rx.await) });
            return;
        };
        actix::spawn(async move {
            tokio::select! {
                answer = &mut rx => {
                    let answer = answer.unwrap_or(Err(Error::PoolStopped)).and_then(B::output);
                    let _ = tx.send(answer);
                }
                () = tx.closed() => {
                    // Closed first, so the balancer sees the request as abandoned.
                    drop(rx);
                    if let Some(balancer) = balancer.upgrade() {
                        balancer.do_send(CancelRequest(id));
                    }
                }
            }
        });
    }
}
