//! What the IPC benchmark asks of `bench_echo` besides echoes: to stop
//! taking requests and to take them again, so requests can be held queued
//! in the pool (the memory workload).

use lpm::{Call, Topic};
use serde::{Deserialize, Serialize};

/// Makes a `bench_echo` worker say busy (`Worker::busy`): the pool sends it
/// no request until [`Resume`]. Answered once the busy notice went out, so
/// the pool has it when the answer arrives.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Pause;

impl Call for Pause {
    const NAME: &'static str = "pause";
    type Reply = ();
}

/// Published to the pool (`Pool::publish`): every paused `bench_echo`
/// worker says ready again (`Worker::ready`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Resume;

impl Topic for Resume {
    const NAME: &'static str = "resume";
}
