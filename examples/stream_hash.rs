//! Stream hash: a file goes to a worker as the request's byte stream; the
//! worker answers its SHA-256 and streams back a transformed copy.
//!
//! What it shows: byte streams both ways, with a typed call (`HashAndXor`,
//! which answers a `Digest`). The supervisor sends the file twice, the two
//! ways a call can carry bytes:
//!
//! 1. [`Enqueue::file`](lpm::Enqueue::file) with a `std::fs::File`: the open
//!    file itself goes to the worker as a descriptor, with no copy through
//!    the supervisor;
//! 2. [`Enqueue::stream`](lpm::Enqueue::stream) with any `AsyncRead` (here a
//!    `tokio::fs::File`, but an HTTP body or a socket goes the same way): the
//!    supervisor pumps it into a pipe at the pace the worker reads.
//!
//! The worker's handler reads the stream with `CallContext::stream`, hashes
//! it while reading, XORs every byte with a key the call names, hands the
//! copy to `CallContext::stream_reply` and returns the digest: the digest is
//! the reply, the copy the response stream. The supervisor asks for the
//! whole response ([`Enqueue::with_response`](lpm::Enqueue::with_response)),
//! reads the copy with `Response::take_stream`, checks the worker's digest,
//! the copy's length and its SHA-256 against what it computed itself, and
//! prints both digests and the throughput. It soft-kills the pool and exits
//! 0, or non-zero on any mismatch.
//!
//! ```text
//! cargo run --example stream_hash                  # an 8 MiB temporary file
//! cargo run --example stream_hash -- <path>        # any file
//! ```
//!
//! The binary is both sides: it re-executes itself as each worker (the
//! worker sees `LPM_IPC_FD`). Linux only, as lpm is.

use std::error::Error;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lpm::worker::{CallContext, Worker};
use lpm::{Call, Config, Enqueue, Pool, WorkerCommand};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Size of the temporary file made when no path is given.
const DEFAULT_LEN: u64 = 8 * MIB;
const MIB: u64 = 1024 * 1024;
/// The transformation: every byte XOR this key (so the copy has the same length).
const KEY: u8 = 0x5a;
const CHUNK: usize = 64 * 1024;

type BoxError = Box<dyn Error>;

/// The call: hash the stream, send back a copy with every byte XOR `key`.
#[derive(Serialize, Deserialize)]
struct HashAndXor {
    key: u8,
}

/// What the worker read: its reply (the copy follows as the response stream).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Digest {
    len: u64,
    sha256: String,
}

/// The call's wire name, and the reply type it promises.
impl Call for HashAndXor {
    const NAME: &'static str = "hash_and_xor";
    type Reply = Digest;
}

