//! Worker for the stream, socket and listener tests: serves [`StreamOp`]s
//! and the [`LISTEN`] event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use lpm::worker::{Event, Listener, Request, Worker};
use lpm_tests::{hash_reader, Counted, PatternReader, StreamOp, LISTEN};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Reads like `inner`, pausing `ms` after every `every` bytes.
async fn slow_hash(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    every: u64,
    ms: u64,
) -> std::io::Result<lpm_tests::Digest> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; every.max(1) as usize];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    hash_reader(&all[..]).await
}

/// Bytes the [`StreamOp::Generate`] streams produced, in all.
static GENERATED: LazyLock<Arc<AtomicU64>> = LazyLock::new(Arc::default);

/// A pattern stream that ends the process after `bytes` bytes.
struct ExitAfter(PatternReader, u64);

impl tokio::io::AsyncRead for ExitAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.1 == 0 {
            std::process::exit(3);
        }
        let room = (buf.remaining() as u64).min(self.1) as usize;
        let mut limited = tokio::io::ReadBuf::new(&mut buf.initialize_unfilled()[..room]);
        let res = std::pin::Pin::new(&mut self.0).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        buf.advance(n);
        self.1 -= n as u64;
        res
    }
}

async fn serve(worker: Worker, mut req: Request) -> Result<(), lpm::BoxError> {
    let op: StreamOp = req.data()?;
    match op {
        StreamOp::Hash => {
            let stream = req.stream()?.ok_or("no stream")?;
            let digest = hash_reader(stream).await?;
            req.respond(&digest)?;
        }
        StreamOp::SlowHash { every, ms } => {
            let stream = req.stream()?.ok_or("no stream")?;
            let digest = slow_hash(stream, every, ms).await?;
            req.respond(&digest)?;
        }
        StreamOp::ReadThenExit { bytes } => {
            let mut stream = req.stream()?.ok_or("no stream")?;
            let mut buf = vec![0u8; bytes as usize];
            stream.read_exact(&mut buf).await?;
            std::process::exit(3);
        }
        StreamOp::ReadThenHold { bytes } => {
            let mut stream = req.stream()?.ok_or("no stream")?;
            let mut buf = vec![0u8; bytes as usize];
            stream.read_exact(&mut buf).await?;
            std::future::pending::<()>().await;
        }
        StreamOp::Generate { len } => {
            req.respond_with_stream(
                &len,
                Counted(PatternReader::new(len), Arc::clone(&GENERATED)),
            )?;
        }
        StreamOp::Generated => req.respond(&GENERATED.load(Ordering::Relaxed))?,
        StreamOp::GenerateThenExit { bytes } => {
            req.respond_with_stream(&bytes, ExitAfter(PatternReader::new(u64::MAX), bytes))?;
        }
        StreamOp::HoldUntilClosed => {
            let mut socket = req.socket()?.ok_or("no socket")?;
            let mut buf = [0u8; 64];
            while socket.read(&mut buf).await? > 0 {}
            req.ack();
        }
        StreamOp::Held => req.respond(&(worker.requests().len() as u64))?,
        StreamOp::Serve => {
            let socket = req.socket()?.ok_or("no socket")?;
            req.ack();
            tokio::spawn(async move {
                let pid = std::process::id();
                let (read, mut write) = tokio::io::split(socket);
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write
                        .write_all(format!("{pid} {line}\n").as_bytes())
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    }
    Ok(())
}

async fn listen(event: Event) {
    let Ok(Some(Listener::Tcp(listener))) = event.listener() else {
        return;
    };
    tokio::spawn(async move {
        let pid = std::process::id();
        while let Ok((mut conn, _)) = listener.accept().await {
            let _ = conn.write_all(format!("{pid}\n").as_bytes()).await;
        }
    });
}

#[tokio::main]
async fn main() -> Result<(), lpm::WorkerError> {
    let worker = Worker::from_env().await?;
    let handle = worker.clone();
    worker.on_request(move |req| serve(handle.clone(), req));
    worker.on_event(LISTEN, listen);
    worker.ready();
    worker.run().await
}
