//! Streams inside the channel, for a worker on stdio (no descriptors): a
//! request stream arrives as `StreamData` chunks after `RequestStreamed`,
//! and this worker grants credit as its handler reads them; a response
//! stream goes out as `ResponseStreamed` then chunks within the credit the
//! supervisor grants, and one `StreamEnd`. See the wire page, "In-band streams".

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use lpm_protocol::{Credit, IdMap, ToSupervisor, STREAM_CHUNK, STREAM_WINDOW};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::worker::Shared;

/// What the supervisor sent of a request stream.
#[derive(Debug)]
pub(crate) enum Chunk {
    Data(Vec<u8>),
    /// The end: the byte count, or why the caller's reader failed.
    End(Result<u64, String>),
}

/// The in-band request streams being received, by request id, as the run
/// loop feeds them.
#[derive(Debug, Default)]
pub(crate) struct RequestStreams {
    by_id: IdMap<mpsc::UnboundedSender<Chunk>>,
}

impl RequestStreams {
    /// A new stream for request `id`: where its chunks will go.
    pub(crate) fn open(&mut self, id: Uuid) -> mpsc::UnboundedReceiver<Chunk> {
        // Streams whose reader is gone (answered, dropped) take nothing more.
        self.by_id.retain(|_, chunks| !chunks.is_closed());
        let (tx, rx) = mpsc::unbounded_channel();
        self.by_id.insert(id, tx);
        rx
    }

    /// The next chunk of request `id`'s stream; one for a stream this worker
    /// does not hold (answered, cancelled, dropped) is ignored.
    pub(crate) fn feed(&mut self, id: Uuid, chunk: Chunk) {
        let last = matches!(chunk, Chunk::End(_));
        let Some(chunks) = self.by_id.get(&id) else {
            return;
        };
        if chunks.send(chunk).is_err() || last {
            self.by_id.remove(&id);
        }
    }

    /// Request `id` was cancelled: its stream gets nothing more.
    pub(crate) fn stop(&mut self, id: &Uuid) {
        self.by_id.remove(id);
    }
}

/// An in-band request stream as its handler reads it; it grants the
/// supervisor credit a chunk at a time as the bytes are read.
pub(crate) struct InBandReader {
    id: Uuid,
    chunks: mpsc::UnboundedReceiver<Chunk>,
    current: Vec<u8>,
    at: usize,
    received: u64,
    ungranted: u64,
    /// Set once the end was reached: `Ok` or the error to repeat.
    finished: Option<Result<(), (io::ErrorKind, String)>>,
    shared: Arc<Shared>,
}

impl InBandReader {
    pub(crate) fn new(
        id: Uuid,
        chunks: mpsc::UnboundedReceiver<Chunk>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            id,
            chunks,
            current: Vec::new(),
            at: 0,
            received: 0,
            ungranted: 0,
            finished: None,
            shared,
        }
    }

    /// Gives the supervisor credit for what was read, a chunk at a time.
    fn grant(&mut self, read: usize) {
        self.ungranted += read as u64;
        if self.ungranted >= STREAM_CHUNK as u64 {
            let credit = ToSupervisor::StreamCredit {
                id: self.id,
                bytes: self.ungranted,
            };
            // Once the worker stopped there is nobody to grant credit to.
            let _ = self.shared.outbox.push(&credit);
            self.ungranted = 0;
        }
    }

    fn end(&self, outcome: Option<Result<u64, String>>) -> Result<(), (io::ErrorKind, String)> {
        let (id, received) = (self.id, self.received);
        match outcome {
            Some(Ok(total)) if total == received => Ok(()),
            Some(Ok(total)) => Err((
                io::ErrorKind::UnexpectedEof,
                format!("request {id}'s stream ended after {received} of its {total} bytes"),
            )),
            Some(Err(reason)) => Err((io::ErrorKind::Other, reason)),
            None => Err((
                io::ErrorKind::UnexpectedEof,
                format!(
                    "request {id}'s stream stopped after {received} bytes: the request was \
                     cancelled or the supervisor is gone"
                ),
            )),
        }
    }
}

