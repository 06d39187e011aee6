//! The calls of the conformance worker (`tests/conformance/SPEC.md`), which
//! every worker implementation serves: Rust (`conformance_worker`), Python
//! and Node. Payloads are JSON; these types fix their shapes.

use lpm::Call;
use serde::{Deserialize, Serialize};

/// Answers its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Echo(pub serde_json::Value);

impl Call for Echo {
    const NAME: &'static str = "echo";
    type Reply = serde_json::Value;
}

/// Answers `a + b`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Add {
    /// The first term.
    pub a: i64,
    /// The second term.
    pub b: i64,
}

impl Call for Add {
    const NAME: &'static str = "add";
    type Reply = i64;
}

/// Fails with an error whose message contains `message`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fail {
    /// What the error says.
    pub message: String,
}

impl Call for Fail {
    const NAME: &'static str = "fail";
    type Reply = ();
}

/// Exits the worker mid-request (status 3) unless the file `marker` exists,
/// which it creates first; then answers `"survived"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrashOnce {
    /// A path the worker creates before it crashes.
    pub marker: String,
}

impl Call for CrashOnce {
    const NAME: &'static str = "crash_once";
    type Reply = String;
}

/// Waits `ms` without blocking the worker; emits [`CANCELLED`] with `ms`
/// when cancelled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleep {
    /// How long, in milliseconds.
    pub ms: u64,
}

impl Call for Sleep {
    const NAME: &'static str = "sleep";
    type Reply = u64;
}

/// Says `Busy`, waits `ms`, says `Ready`, answers `ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BusyFor {
    /// How long, in milliseconds.
    pub ms: u64,
}

impl Call for BusyFor {
    const NAME: &'static str = "busy";
    type Reply = u64;
}

/// Emits [`QUESTION`] awaiting a reply, and answers with the reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ask {
    /// The event's payload.
    pub question: String,
}

impl Call for Ask {
    const NAME: &'static str = "ask";
    type Reply = serde_json::Value;
}

/// Answers the payload of the last [`REMEMBER`] event, or `null`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recall;

impl Call for Recall {
    const NAME: &'static str = "recall";
    type Reply = serde_json::Value;
}

/// Sends `Stats [(name, value)]`, then answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The statistic's name.
    pub name: String,
    /// Its value.
    pub value: f64,
}

impl Call for Report {
    const NAME: &'static str = "report";
    type Reply = ();
}

/// Answers `bytes` with a response stream of that many bytes, byte `i`
/// being `i % 251`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamBytes {
    /// The stream's length.
    pub bytes: u64,
}

impl Call for StreamBytes {
    const NAME: &'static str = "stream";
    type Reply = u64;
}

/// Answers the worker's pid and slot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WhoAmI;

/// The answer to [`WhoAmI`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The worker's process id (on its own machine).
    pub pid: u32,
    /// The slot of the supervisor's `Hello`.
    pub slot: u32,
}

impl Call for WhoAmI {
    const NAME: &'static str = "slot";
    type Reply = Identity;
}

/// Answers the trace context (`traceparent`) the request came with, or `None`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceOf;

impl Call for TraceOf {
    const NAME: &'static str = "trace";
    type Reply = Option<String>;
}

/// The event a cancelled [`Sleep`] emits, with its `ms`.
pub const CANCELLED: &str = "cancelled";
/// The event [`Ask`] emits, awaiting a reply.
pub const QUESTION: &str = "question";
/// The broadcast event the worker remembers for [`Recall`].
pub const REMEMBER: &str = "remember";
/// The event the soft-kill hook emits.
pub const GOODBYE: &str = "goodbye";

/// Byte `i` of a [`StreamBytes`] stream.
pub fn stream_byte(i: u64) -> u8 {
    (i % 251) as u8
}
