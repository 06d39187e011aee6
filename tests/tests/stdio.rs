//! The stdio transport: real workers whose channel is their stdin and
//! stdout. Everything works as over the socketpair (requests, retries,
//! timeouts with their cancel, heartbeat, emit, broadcast, soft and hard
//! kill, recycling, health); streams go in-band with credit, so memory stays
//! bounded; sockets and listeners are refused with a typed error.
//!
//! "Remote" workers are started through `sh -c 'WORKER; exit $?'`: the shell
//! stays their parent, so their `Hello` names another pid than the process
//! the pool started, as a worker behind `ssh` does. The pool asks them for
//! their usage, and stops them by closing their input before it signals the
//! shell.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use lpm::{Enqueue, KillReason, Pool, PoolError, PoolEvent, Transport, UsageSource, WorkerCommand};
use lpm_protocol::{STREAM_CHUNK, STREAM_WINDOW};
use lpm_tests::{
    call, config, hash_reader, online, pattern_bytes, procfs, recv_or_fail, sha256_hex, start,
    test_worker, wait_for_health, wait_until, within, Counted, Digest, Op, PatternReader, StreamOp,
    CANCELLED, DEADLINE, HOLD, PING, PONG,
};
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;

fn stdio_worker() -> WorkerCommand {
    test_worker!().transport(Transport::Stdio)
}

fn stream_worker() -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_stream_worker")).transport(Transport::Stdio)
}

/// `worker` started through a shell that stays its parent: a "remote" worker.
fn behind_a_shell(worker: &str, then: &str) -> WorkerCommand {
    WorkerCommand::new("sh")
        .arg("-c")
        .arg(format!("{worker}; {then}"))
        .transport(Transport::Stdio)
}

/// A remote worker's process and its launcher's (the process the pool started).
struct Remote {
    pid: u32,
    launcher: u32,
}

/// A pool of one worker started by `command`, online, with the worker's
/// own pid (it answers `Op::Pid`) and its launcher's.
async fn start_remote(command: WorkerCommand) -> (Pool, lpm::EventStream, Remote) {
    let (pool, events) = start(command, config(1));
    online(&pool).await;
    let (pid, response): (u32, _) = call(&pool, &Op::Pid).await;
    let launcher = response.pid();
    (pool, events, Remote { pid, launcher })
}

fn remote_worker() -> WorkerCommand {
    behind_a_shell(env!("CARGO_BIN_EXE_test_worker"), "exit $?")
}

fn expected(len: u64) -> Digest {
    Digest {
        len,
        sha256: sha256_hex(&pattern_bytes(len)),
    }
}

/// The worker process behind a launcher (its only child).
fn worker_behind(launcher: u32) -> u32 {
    let children = procfs::children(launcher);
    assert_eq!(children.len(), 1, "the launcher's children: {children:?}");
    children[0].pid
}

/// True once `pid` has exited (gone, or a zombie nobody reaped yet).
fn has_exited(pid: u32) -> bool {
    procfs::stat(pid).is_none_or(|s| s.is_zombie())
}

