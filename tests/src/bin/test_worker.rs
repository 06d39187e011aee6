//! `test_worker`: the worker the integration tests drive, built on the lpm
//! worker runtime. Each request is an [`Op`] saying what to do; flags choose
//! how it starts and how it stops:
//!
//! * `--slow-start-ms N`: says ready only after N ms;
//! * `--never-ready`: never says ready;
//! * `--no-handshake`: never even connects to the supervisor (it just sleeps);
//! * `--ready-on-go SLOT`: the worker in that slot says ready only when the
//!   `go` event arrives (the others at once);
//! * `--exit-at-start`: writes one line to stderr and exits before connecting
//!   (a crash loop);
//! * `--exit-at-start-unless PATH`: the same while no file is at PATH (a
//!   crash loop that a test can end);
//! * `--soft-kill-hook`: registers a soft-kill hook that emits `hook-started`,
//!   works a little, emits `hook-done` and calls `done`;
//! * `--stuck-in-soft-kill`: registers a soft-kill hook that never calls
//!   `done`, so only a signal ends the worker.
//!
//! Every worker answers the `ping` event by emitting `pong` with its pid,
//! answers [`Op::Version`] with `LPM_TEST_VERSION` from its environment,
//! and notes the descriptors it inherited before anything else runs (for
//! [`Op::InheritedFds`]).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use lpm::worker::{Done, Event, Request, Worker};
use lpm::BoxError;
use lpm_tests::{
    Op, Seen, ASK, CANCELLED, EXIT_AT_START_CODE, EXIT_AT_START_LINE, GO, HOOK_DONE, HOOK_STARTED,
    HOOK_WORK, PING, PONG, VERSION_ENV,
};

/// What the command line asked for.
#[derive(Debug, Default)]
struct Flags {
    slow_start: Duration,
    never_ready: bool,
    no_handshake: bool,
    ready_on_go: Option<u32>,
    exit_at_start: bool,
    exit_at_start_unless: Option<std::path::PathBuf>,
    soft_kill_hook: bool,
    stuck_in_soft_kill: bool,
}

impl Flags {
    fn parse() -> Flags {
        let mut flags = Flags::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--exit-at-start-unless" {
                let path = args.next().expect("--exit-at-start-unless needs a path");
                flags.exit_at_start_unless = Some(path.into());
                continue;
            }
            let mut number = |name: &str| -> u64 {
                args.next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{name} needs a number"))
            };
            match arg.as_str() {
                "--slow-start-ms" => flags.slow_start = Duration::from_millis(number(&arg)),
                "--never-ready" => flags.never_ready = true,
                "--no-handshake" => flags.no_handshake = true,
                "--ready-on-go" => flags.ready_on_go = Some(number(&arg) as u32),
                "--exit-at-start" => flags.exit_at_start = true,
                "--soft-kill-hook" => flags.soft_kill_hook = true,
                "--stuck-in-soft-kill" => flags.stuck_in_soft_kill = true,
                other => panic!("test_worker: unknown argument {other:?}"),
            }
        }
        flags
    }
}

/// The descriptors open when `main` began, before the runtime opened its own.
static INHERITED: OnceLock<Vec<i32>> = OnceLock::new();

fn main() -> Result<(), lpm::WorkerError> {
    INHERITED.get_or_init(open_fds);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run())
}

/// The descriptors this process has open, from `/proc/self/fd`, without
/// the one that reads the directory.
fn open_fds() -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The directory's own descriptor is among them; it is closed now, which
    // tells it apart.
    fds.retain(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    fds.sort_unstable();
    fds
}

async fn run() -> Result<(), lpm::WorkerError> {
    let flags = Flags::parse();
    let unless = flags.exit_at_start_unless.as_deref();
    if flags.exit_at_start || unless.is_some_and(|path| !path.exists()) {
        eprintln!("{EXIT_AT_START_LINE}");
        std::process::exit(EXIT_AT_START_CODE);
    }
    if flags.no_handshake {
        std::future::pending::<()>().await;
    }
    let worker = Worker::from_env().await?;

    let handle = worker.clone();
    worker.on_request(move |request| serve(handle.clone(), request));

    let handle = worker.clone();
    worker.on_event(PING, move |_: Event| {
        let worker = handle.clone();
        async move {
            let _ = worker.emit(PONG, &std::process::id());
        }
    });

    if flags.soft_kill_hook {
        let handle = worker.clone();
        worker.on_soft_kill(move |done: Done| async move {
            let pid = std::process::id();
            let _ = handle.emit(HOOK_STARTED, &pid);
            tokio::time::sleep(HOOK_WORK).await;
            let _ = handle.emit(HOOK_DONE, &pid);
            done.done();
        });
    }

    if flags.stuck_in_soft_kill {
        worker.on_soft_kill(|done: Done| async move {
            // Holds `done` forever: the soft kill cannot complete by itself.
            std::future::pending::<()>().await;
            done.done();
        });
    }

    if flags.never_ready {
        // Never ready: the supervisor must never hand this worker a request.
    } else if flags.ready_on_go == Some(worker.slot()) {
        let handle = worker.clone();
        worker.on_event(GO, move |_: Event| {
            let worker = handle.clone();
            async move { worker.ready() }
        });
    } else if flags.slow_start.is_zero() {
        worker.ready();
    } else {
        let handle = worker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(flags.slow_start).await;
            handle.ready();
        });
    }

    worker.run().await
}

