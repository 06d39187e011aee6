//! `hostile_worker`: a worker that speaks the protocol by hand (blocking
//! reads and writes on its channel, no runtime) and breaks it on purpose, so
//! the tests can show the pool kills and replaces it without panicking.
//!
//! Usage: `hostile_worker <mode> [<marker>]`. With a marker path, only the
//! first worker misbehaves: it creates the file, and every worker started
//! once the file exists behaves (answers each request with its own payload,
//! answers pings), so a test can see the replacement serve.
//!
//! Modes (the misbehaviour starts at the first `Request`, unless said otherwise):
//!
//! * `garbage`: a frame with a valid length and a body that decodes as no message;
//! * `oversized`: a length prefix one byte over the frame limit (`LPM_MAX_FRAME_LEN`);
//! * `truncated-exit`: a length prefix of 100 and 10 bytes of body, then exit(0);
//! * `unknown-id`: a `Response` for an id it never received (written to stderr);
//! * `duplicate`: the right `Response`, then a second one for the same id;
//! * `no-handshake`: never sends `Hello` (from the start);
//! * `bad-version`: sends `Hello` with version 999 (from the start);
//! * `duplicate-calls`: its `Hello` lists the call `echo` twice (from the start);
//! * `silent`: from the first request on, sends nothing at all (no answer,
//!   no `Pong`), but keeps reading its channel.
//! * `late-first` (not hostile: slow): answers a request's first attempt
//!   after 600 ms without reading its channel meanwhile, so a `Cancel` sent
//!   then is read only after that answer went out; answers a retry of the
//!   same id at once. Each answer is the `String` `"first"` or `"retry"`.
//! * `not-handled` (not hostile: legal): announces the call `echo` in its
//!   `Hello` and answers every request `NotHandled`.
//! * `no-fds` (not hostile: legal): says `takes_fds: false` in its `Hello`,
//!   as a worker that cannot receive descriptors would; echoes requests, and
//!   reads in-band request streams (granting credit for each chunk),
//!   answering each with its length (`u64`).
//!
//! Every `Hello` it sends announces the call `echo`; the behaving worker
//! echoes requests of any call.
//!
//! After misbehaving it stalls (sleeps, reading nothing) until it is killed;
//! `no-handshake`, `bad-version` and `silent` keep reading and ignore what comes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use lpm_protocol::{
    frame, inherited_channel, max_frame_len_from_env, Codec, RequestFrame, ToSupervisor, ToWorker,
    PROTOCOL_VERSION,
};

/// How a worker breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Garbage,
    Oversized,
    TruncatedExit,
    UnknownId,
    Duplicate,
    NoHandshake,
    BadVersion,
    DuplicateCalls,
    Silent,
    LateFirst,
    /// Announces the call `echo` but answers every request `NotHandled`
    /// (legal, if odd: the supervisor fails the request, not the worker).
    NotHandled,
    /// Takes no descriptors: streams come in-band.
    NoFds,
    /// Follows the protocol: the replacement of a hostile worker.
    Behave,
}

impl Mode {
    fn parse(arg: &str) -> Mode {
        match arg {
            "garbage" => Mode::Garbage,
            "oversized" => Mode::Oversized,
            "truncated-exit" => Mode::TruncatedExit,
            "unknown-id" => Mode::UnknownId,
            "duplicate" => Mode::Duplicate,
            "no-handshake" => Mode::NoHandshake,
            "bad-version" => Mode::BadVersion,
            "duplicate-calls" => Mode::DuplicateCalls,
            "silent" => Mode::Silent,
            "late-first" => Mode::LateFirst,
            "not-handled" => Mode::NotHandled,
            "no-fds" => Mode::NoFds,
            "behave" => Mode::Behave,
            other => {
                eprintln!("hostile_worker: unknown mode {other:?}");
                std::process::exit(2);
            }
        }
    }
}

/// The channel to the supervisor, with the frame limit.
struct Channel {
    stream: UnixStream,
    max_frame_len: usize,
}

impl Channel {
    fn send(&mut self, msg: &ToSupervisor) {
        let bytes = frame(msg, self.max_frame_len).expect("our frames fit");
        self.write(&bytes);
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_err() {
            // The supervisor is gone or closed the channel: nothing left to do.
            std::process::exit(0);
        }
    }

    /// The next message; exits at EOF or on anything unreadable.
    fn recv(&mut self) -> ToWorker {
        let mut header = [0u8; 4];
        if self.stream.read_exact(&mut header).is_err() {
            std::process::exit(0);
        }
        let len = u32::from_le_bytes(header) as usize;
        if len > self.max_frame_len {
            eprintln!("hostile_worker: the supervisor sent a frame of {len} bytes");
            std::process::exit(1);
        }
        let mut body = vec![0u8; len];
        if self.stream.read_exact(&mut body).is_err() {
            std::process::exit(0);
        }
        postcard::from_bytes(&body).unwrap_or_else(|e| {
            eprintln!("hostile_worker: undecodable frame from the supervisor: {e}");
            std::process::exit(1);
        })
    }