#[actix_rt::test]
async fn requests_are_served_over_stdin_and_stdout() {
    let (pool, _events) = start(stdio_worker(), config(2));
    online(&pool).await;
    let answers = futures::future::join_all((0..50u8).map(|i| {
        let pool = pool.clone();
        async move { pool.enqueue(&Op::Echo(vec![i; i as usize])).await }
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let bytes: Vec<u8> = answer.expect("served").data().unwrap();
        assert_eq!(bytes, vec![i as u8; i]);
    }
    // A local stdio worker is the process the pool started: sampled as usual.
    let (pid, response): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(response.pid(), pid);
    let health = wait_for_health(&pool, "sampled RSS", DEADLINE, |h| {
        h.iter().all(|w| w.rss > 0)
    })
    .await;
    assert!(health.iter().all(|w| w.usage == UsageSource::Sampled));
    // The worker's own descriptors: the channel was moved off 0 and 1.
    let (fds, _): (Vec<i32>, _) = call(&pool, &Op::InheritedFds).await;
    assert_eq!(fds, [0, 1, 2], "no fd 3 over stdio");
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.killed, 0, "{report:?}");
}

/// A worker started without `LPM_CODEC` (as one behind ssh is) takes the
/// pool's codec from the supervisor's `Hello`.
#[actix_rt::test]
async fn a_worker_without_lpm_codec_adopts_the_pools() {
    let command = WorkerCommand::new("env")
        .args(["-u", "LPM_CODEC", env!("CARGO_BIN_EXE_test_worker")])
        .transport(Transport::Stdio);
    let (pool, _events) = start(command, config(1).codec(lpm::Codec::Json));
    online(&pool).await;
    let (bytes, response): (Vec<u8>, _) = call(&pool, &Op::Echo(vec![4, 2])).await;
    assert_eq!(bytes, [4, 2]);
    assert_eq!(response.codec(), lpm::Codec::Json);
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_println_in_a_handler_goes_to_the_log_not_the_channel() {
    let (pool, mut events) = start(stdio_worker(), config(1));
    online(&pool).await;
    let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
    let line = "a line a careless handler prints".to_owned();
    let (printed, _): (String, _) = call(&pool, &Op::Print(line.clone())).await;
    assert_eq!(printed, line);
    // The channel is intact: the same worker goes on serving.
    let (again, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_eq!(again, pid);
    pool.soft_kill().await.expect("the pool is running");
    let exited = recv_or_fail(
        &mut events,
        "the worker's exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, .. } if *p == pid),
    )
    .await;
    let PoolEvent::ChildExited { stderr_tail, .. } = exited else {
        unreachable!()
    };
    assert!(
        stderr_tail.contains(&line),
        "the printed line is in the worker's log: {stderr_tail:?}"
    );
}

/// A program that writes text to its stdout before it becomes a worker
/// breaks the protocol: the pool names it and kills it.
#[actix_rt::test]
async fn text_on_a_workers_stdout_is_a_protocol_violation() {
    let command = WorkerCommand::new("sh")
        .arg("-c")
        .arg(format!(
            "echo 'starting up...'; exec {}",
            env!("CARGO_BIN_EXE_test_worker")
        ))
        .transport(Transport::Stdio);
    let (pool, mut events) = start(command, config(1));
    let killed = recv_or_fail(&mut events, "WorkerKilled", DEADLINE, |e| {
        matches!(e, PoolEvent::WorkerKilled { .. })
    })
    .await;
    let PoolEvent::WorkerKilled { reason, .. } = killed else {
        unreachable!()
    };
    assert!(
        matches!(&reason, KillReason::ProtocolViolation(m) if m.contains("bad frame")),
        "{reason:?}"
    );
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_request_whose_worker_dies_is_retried_on_another() {
    let (pool, mut events) = start(stdio_worker(), config(2).retries(1));
    online(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let (pid, response, dead_slot) =
        lpm_tests::retried_after_a_death(&pool, &mut events, dir.path()).await;
    assert_eq!(response.pid(), pid);
    recv_or_fail(
        &mut events,
        "the dead slot's replacement",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { slot, .. } if *slot == dead_slot),
    )
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_timed_out_request_is_cancelled_in_the_worker_which_serves_on() {
    let (pool, mut events) = start(stdio_worker(), config(1).max_in_flight(1));
    online(&pool).await;
    let request = Enqueue::new(&Op::AwaitCancel)
        .unwrap()
        .timeout(Duration::from_millis(200));
    let answer = within("the timeout", pool.send(request)).await;
    assert!(
        matches!(answer, Err(PoolError::Timeout { .. })),
        "{answer:?}"
    );
    recv_or_fail(
        &mut events,
        "the worker's cancelled event",
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == CANCELLED),
    )
    .await;
    let (bytes, _): (Vec<u8>, _) = call(&pool, &Op::Echo(vec![1, 2, 3])).await;
    assert_eq!(bytes, [1, 2, 3]);
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn the_heartbeat_keeps_a_busy_worker_and_kills_a_blocked_one() {
    let (pool, mut events) = start(
        stdio_worker(),
        config(1).heartbeat(Duration::from_millis(50), Duration::from_millis(1000)),
    );
    online(&pool).await;
    let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
    // Twice the heartbeat's timeout in an async handler: the pings are answered.
    let (slept, _): (u32, _) = call(&pool, &Op::Sleep { ms: 2000, reply: 9 }).await;
    assert_eq!(slept, 9);
    let answer = pool.enqueue(&Op::Block { ms: 30_000 }).await;
    assert!(
        matches!(
            &answer,
            Err(PoolError::WorkerKilled { pid: p, reason: KillReason::Unresponsive { .. }, .. })
                if *p == pid
        ),
        "{answer:?}"
    );
    recv_or_fail(
        &mut events,
        "the blocked worker's replacement",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { pid: p, .. } if *p != pid),
    )
    .await;
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn emits_broadcasts_and_replies_travel_over_stdio() {
    let (pool, mut events) = start(stdio_worker(), config(2));
    online(&pool).await;
    let reached = pool.broadcast(PING, &()).await.unwrap();
    assert_eq!(reached, 2);
    let pongs = lpm_tests::recv_n_or_fail(
        &mut events,
        "a pong",
        2,
        DEADLINE,
        |e| matches!(e, PoolEvent::Custom(c) if c.name() == PONG),
    )
    .await;
    assert_eq!(pongs.len(), 2);
    let ask = pool.enqueue(&Op::Ask("hello".into()));
    let reply = async {
        let event = recv_or_fail(
            &mut events,
            "the ask",
            DEADLINE,
            |e| matches!(e, PoolEvent::Custom(c) if c.name() == lpm_tests::ASK),
        )
        .await;
        let PoolEvent::Custom(c) = event else {
            unreachable!()
        };
        let question: String = c.data().unwrap();
        c.reply(&question.to_uppercase()).unwrap();
    };
    let (answer, ()) = futures::join!(ask, reply);
    let answer: Result<String, String> = answer.expect("the request succeeds").data().unwrap();
    assert_eq!(answer, Ok("HELLO".to_owned()));
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_soft_kill_drains_and_a_hard_kill_fails_what_is_in_flight() {
    let (pool, _events) = start(stdio_worker(), config(2));
    online(&pool).await;
    let sleeping = pool.enqueue(&Op::Sleep { ms: 300, reply: 5 });
    let (answer, report) = futures::join!(sleeping, async {
        // The request is sent before the kill starts (one actor mailbox).
        tokio::task::yield_now().await;
        pool.soft_kill().await.expect("the pool is running")
    });
    assert_eq!(answer.expect("drained").data::<u32>().unwrap(), 5);
    assert_eq!((report.served, report.killed), (1, 0), "{report:?}");

    let (pool, _events) = start(stdio_worker(), config(1));
    online(&pool).await;
    let mut held = pool.enqueue(&HOLD).boxed_local();
    assert!((&mut held).now_or_never().is_none());
    let report = pool.hard_kill().await.expect("the pool is running");
    assert!(matches!(held.await, Err(PoolError::Killed)));
    assert_eq!(report.killed, 1, "{report:?}");
}

#[actix_rt::test]
async fn a_worker_is_recycled_after_max_requests() {
    let (pool, mut events) = start(stdio_worker(), config(1).max_requests(3, 0));
    online(&pool).await;
    let mut pids = Vec::new();
    for _ in 0..3 {
        let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
        pids.push(pid);
    }
    assert!(pids.iter().all(|&p| p == pids[0]), "{pids:?}");
    recv_or_fail(
        &mut events,
        "the recycle",
        DEADLINE,
        |e| matches!(e, PoolEvent::WorkerRecycled { pid, .. } if *pid == pids[0]),
    )
    .await;
    wait_until("a new worker serves", DEADLINE, || async {
        let (pid, _): (u32, _) = call(&pool, &Op::Pid).await;
        pid != pids[0]
    })
    .await;
    pool.soft_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn streams_of_64_and_16_mib_travel_in_band_whole() {
    let pool = lpm_tests::start_stream_pool(stream_worker(), config(1)).await;
    let request = Enqueue::new(&StreamOp::Hash)
        .unwrap()
        .stream(PatternReader::new(64 * MIB));
    let digest: Digest = within("a hashed 64 MiB request stream", pool.send(request))
        .await
        .expect("hashed")
        .data()
        .unwrap();
    assert_eq!(digest, expected(64 * MIB));

    let len = 16 * MIB;
    let response = within(
        "a streamed response",
        pool.enqueue(&StreamOp::Generate { len }),
    )
    .await
    .expect("answered with a stream");
    let stream = response.take_stream().expect("a response stream");
    assert!(format!("{stream:?}").contains("in-band"), "{stream:?}");
    let digest = within("the 16 MiB response stream", hash_reader(stream))
        .await
        .expect("read whole");
    assert_eq!(digest, expected(len));

    // A file goes in-band too.
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, &pattern_bytes(300_000)).unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let request = Enqueue::new(&StreamOp::Hash).unwrap().file(file);
    let digest: Digest = within("a hashed file", pool.send(request))
        .await
        .unwrap()
        .data()
        .unwrap();
    assert_eq!(digest, expected(300_000));
    pool.hard_kill().await.expect("the pool is running");
}

/// The supervisor reads a caller's stream no further ahead of the worker
/// than the credit the worker granted: a window beyond what its handler read.
#[actix_rt::test]
async fn a_request_stream_is_read_no_further_than_the_worker_grants() {
    let pool = lpm_tests::start_stream_pool(stream_worker(), config(1)).await;
    let yielded = Arc::new(AtomicU64::new(0));
    let taken = 1_000_000;
    let request = Enqueue::new(&StreamOp::ReadThenHold { bytes: taken })
        .unwrap()
        .stream(Counted(PatternReader::new(64 * MIB), Arc::clone(&yielded)));
    let held = pool.send(request);
    let ahead = |yielded: &AtomicU64| yielded.load(Ordering::Relaxed).saturating_sub(taken);
    // The worker grants credit a chunk at a time as its handler reads, so
    // the supervisor gets to within a chunk of a full window ahead...
    let hold = async {
        wait_until(
            "the supervisor used the credit the worker granted",
            DEADLINE,
            || async { ahead(&yielded) + STREAM_CHUNK as u64 >= STREAM_WINDOW },
        )
        .await;
        // ...and no further, however long it runs: another round trip to the
        // same worker goes by, and the window still holds.
        let (held, _): (u64, _) = within("another request", pool.enqueue(&StreamOp::Held))
            .await
            .map(|r| (r.data::<u64>().unwrap(), ()))
            .unwrap();
        assert_eq!(held, 2, "the stream's request is still held");
        assert!(
            ahead(&yielded) <= STREAM_WINDOW,
            "the supervisor read {} bytes ahead of the worker",
            ahead(&yielded)
        );
    };
    futures::pin_mut!(held);
    futures::select! {
        answer = held.fuse() => panic!("the held request was answered: {answer:?}"),
        () = hold.fuse() => {}
    }
    pool.hard_kill().await.expect("the pool is running");
}

/// A worker sends a response stream no further ahead of the caller than
/// the credit the supervisor grants as the caller reads.
#[actix_rt::test]
async fn a_response_stream_is_sent_no_further_than_the_caller_reads() {
    let pool = lpm_tests::start_stream_pool(stream_worker(), config(1)).await;
    let len = 16 * MIB;
    let response = within(
        "a streamed response",
        pool.enqueue(&StreamOp::Generate { len }),
    )
    .await
    .expect("answered with a stream");
    let mut stream = response.take_stream().expect("a response stream");
    let read = MIB;
    let mut first = vec![0u8; read as usize];
    within("the first MiB", stream.read_exact(&mut first))
        .await
        .unwrap();
    assert_eq!(first, pattern_bytes(read));
    let generated = || async {
        let answer = within("Generated", pool.enqueue(&StreamOp::Generated)).await;
        answer.expect("answered").data::<u64>().unwrap()
    };
    wait_until("the worker used the credit granted", DEADLINE, || async {
        generated().await + STREAM_CHUNK as u64 >= read + STREAM_WINDOW
    })
    .await;
    let ahead = generated().await - read;
    assert!(
        ahead <= STREAM_WINDOW,
        "the worker generated {ahead} bytes ahead of the caller"
    );
    // The rest arrives whole.
    let rest = within("the rest", hash_reader(&mut stream)).await.unwrap();
    assert_eq!(rest.len, len - read);
    pool.hard_kill().await.expect("the pool is running");
}

/// A caller that drops an in-band response stream cancels it in the worker,
/// which stops and serves on.
#[actix_rt::test]
async fn dropping_a_response_stream_stops_the_worker_sending_it() {
    let pool = lpm_tests::start_stream_pool(stream_worker(), config(1)).await;
    let response = within(
        "a streamed response",
        pool.enqueue(&StreamOp::Generate { len: 64 * MIB }),
    )
    .await
    .expect("answered with a stream");
    let mut stream = response.take_stream().expect("a response stream");
    let mut some = vec![0u8; 100_000];
    within("some of it", stream.read_exact(&mut some))
        .await
        .unwrap();
    drop(stream);
    drop(response);
    // The worker holds nothing once the cancel reached it.
    wait_until("the worker dropped the stream", DEADLINE, || async {
        let held = within("Held", pool.enqueue(&StreamOp::Held)).await;
        held.expect("answered").data::<u64>().unwrap() == 1
    })
    .await;
    let generated = within("Generated", pool.enqueue(&StreamOp::Generated))
        .await
        .unwrap()
        .data::<u64>()
        .unwrap();
    assert!(
        generated < 64 * MIB,
        "the stream stopped early: {generated}"
    );
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn sockets_and_listeners_are_refused_naming_the_transport() {
    let pool = lpm_tests::start_stream_pool(stream_worker(), config(1)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_client, request) = lpm_tests::connection(&listener, &StreamOp::Serve).await;
    let answer = within("the socket request", pool.send(request)).await;
    match answer {
        Err(e @ PoolError::NoFdPassing { transport, .. }) => {
            assert_eq!(transport, Transport::Stdio);
            assert!(e.to_string().contains("stdio"), "{e}");
        }
        other => panic!("expected NoFdPassing: {other:?}"),
    }
    listener_refused(&pool, Transport::Stdio).await;
    // The worker is untouched and serves on.
    let held = within("Held", pool.enqueue(&StreamOp::Held)).await.unwrap();
    assert_eq!(held.data::<u64>().unwrap(), 1);
    pool.hard_kill().await.expect("the pool is running");
}

/// Broadcasts a listener to `pool`, whose workers take no descriptors, and
/// checks it is refused, naming `transport`.
async fn listener_refused(pool: &Pool, transport: Transport) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let answer = pool
        .broadcast_listener(lpm_tests::LISTEN, &(), listener)
        .await;
    match answer {
        Err(PoolError::NoFdPassing {
            what: "listener",
            transport: refused,
        }) => assert_eq!(refused, transport),
        other => panic!("expected the listener refused: {other:?}"),
    }
}

/// A worker on the socketpair that says it takes no descriptors gets its
/// streams in-band, and no socket or listener.
#[actix_rt::test]
async fn a_socketpair_worker_that_takes_no_descriptors_is_served_like_a_stdio_one() {
    let command = WorkerCommand::new(env!("CARGO_BIN_EXE_hostile_worker")).arg("no-fds");
    let pool = lpm_tests::start_stream_pool(command, config(1)).await;
    let request = Enqueue::new(&"a stream")
        .unwrap()
        .stream(PatternReader::new(3 * MIB + 5));
    let answer = within("a counted stream", pool.send(request)).await;
    assert_eq!(answer.unwrap().data::<u64>().unwrap(), 3 * MIB + 5);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_client, request) = lpm_tests::connection(&listener, &StreamOp::Serve).await;
    let answer = within("the socket request", pool.send(request)).await;
    assert!(
        matches!(
            answer,
            Err(PoolError::NoFdPassing {
                transport: Transport::Socketpair,
                ..
            })
        ),
        "{answer:?}"
    );
    listener_refused(&pool, Transport::Socketpair).await;
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_remote_worker_reports_its_own_usage() {
    let (pool, _events, Remote { pid, launcher }) = start_remote(remote_worker()).await;
    assert_ne!(pid, launcher, "the worker runs behind its launcher");
    assert_eq!(worker_behind(launcher), pid);
    // A leak only the worker's own report can show: the launcher stays small.
    let (_, _): (u64, _) = call(&pool, &Op::Leak { bytes: 64 * MIB }).await;
    let health = wait_for_health(&pool, "the worker's reported RSS", DEADLINE, |h| {
        h[0].usage == UsageSource::Reported && h[0].rss > 64 * MIB
    })
    .await;
    assert_eq!(health[0].pid, Some(launcher));
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.killed, 0, "{report:?}");
    assert!(has_exited(pid));
}

#[actix_rt::test]
async fn a_remote_worker_stops_on_the_soft_and_hard_kill_frames() {
    let (pool, mut events, Remote { pid, launcher }) = start_remote(remote_worker()).await;
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.killed, 0, "{report:?}");
    recv_or_fail(
        &mut events,
        "the launcher's own exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(0), .. } if *p == launcher),
    )
    .await;
    assert!(has_exited(pid));

    let (pool, mut events, Remote { pid, launcher }) = start_remote(remote_worker()).await;
    let held = pool.enqueue(&HOLD);
    let (held, report) = futures::join!(held, async {
        tokio::task::yield_now().await;
        pool.hard_kill().await.expect("the pool is running")
    });
    assert!(matches!(held, Err(PoolError::Killed)), "{held:?}");
    assert_eq!(report.killed, 1, "{report:?}");
    // The worker read HardKill and exited, and so did its launcher, unsignalled.
    recv_or_fail(
        &mut events,
        "the launcher's own exit",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, code: Some(_), .. } if *p == launcher),
    )
    .await;
    assert!(has_exited(pid));
}

/// A launcher that outlives its worker and ignores SIGTERM is signalled in
/// turn: SIGTERM once the worker's input has been closed a while, then SIGKILL.
#[actix_rt::test]
async fn a_launcher_that_lingers_gets_sigterm_then_sigkill() {
    let command = behind_a_shell(
        &format!("trap '' TERM; {}", env!("CARGO_BIN_EXE_test_worker")),
        "exec sleep 1000",
    );
    let (pool, mut events, Remote { pid, launcher }) = start_remote(command).await;
    let report = within("the hard kill", pool.hard_kill())
        .await
        .expect("the pool is running");
    assert_eq!(report.killed, 1, "{report:?}");
    recv_or_fail(
        &mut events,
        "the launcher killed by SIGKILL",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildExited { pid: p, signal: Some(9), .. } if *p == launcher),
    )
    .await;
    assert!(has_exited(pid), "the worker exited on the HardKill frame");
}

/// Without its launcher, a remote worker reads end of file and exits; the
/// pool starts another.
#[actix_rt::test]
async fn a_worker_whose_launcher_is_killed_exits_on_end_of_file() {
    let (pool, mut events, Remote { pid, launcher }) = start_remote(remote_worker()).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launcher as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the worker exits on end of file", DEADLINE, || async {
        has_exited(pid)
    })
    .await;
    recv_or_fail(
        &mut events,
        "a replacement",
        DEADLINE,
        |e| matches!(e, PoolEvent::ChildSpawned { pid: p, .. } if *p != launcher),
    )
    .await;
    let (again, _): (u32, _) = call(&pool, &Op::Pid).await;
    assert_ne!(again, pid);
    pool.hard_kill().await.expect("the pool is running");
}
