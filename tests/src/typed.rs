//! The typed calls and events `typed_worker` serves, shared with the tests
//! that call them.

use lpm::{Call, Query, Topic};
use serde::{Deserialize, Serialize};

/// Counts the primes below `below` (answers `u64`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountPrimes {
    /// The bound.
    pub below: u64,
}

impl Call for CountPrimes {
    const NAME: &'static str = "count_primes";
    type Reply = u64;
}

/// Reverses a string.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reverse(pub String);

impl Call for Reverse {
    const NAME: &'static str = "reverse";
    type Reply = String;
}

/// Summarises numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summarise(pub Vec<f64>);

/// The answer to [`Summarise`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many numbers.
    pub count: usize,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Call for Summarise {
    const NAME: &'static str = "summarise";
    type Reply = Summary;
}

/// Answers what it got, with the JSON object's keys when it is one
/// (meant for the JSON codec: a `serde_json::Value` needs a self-describing codec).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keys(pub serde_json::Value);

impl Call for Keys {
    const NAME: &'static str = "keys";
    type Reply = Vec<String>;
}

/// Never answers on its own: the worker publishes [`Waiting`] when its
/// handler starts and [`Cancelled`] when the supervisor cancels it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitForCancel;

impl Call for WaitForCancel {
    const NAME: &'static str = "wait_for_cancel";
    type Reply = ();
}

/// Asks the supervisor side [`WhatTime`] and answers its reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AskTime;

impl Call for AskTime {
    const NAME: &'static str = "ask_time";
    type Reply = u64;
}

/// Answers the trace context the worker got with the call (its
/// `traceparent`), after logging [`TRACED_LINE`] inside its handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhatTrace;

impl Call for WhatTrace {
    const NAME: &'static str = "what_trace";
    type Reply = Option<String>;
}

/// What `typed_worker --log` logs (at INFO, to stderr) while it handles [`WhatTrace`].
pub const TRACED_LINE: &str = "what_trace handled";

/// A call `typed_worker` does not serve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unserved;

impl Call for Unserved {
    const NAME: &'static str = "unserved";
    type Reply = ();
}

/// Broadcast by the pool; the worker answers by publishing [`Reloaded`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reload {
    /// What to reload.
    pub config: String,
}

impl Topic for Reload {
    const NAME: &'static str = "reload";
}

/// Published by a worker that got [`Reload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The worker's pid.
    pub pid: u32,
    /// The config it reloaded.
    pub config: String,
}

impl Topic for Reloaded {
    const NAME: &'static str = "reloaded";
}

/// Published by a worker when its handler of a [`WaitForCancel`] call starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The request.
    pub id: uuid::Uuid,
}

impl Topic for Waiting {
    const NAME: &'static str = "waiting";
}

/// Published by a worker when a [`WaitForCancel`] call is cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancelled {
    /// The cancelled request.
    pub id: uuid::Uuid,
}

impl Topic for Cancelled {
    const NAME: &'static str = "cancelled_call";
}

/// A worker's question to the supervisor side; the reply is a time (`u64`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhatTime;

impl Topic for WhatTime {
    const NAME: &'static str = "what_time";
}

impl Query for WhatTime {
    type Reply = u64;
}

/// Counts the primes below `n`, slowly enough to be work.
pub fn count_primes(below: u64) -> u64 {
    (2..below)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}
