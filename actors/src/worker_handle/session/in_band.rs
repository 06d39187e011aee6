//! Streams inside the channel (the wire page's "In-band streams"), for
//! workers that take no descriptors: request streams go out as
//! `RequestStreamed` then `StreamData` chunks within the worker's credit and
//! one `StreamEnd`; response streams come in after `ResponseStreamed` as
//! chunks within the credit this side grants as the caller reads.
//!
//! The caller's reader is read by a pump task (`pump.rs`) only as far as the
//! worker's credit allows; its chunks come back here through the shell
//! ([`Session::on_request_chunk`]). A response stream's chunks go to the
//! caller's [`ResponseStream`](crate::ResponseStream), whose reads and drop
//! come back as [`Feedback`].

use std::sync::Arc;
use std::time::Instant;

use lpm_protocol::{Credit, RequestFrame, RequestId, ToWorker, STREAM_CHUNK, STREAM_WINDOW};
use tokio::sync::mpsc;

use super::effect::CallerStream;
use super::{Effect, Session};
use crate::request::Pending;
use crate::stream::StreamEnd;
use crate::Error;

/// What the pump read from a caller's stream.
#[derive(Debug)]
pub(crate) enum RequestChunk {
    /// The next bytes (at most [`STREAM_CHUNK`], within the credit taken).
    Data(Vec<u8>),
    /// The caller's reader ended: the byte count, or why it failed.
    End(StreamEnd),
}

/// What a caller did with an in-band response stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feedback {
    /// It read this many more bytes: the worker may send as many more.
    Consumed(u64),
    /// It dropped the stream before its end: the worker must stop.
    Dropped,
}

/// A request stream being sent in-band.
#[derive(Debug)]
pub(super) struct Outgoing {
    credit: Arc<Credit>,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // The pump stops at its next look at the credit.
        self.credit.close();
    }
}

/// The receiving side of an in-band response stream.
#[derive(Debug)]
pub(super) struct Incoming {
    chunks: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes the worker may still send.
    credit: u64,
}

impl Session {
    /// Queues `RequestStreamed` and starts pumping `reader` in-band.
    pub(super) fn push_streamed(
        &mut self,
        pending: &mut Pending,
        call: u32,
        reader: CallerStream,
        what: &'static str,
    ) -> Result<(), Error> {
        let frame = ToWorker::RequestStreamed(RequestFrame {
            id: pending.id,
            created_at: pending.created_at,
            call,
            payload: pending.payload.clone(),
            trace: pending.trace_to(self.id.slot, self.pid).map(str::to_owned),
        });
        self.outbox.push(&frame).map_err(super::fds::frame_error)?;
        pending.fd_sent = Some(what);
        let credit = Arc::new(Credit::new(STREAM_WINDOW));
        self.fds.outgoing.insert(
            pending.id,
            Outgoing {
                credit: Arc::clone(&credit),
            },
        );
        self.effects.push(Effect::PumpInBand {
            id: pending.id,
            reader,
            credit,
            chunk: lpm_protocol::stream_chunk(self.config.max_frame_len),
        });
        Ok(())
    }

    /// The pump read the next piece of request `id`'s stream: it goes out,
    /// unless the worker answered or the request was cancelled meanwhile.
    pub(crate) fn on_request_chunk(&mut self, id: RequestId, chunk: RequestChunk) {
        if !self.phase.is_open() || !self.fds.outgoing.contains_key(&id) {
            return;
        }
        match chunk {
            RequestChunk::Data(data) => self.push(&ToWorker::StreamData { id, data }),
            RequestChunk::End(outcome) => {
                self.push(&ToWorker::StreamEnd { id, outcome });
                self.fds.outgoing.remove(&id);
            }
        }
    }

    /// The worker's `StreamCredit`: it read that much more of request `id`'s
    /// stream. Credit for a stream already ended or stopped is of no use.
    pub(super) fn on_request_credit(&mut self, id: RequestId, bytes: u64) {
        if let Some(out) = self.fds.outgoing.get(&id) {
            out.credit.grant(bytes);
        }
    }

    /// Nothing more is sent for request `id`'s stream (answered, cancelled).
    pub(super) fn stop_request_stream(&mut self, id: &RequestId) {
        // Every answer passes here: no lookup while no stream goes out.
        if !self.fds.outgoing.is_empty() {
            self.fds.outgoing.remove(id);
        }
    }

    /// The worker answered with an in-band stream: the caller gets it now,
    /// and the request stays counted on this worker until its `StreamEnd`.
    pub(super) fn on_response_streamed(&mut self, mut pending: Pending, payload: Vec<u8>) {
        let (chunks_tx, chunks_rx) = mpsc::unbounded_channel();
        let incoming = Incoming {
            chunks: chunks_tx,
            credit: STREAM_WINDOW,
        };
        let end_rx = self.open_stream(&mut pending, Some(incoming));
        self.effects.push(Effect::AnswerStreamed {
            pending: Box::new(pending),
            payload,
            chunks: chunks_rx,
            end: end_rx,
        });
    }

    /// The worker's `StreamData` for request `id`: the next bytes of an
    /// in-band response stream. Stale after a cancel until the fence
    /// returns; otherwise data for no such stream, for a pipe stream, over
    /// the chunk size or beyond the credit granted breaks the protocol.
    pub(super) fn on_stream_data(&mut self, id: RequestId, data: Vec<u8>) -> Result<(), String> {
        let Some(open) = self.fds.streams.get_mut(&id) else {
            if self.is_stale(&id) {
                tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "stale stream data dropped");
                return Ok(());
            }
            return Err(format!(
                "StreamData for request {id}, which has no in-band response stream open"
            ));
        };
        let Some(incoming) = &mut open.incoming else {
            return Err(format!(
                "StreamData for request {id}, whose response stream is a pipe"
            ));
        };
        let len = data.len() as u64;
        if data.len() > STREAM_CHUNK {
            return Err(format!(
                "StreamData of {len} bytes for request {id}; a chunk holds at most {STREAM_CHUNK}"
            ));
        }
        if len > incoming.credit {
            return Err(format!(
                "StreamData of {len} bytes for request {id} beyond its credit of {} bytes",
                incoming.credit
            ));
        }
        incoming.credit -= len;
        // A caller that dropped its reader is being cancelled (`Feedback::Dropped`).
        let _ = incoming.chunks.send(data);
        Ok(())
    }

    /// What the caller did with in-band response stream `id`: its reads grant
    /// the worker credit; dropping it early cancels the request in the worker.
    pub(crate) fn on_stream_feedback(&mut self, id: RequestId, feedback: Feedback, now: Instant) {
        if !self.phase.is_open() {
            return;
        }
        let Some(open) = self.fds.streams.get_mut(&id) else {
            // The stream ended already: nothing to grant or stop.
            return;
        };
        let Some(incoming) = &mut open.incoming else {
            return;
        };
        match feedback {
            Feedback::Consumed(bytes) => {
                incoming.credit = incoming.credit.saturating_add(bytes);
                self.push(&ToWorker::StreamCredit { id, bytes });
            }
            Feedback::Dropped => {
                tracing::debug!(slot = self.id.slot, pid = self.pid, %id, "caller dropped its response stream; cancelled");
                self.fds.streams.remove(&id);
                self.cancel_in_worker(id);
                self.send_fence(now);
                self.notify_freed();
            }
        }
    }
}
