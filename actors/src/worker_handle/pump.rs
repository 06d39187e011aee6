//! Copies a caller's stream into the pipe its worker reads, at the
//! worker's pace; closing the pipe is the stream's end.

use std::os::fd::OwnedFd;

use lpm_protocol::RequestId;
use tokio::net::unix::pipe;

use super::session::CallerStream;

/// The pump's buffer: a pipe's default capacity.
const PUMP_BUFFER: usize = 64 * 1024;

/// Starts pumping `reader` into `writer` on the current arbiter.
pub(super) fn start(id: RequestId, reader: CallerStream, writer: OwnedFd) {
    match pipe::Sender::from_owned_fd(writer) {
        Ok(writer) => {
            actix::spawn(pump(id, reader, writer));
        }
        // The worker sees its stream end at once; the request ends through the usual paths.
        Err(e) => tracing::warn!(%id, error = %e, "could not pump the request stream"),
    }
}

async fn pump(id: RequestId, reader: CallerStream, mut writer: pipe::Sender) {
    // Reads as large as the pipe: a file read through tokio's blocking pool
    // costs a thread hop per read, so 8 KiB reads halve the throughput.
    let mut reader = tokio::io::BufReader::with_capacity(PUMP_BUFFER, reader.0);
    match tokio::io::copy_buf(&mut reader, &mut writer).await {
        Ok(n) => tracing::trace!(%id, bytes = n, "request stream sent"),
        // The worker stopped reading (it died or dropped the stream): its
        // request ends through the usual paths.
        Err(e) => tracing::debug!(%id, error = %e, "request stream stopped early"),
    }
}
