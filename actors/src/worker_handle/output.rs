//! Forwards a worker's stdout and stderr lines into `tracing`, keeping the
//! last stderr lines for the exit report.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;

const TAIL_LINES: usize = 20;

/// The last lines a worker wrote to stderr.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect()
    }
}

/// Spawns the two forwarding tasks; the receiver fires when stderr reaches EOF.
pub(crate) fn forward(
    slot: usize,
    pid: u32,
    stdout: Option<impl AsyncRead + Unpin + Send + 'static>,
    stderr: Option<impl AsyncRead + Unpin + Send + 'static>,
    tail: StderrTail,
) -> oneshot::Receiver<()> {
    if let Some(out) = stdout {
        actix_rt::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "lpm::worker", slot, pid, stream = "stdout", "{line}");
            }
        });
    }
    let (eof_tx, eof_rx) = oneshot::channel();
    if let Some(err) = stderr {
        actix_rt::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "lpm::worker", slot, pid, stream = "stderr", "{line}");
                tail.push(line);
            }
            let _ = eof_tx.send(());
        });
    }
    eof_rx
}
