//! The Balancer actor as a shell around [`Dispatch`](super::Dispatch): that
//! what the dispatch decides in a mailbox turn is carried out, whichever
//! message the turn began with.

use std::sync::{Arc, Mutex};

use actix::prelude::*;
use lpm_protocol::RequestId;
use tokio::sync::{mpsc, oneshot};

use super::{Balancer, CancelRequests, Observe, Submission, WorkerJoined, WorkerStatus};
use crate::health::WorkerState;
use crate::id::WorkerId;
use crate::request::{Counters, Job, Load, Options};
use crate::worker_handle::Assign;
use crate::Config;

/// Stands in for a worker's handle: keeps what it is assigned.
#[derive(Default)]
struct Handle {
    assigned: Arc<Mutex<Vec<RequestId>>>,
    /// Held, so that their callers wait rather than see the pool stop.
    held: Vec<crate::request::Pending>,
}

impl Actor for Handle {
    type Context = Context<Self>;
}

impl Handler<Assign> for Handle {
    type Result = ();

    fn handle(&mut self, msg: Assign, _ctx: &mut Context<Self>) {
        let mut assigned = self.assigned.lock().unwrap();
        assigned.extend(msg.0.iter().map(|p| p.id));
        self.held.extend(msg.0);
    }
}

impl Handler<CancelRequests> for Handle {
    type Result = ();

    fn handle(&mut self, _msg: CancelRequests, _ctx: &mut Context<Self>) {}
}

/// Asks a handle what it was assigned: answered after every message sent to it before.
#[derive(Message)]
#[rtype(result = "Vec<RequestId>")]
struct Assigned;

impl Handler<Assigned> for Handle {
    type Result = MessageResult<Assigned>;

    fn handle(&mut self, _msg: Assigned, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.assigned.lock().unwrap().clone())
    }
}

#[actix_rt::test]
async fn a_request_taken_in_by_the_autoscalers_sample_still_reaches_its_worker() {
    let config = Config::default();
    let counters = Arc::new(Counters::default());
    let (submit, submissions) = mpsc::unbounded_channel();
    let balancer = Balancer::new(&config, Arc::clone(&counters), submissions).start();
    let handle = Handle::default().start();
    let id = WorkerId {
        slot: 0,
        generation: 0,
    };
    balancer
        .send(WorkerJoined {
            id,
            assign: handle.clone().recipient(),
            cancel: handle.clone().recipient(),
            load: Arc::new(Load::default()),
        })
        .await
        .unwrap();
    balancer
        .send(WorkerStatus {
            id,
            state: WorkerState::Ready,
        })
        .await
        .unwrap();

    // A request sent just before the autoscaler's sample: the actor handles
    // its mailbox before it polls the submissions, so the sample takes the
    // request in, and the worker has room for it.
    assert!(counters.enter_intake(config.queue_capacity, true));
    let (reply, mut caller) = oneshot::channel();
    let request = RequestId::new_v4();
    let job = Job::new(None, b"payload".to_vec(), Options::default());
    submit
        .send(Submission::Request {
            id: request,
            job,
            reply,
        })
        .unwrap();
    let sample = balancer.send(Observe);
    let observed = sample.await.unwrap();
    assert_eq!(observed.busy, 1, "the sample took the request in");

    // One more turn of the balancer's, then every message it sent the handle
    // has arrived before this question.
    balancer.send(Observe).await.unwrap();
    let assigned = handle.send(Assigned).await.unwrap();
    assert_eq!(assigned, [request], "the worker got the request");
    assert_eq!(
        caller.try_recv().err(),
        Some(oneshot::error::TryRecvError::Empty),
        "its caller still waits"
    );
}