impl AsyncRead for InBandReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(finished) = &this.finished {
                return Poll::Ready(
                    finished
                        .clone()
                        .map_err(|(kind, message)| io::Error::new(kind, message)),
                );
            }
            if this.at < this.current.len() {
                let n = buf.remaining().min(this.current.len() - this.at);
                buf.put_slice(&this.current[this.at..this.at + n]);
                this.at += n;
                this.grant(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(this.chunks.poll_recv(cx)) {
                Some(Chunk::Data(data)) => {
                    this.received += data.len() as u64;
                    this.current = data;
                    this.at = 0;
                }
                Some(Chunk::End(outcome)) => this.finished = Some(this.end(Some(outcome))),
                None => this.finished = Some(this.end(None)),
            }
        }
    }
}

/// The credit of the response streams this worker sends in-band, by
/// request id. Frames of a stream go out under its lock, so a `Cancel`
/// (which removes the stream here before its fence's `Pong` is queued) is
/// never followed by more of that stream.
#[derive(Debug, Default)]
pub(crate) struct ResponseCredits {
    by_id: Mutex<IdMap<Arc<Credit>>>,
}

impl ResponseCredits {
    fn lock(&self) -> MutexGuard<'_, IdMap<Arc<Credit>>> {
        // Nothing panics while holding the lock; recover the data if something did.
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new stream for request `id`, with the initial window.
    pub(crate) fn open(&self, id: Uuid) -> Arc<Credit> {
        let credit = Arc::new(Credit::new(STREAM_WINDOW));
        self.lock().insert(id, Arc::clone(&credit));
        credit
    }

    /// The supervisor's `StreamCredit`: its caller read that much more.
    pub(crate) fn grant(&self, id: &Uuid, bytes: u64) {
        if let Some(credit) = self.lock().get(id) {
            credit.grant(bytes);
        }
    }

    /// The supervisor's `Cancel`: the stream stops and sends nothing more.
    pub(crate) fn stop(&self, id: &Uuid) {
        if let Some(credit) = self.lock().remove(id) {
            credit.close();
        }
    }

    /// Queues `msg` for stream `id` unless it was stopped; `false` then.
    /// With `last`, the stream is over once queued.
    fn send(&self, id: &Uuid, msg: &ToSupervisor, last: bool, shared: &Shared) -> bool {
        let mut by_id = self.lock();
        if !by_id.contains_key(id) {
            return false;
        }
        let sent = shared.outbox.push(msg).is_ok();
        if last || !sent {
            by_id.remove(id);
        }
        sent
    }

    /// The worker stopped: every stream stops.
    pub(crate) fn clear(&self) {
        for (_, credit) in self.lock().drain() {
            credit.close();
        }
    }
}

/// Sends `reader` as request `id`'s in-band response stream, within the
/// supervisor's credit, then its `StreamEnd`; only then does the request
/// count as answered, so a soft kill waits for the stream.
pub(crate) async fn pump_response<R>(
    id: Uuid,
    mut reader: R,
    credit: Arc<Credit>,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Send + Unpin + 'static,
{
    let credits = &shared.response_credits;
    let chunk = lpm_protocol::stream_chunk(shared.outbox.max_frame_len());
    let mut total = 0u64;
    let outcome = loop {
        let Some(granted) = credit.take(chunk).await else {
            tracing::debug!(request = %id, bytes = total, "response stream cancelled");
            break None;
        };
        let mut data = vec![0u8; granted];
        match reader.read(&mut data).await {
            Ok(0) => break Some(Ok(total)),
            Ok(n) => {
                credit.give_back((granted - n) as u64);
                total += n as u64;
                data.truncate(n);
                let msg = ToSupervisor::StreamData { id, data };
                if !credits.send(&id, &msg, false, &shared) {
                    break None;
                }
            }
            Err(e) => {
                tracing::debug!(request = %id, error = %e, "response stream stopped early");
                break Some(Err(format!("the worker's response stream failed: {e}")));
            }
        }
    };
    if let Some(outcome) = outcome {
        credits.send(&id, &ToSupervisor::StreamEnd { id, outcome }, true, &shared);
    }
    shared.in_flight.answered();
}

/// This process's resident memory (bytes) and CPU time used so far (user
/// and system, nanoseconds): the answer to `ReportUsage`.
pub(crate) fn usage() -> (u64, u64) {
    (resident_bytes().unwrap_or(0), cpu_ns())
}

/// The resident set size, from `/proc/self/statm` (in pages).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// User and system CPU time of this process, from `getrusage`.
fn cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid start.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0;
        }
        usage
    };
    let ns = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
            + u64::try_from(t.tv_usec).unwrap_or(0) * 1_000
    };
    ns(usage.ru_utime) + ns(usage.ru_stime)
}
