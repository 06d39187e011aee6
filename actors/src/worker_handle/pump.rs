//! Copies a caller's stream to its worker at the worker's pace: into the
//! pipe the worker reads (closing it is the stream's end), or, in-band, as
//! chunks within the worker's credit.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use actix::Recipient;
use lpm_protocol::{Credit, RequestId};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::session::{CallerStream, RequestChunk};
use super::RequestChunkFor;

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

/// Reads the caller's stream for an in-band request stream: at most `chunk`
/// bytes at a time, and never more than the worker's `credit` allows; each
/// piece goes to the handle, which sends it on. Stops when the credit is
/// closed (the worker answered, the request was cancelled, the worker is
/// gone) or the reader ends.
pub(super) fn start_in_band(
    id: RequestId,
    reader: CallerStream,
    credit: Arc<Credit>,
    chunk: usize,
    handle: Recipient<RequestChunkFor>,
) {
    actix::spawn(async move {
        let mut reader = reader.0;
        let mut total = 0u64;
        while let Some(granted) = credit.take(chunk).await {
            let mut chunk = vec![0u8; granted];
            let chunk = match reader.read(&mut chunk).await {
                Ok(0) => {
                    credit.give_back(granted as u64);
                    RequestChunk::End(Ok(total))
                }
                Ok(n) => {
                    credit.give_back((granted - n) as u64);
                    total += n as u64;
                    chunk.truncate(n);
                    RequestChunk::Data(chunk)
                }
                Err(e) => {
                    tracing::debug!(%id, error = %e, "the caller's request stream failed");
                    RequestChunk::End(Err(format!("the caller's stream failed: {e}")))
                }
            };
            let last = matches!(chunk, RequestChunk::End(_));
            handle.do_send(RequestChunkFor { id, chunk });
            if last {
                return;
            }
        }
        tracing::trace!(%id, bytes = total, "in-band request stream stopped");
    });
}