fn main() -> Result<(), BoxError> {
    if std::env::var_os(lpm::IPC_FD_ENV).is_some() {
        return worker_main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let input = match std::env::args_os().nth(1) {
        Some(path) => Input::Given(PathBuf::from(path)),
        None => Input::Temporary(make_temporary_file(DEFAULT_LEN)?),
    };
    let (original, copy) = expected_digests(input.path())
        .map_err(|e| format!("cannot read {}: {e}", input.path().display()))?;
    println!(
        "input {}: {:.1} MiB",
        input.path().display(),
        original.len as f64 / MIB as f64
    );
    println!("  sha256 {}", original.sha256);
    println!("expected copy (every byte ^ {KEY:#04x}):");
    println!("  sha256 {}", copy.sha256);
    actix_rt::System::new().block_on(supervisor_main(input.path(), &original, &copy))
}

async fn supervisor_main(path: &Path, original: &Digest, copy: &Digest) -> Result<(), BoxError> {
    let pool = Pool::start(
        WorkerCommand::new(std::env::current_exe()?),
        Config::default()
            .workers(2)
            .timeout(Duration::from_secs(60)),
    );
    pool.online().await?;

    let outcome = async {
        // 1. The open file as its own descriptor: nothing is pumped.
        let file = std::fs::File::open(path)?;
        let request = Enqueue::call(HashAndXor { key: KEY }).file(file);
        run(
            "std::fs::File, own descriptor",
            &pool,
            request,
            original,
            copy,
        )
        .await?;

        // 2. Any AsyncRead: pumped through a pipe with backpressure. (A tokio
        // file could take the first path too, after `into_std().await`.) The
        // pump reads 8 KiB at a time, and each read of a tokio file is a trip
        // to the blocking pool: a bigger buffer makes it 2 to 3 times faster.
        let reader = tokio::fs::File::open(path).await?;
        let reader = tokio::io::BufReader::with_capacity(256 * 1024, reader);
        let request = Enqueue::call(HashAndXor { key: KEY }).stream(reader);
        run("AsyncRead, pumped", &pool, request, original, copy).await
    }
    .await;

    let report = pool.soft_kill().await.expect("the pool is running");
    println!(
        "soft kill done: served {}, failed {}, killed {}",
        report.served, report.failed, report.killed
    );
    outcome
}

/// Sends one call, reads the copy back and checks everything.
async fn run(
    how: &str,
    pool: &Pool,
    request: Enqueue<HashAndXor>,
    original: &Digest,
    copy: &Digest,
) -> Result<(), BoxError> {
    let started = Instant::now();
    // The reply alone would be `pool.send(request)`; the copy comes with the
    // whole `Response`.
    let (hashed, response) = pool.send(request.with_response()).await?;
    let stream = response
        .take_stream()
        .ok_or("the worker answered without a stream")?;
    let returned = hash(stream).await?;
    let elapsed = started.elapsed();

    println!("{how}: worker pid {}", response.pid());
    println!("  worker's sha256 of the input {}", hashed.sha256);
    println!(
        "  sha256 of the copy streamed back {} ({} bytes)",
        returned.sha256, returned.len
    );
    if hashed != *original {
        return Err(format!("the worker read {hashed:?}, expected {original:?}").into());
    }
    if returned != *copy {
        return Err(format!("the copy is {returned:?}, expected {copy:?}").into());
    }
    println!(
        "  both match; {:.1} MiB there and back in {elapsed:.2?} ({:.1} MiB/s)",
        original.len as f64 / MIB as f64,
        original.len as f64 / MIB as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// Reads `reader` to its end, hashing it.
async fn hash(mut reader: impl AsyncRead + Unpin) -> std::io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut len = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok(Digest {
        len,
        sha256: hex(&hasher.finalize()),
    })
}

#[tokio::main]
async fn worker_main() -> Result<(), BoxError> {
    let worker = Worker::from_env().await?;
    worker.handle(hash_and_xor);
    worker.ready();
    worker.run().await?;
    Ok(())
}

/// Hashes the call's stream while reading it and writes the XORed copy to a
/// spool file, then replies the digest with the copy as the response stream.
///
/// The reply goes out before its stream, and the digest is known only once
/// the whole input is read: so the copy waits in an unlinked temporary file
/// (memory stays bounded by one chunk, whatever the size).
async fn hash_and_xor(
    HashAndXor { key }: HashAndXor,
    mut ctx: CallContext,
) -> Result<Digest, lpm::BoxError> {
    let mut input = ctx.stream()?.ok_or("the call carries no stream")?;
    let mut spool = tokio::fs::File::from_std(spool_file()?);
    let mut hasher = Sha256::new();
    let mut len = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        buf[..n].iter_mut().for_each(|b| *b ^= key);
        spool.write_all(&buf[..n]).await?;
        len += n as u64;
    }
    spool.flush().await?;
    spool.rewind().await?;
    ctx.stream_reply(spool);
    Ok(Digest {
        len,
        sha256: hex(&hasher.finalize()),
    })
}

/// A read-write file in the temp dir with no name: it is gone once closed.
fn spool_file() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!(
        "lpm-stream-hash-spool-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The file to send: given, or made here and removed at the end.
enum Input {
    Given(PathBuf),
    Temporary(PathBuf),
}

impl Input {
    fn path(&self) -> &Path {
        match self {
            Input::Given(p) | Input::Temporary(p) => p,
        }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        if let Input::Temporary(path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes `len` bytes of known content (byte `i` is `i % 251`) to a new file
/// in the system temp dir.
fn make_temporary_file(len: u64) -> std::io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("lpm-stream-hash-{}.bin", std::process::id()));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let chunk: Vec<u8> = (0..251 * 1024).map(|i| (i % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?;
    Ok(path)
}

/// The digests of the file and of its XORed copy, read here in one pass.
fn expected_digests(path: &Path) -> std::io::Result<(Digest, Digest)> {
    let mut file = std::fs::File::open(path)?;
    let (mut original, mut copy) = (Sha256::new(), Sha256::new());
    let mut len = 0;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        original.update(&buf[..n]);
        buf[..n].iter_mut().for_each(|b| *b ^= KEY);
        copy.update(&buf[..n]);
        len += n as u64;
    }
    Ok((
        Digest {
            len,
            sha256: hex(&original.finalize()),
        },
        Digest {
            len,
            sha256: hex(&copy.finalize()),
        },
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