    /// Reads and ignores everything until EOF, then exits.
    fn ignore_everything(&mut self) -> ! {
        loop {
            self.recv();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mode = Mode::parse(&args.next().unwrap_or_default());
    if let Some(marker) = args.next() {
        // Only the worker that creates the marker misbehaves.
        if std::fs::File::create_new(&marker).is_err() {
            mode = Mode::Behave;
        }
    }
    let stream = inherited_channel().unwrap_or_else(|e| {
        eprintln!("hostile_worker: {e}");
        std::process::exit(2);
    });
    let mut channel = Channel {
        stream,
        max_frame_len: max_frame_len_from_env(),
    };
    let pid = std::process::id();
    eprintln!("hostile_worker: pid {pid}, mode {mode:?}");

    match mode {
        Mode::NoHandshake => channel.ignore_everything(),
        Mode::BadVersion | Mode::DuplicateCalls => {
            let (version, calls) = match mode {
                Mode::BadVersion => (999, Vec::new()),
                _ => (PROTOCOL_VERSION, vec!["echo".to_owned(), "echo".to_owned()]),
            };
            channel.send(&ToSupervisor::Hello {
                version,
                pid,
                codec: Codec::Postcard,
                calls,
                takes_fds: true,
            });
            channel.send(&ToSupervisor::Ready);
            channel.ignore_everything()
        }
        _ => {
            channel.send(&ToSupervisor::Hello {
                version: PROTOCOL_VERSION,
                pid,
                codec: Codec::Postcard,
                calls: vec!["echo".to_owned()],
                takes_fds: mode != Mode::NoFds,
            });
            channel.send(&ToSupervisor::Ready);
        }
    }

    let mut seen = std::collections::HashSet::new();
    // In-band request streams being read: bytes so far, by request.
    let mut streams = std::collections::HashMap::new();
    loop {
        match channel.recv() {
            ToWorker::Request(request) if matches!(mode, Mode::Behave | Mode::NoFds) => {
                answer(&mut channel, &request);
            }
            ToWorker::RequestStreamed(request) => {
                streams.insert(request.id, 0u64);
            }
            ToWorker::StreamData { id, data } => {
                if let Some(read) = streams.get_mut(&id) {
                    *read += data.len() as u64;
                    let bytes = data.len() as u64;
                    channel.send(&ToSupervisor::StreamCredit { id, bytes });
                }
            }
            ToWorker::StreamEnd { id, .. } => {
                if let Some(read) = streams.remove(&id) {
                    let payload = postcard::to_allocvec(&read).expect("a u64 encodes");
                    channel.send(&ToSupervisor::Response { id, payload });
                }
            }
            ToWorker::Request(request) if mode == Mode::NotHandled => {
                channel.send(&ToSupervisor::NotHandled { id: request.id });
            }
            ToWorker::Request(request) if mode == Mode::LateFirst => {
                let which = if seen.insert(request.id) {
                    std::thread::sleep(std::time::Duration::from_millis(600));
                    "first"
                } else {
                    "retry"
                };
                channel.send(&ToSupervisor::Response {
                    id: request.id,
                    payload: postcard::to_allocvec(which).expect("a string encodes"),
                });
            }
            ToWorker::Request(request) => misbehave(mode, &mut channel, request),
            ToWorker::Ping { seq } => channel.send(&ToSupervisor::Pong { seq }),
            ToWorker::SoftKill => {
                channel.send(&ToSupervisor::SoftKillDone);
                std::process::exit(0);
            }
            ToWorker::HardKill => std::process::exit(0),
            _ => {}
        }
    }
}

/// Answers a request with its own payload.
fn answer(channel: &mut Channel, request: &RequestFrame) {
    channel.send(&ToSupervisor::Response {
        id: request.id,
        payload: request.payload.clone(),
    });
}

/// Breaks the protocol on `request` as `mode` says; never returns.
fn misbehave(mode: Mode, channel: &mut Channel, request: RequestFrame) -> ! {
    eprintln!(
        "hostile_worker: misbehaving ({mode:?}) on request {}",
        request.id
    );
    match mode {
        Mode::Garbage => {
            // Length 4, then variant index 127: no such message.
            channel.write(&[4, 0, 0, 0, 0x7f, 0, 0, 0]);
        }
        Mode::Oversized => {
            let len = u32::try_from(channel.max_frame_len + 1).unwrap_or(u32::MAX);
            eprintln!("hostile_worker: sending a length prefix of {len}");
            channel.write(&len.to_le_bytes());
        }
        Mode::TruncatedExit => {
            let mut bytes = 100u32.to_le_bytes().to_vec();
            bytes.extend([3u8; 10]);
            channel.write(&bytes);
            std::process::exit(0);
        }
        Mode::UnknownId => {
            let id = uuid::Uuid::new_v4();
            eprintln!("hostile_worker: answering unknown id {id}");
            channel.send(&ToSupervisor::Response {
                id,
                payload: request.payload,
            });
        }
        Mode::Duplicate => {
            answer(channel, &request);
            answer(channel, &request);
        }
        Mode::Silent => channel.ignore_everything(),
        Mode::NoHandshake
        | Mode::BadVersion
        | Mode::DuplicateCalls
        | Mode::LateFirst
        | Mode::NotHandled
        | Mode::NoFds
        | Mode::Behave => {
            unreachable!("{mode:?} does not misbehave on requests")
        }
    }
    stall()
}

/// Sleeps until killed, reading nothing.
fn stall() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