/// Does what the request's [`Op`] says.
async fn serve(worker: Worker, request: Request) -> Result<(), BoxError> {
    let pid = std::process::id();
    match request.data::<Op>()? {
        Op::Echo(bytes) => request.respond(&bytes)?,
        Op::Sleep { ms, reply } => {
            sleep_ms(ms).await;
            request.respond(&reply)?;
        }
        Op::Pid => request.respond(&pid)?,
        Op::Inspect => {
            let seen = Seen {
                id: request.id(),
                created_at: request.created_at(),
                pid,
                slot: worker.slot(),
            };
            request.respond(&seen)?;
        }
        Op::Exit(code) => std::process::exit(code),
        Op::ExitOnce { marker, code } => {
            // `create_new` fails when the marker exists: only the first attempt exits.
            if std::fs::File::create_new(&marker).is_ok() {
                std::process::exit(code);
            }
            request.respond(&pid)?;
        }
        Op::StallOnce { marker } => {
            if let Ok(mut file) = std::fs::File::create_new(&marker) {
                // Leave the stalling worker's pid, so a test can tell where the retry went.
                std::io::Write::write_all(&mut file, pid.to_string().as_bytes())?;
                std::future::pending::<()>().await;
            }
            request.respond(&pid)?;
        }
        Op::Abort => std::process::abort(),
        Op::Garbage => {
            write_garbage_to_channel()?;
            std::future::pending::<()>().await;
        }
        Op::Big { bytes } => request.respond(&vec![7u8; bytes as usize])?,
        Op::Panic(message) => panic!("{message}"),
        Op::Fail(message) => return Err(message.into()),
        Op::BusyFor { ms } => {
            worker.busy();
            sleep_ms(ms).await;
            let ready_at = SystemTime::now();
            worker.ready();
            request.respond(&ready_at)?;
        }
        Op::Now => request.respond(&SystemTime::now())?,
        Op::Leak { bytes } => {
            // Filled with ones, so every page is touched and counts in RSS.
            let leaked: &'static mut [u8] = vec![1u8; bytes as usize].leak();
            std::hint::black_box(leaked);
            request.respond(&bytes)?;
        }
        Op::Ask(question) => {
            let answer = match worker.emit_with_reply(ASK, &question).await {
                Ok(reply) => reply.data::<String>().map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            request.respond(&answer)?;
        }
        Op::Requests => request.respond(&(worker.requests().len() as u64))?,
        Op::HoldAndCount { ms } => {
            let at_start = worker.requests().len();
            sleep_ms(ms).await;
            let at_end = worker.requests().len();
            request.respond(&(at_start.max(at_end) as u64))?;
        }
        Op::Ack => request.ack(),
        Op::Stats(stats) => {
            let stats: Vec<(&str, f64)> = stats.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            worker.report_stats(&stats);
            request.ack();
        }
        Op::SpawnChild => {
            // Not waited for: it lives until someone kills its process group.
            let child = std::process::Command::new("sleep").arg("1000").spawn()?;
            request.respond(&child.id())?;
        }
        Op::Block { ms } => {
            std::thread::sleep(Duration::from_millis(ms));
            request.respond(&ms)?;
        }
        Op::InheritedFds => request.respond(&INHERITED.get().cloned().unwrap_or_default())?,
        Op::Version => request.respond(&std::env::var(VERSION_ENV).unwrap_or_default())?,
        Op::Print(line) => {
            println!("{line}");
            request.respond(&line)?;
        }
        Op::AwaitCancel => {
            request.cancelled().await;
            worker.emit(CANCELLED, &request.id())?;
        }
        Op::TimedSleep { ms } => {
            let started = SystemTime::now();
            sleep_ms(ms).await;
            request.respond(&started)?;
        }
    }
    Ok(())
}

/// Writes a length prefix of 4 GiB straight to the channel (fd 3; over
/// stdio there is none, and the write fails), behind the runtime's back.
fn write_garbage_to_channel() -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::FromRawFd;
    // SAFETY: fd 3 is the channel this process inherited and the runtime
    // keeps open; ManuallyDrop makes sure this borrowed File never closes it.
    let mut channel =
        std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(lpm_protocol::IPC_FD) });
    channel.write_all(&[0xff; 8])
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
