//! Socket handoff and listener broadcast, on loopback: connections go to the
//! workers as descriptors, spread by sockets held, each served by exactly one
//! worker; the counts go back to 0 when clients close; a broadcast listener
//! reaches the workers started later (a restart, a resize).

use std::collections::HashMap;
use std::time::Duration;

use lpm::{Config, WorkerCommand};
use lpm_tests::{
    connection, start_stream_pool, wait_for_health, within, StreamOp, DEADLINE, LISTEN,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

fn command() -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_stream_worker"))
}

/// Broadcasts a fresh loopback listener to the pool's workers; answers its
/// address and how many workers it reached.
async fn broadcast_a_listener(pool: &lpm::Pool) -> (std::net::SocketAddr, usize) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reached = within(
        "the broadcast",
        pool.broadcast_listener(LISTEN, &(), listener),
    )
    .await
    .unwrap();
    (addr, reached)
}

/// Sends `line` and reads the worker's answer: its pid.
async fn ask(
    lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    line: &str,
) -> u32 {
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let answer = within("the worker's answer", lines.next_line())
        .await
        .unwrap()
        .expect("an answer line");
    let (pid, echoed) = answer.split_once(' ').unwrap();
    assert_eq!(echoed, line);
    pid.parse().unwrap()
}

#[actix_rt::test]
async fn handed_off_connections_spread_and_each_is_served_by_one_worker() {
    let pool = start_stream_pool(command(), Config::default().workers(3)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();

    let mut clients = Vec::new();
    for i in 0..100 {
        let (client, request) = connection(&listener, &StreamOp::Serve).await;
        let response = within("the ack", pool.send(request)).await.unwrap();
        assert!(response.is_ack(), "request {i}");
        clients.push(client);
    }
    let health = pool.health().await.unwrap();
    let held: usize = health.iter().map(|h| h.sockets).sum();
    assert_eq!(held, 100, "{health:?}");
    for h in &health {
        // Fewest sockets first: 100 over 3 workers is 33 or 34 each.
        assert!((33..=34).contains(&h.sockets), "{health:?}");
    }

    let mut served_by: HashMap<u32, usize> = HashMap::new();
    for client in clients {
        let (read, mut write) = client.into_split();
        let mut lines = BufReader::new(read).lines();
        let first = ask(&mut lines, &mut write, "one").await;
        let second = ask(&mut lines, &mut write, "two").await;
        assert_eq!(first, second, "a connection is served by one worker");
        *served_by.entry(first).or_default() += 1;
    }
    assert_eq!(served_by.len(), 3, "{served_by:?}");
    assert_eq!(served_by.values().sum::<usize>(), 100);

    // The clients are closed (dropped above): every worker reports its sockets closed.
    wait_for_health(&pool, "every socket to be closed", DEADLINE, |h| {
        h.iter().all(|w| w.sockets == 0)
    })
    .await;
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_broadcast_listener_is_accepted_on_by_several_workers() {
    let pool = start_stream_pool(command(), Config::default().workers(3)).await;
    let (addr, reached) = broadcast_a_listener(&pool).await;
    assert_eq!(reached, 3);

    let mut pids = HashMap::<u32, usize>::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    // The kernel spreads accepts; keep connecting until several workers answered.
    while pids.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {pids:?} answered"
        );
        *pids.entry(accepted_by(addr).await).or_default() += 1;
    }
    pool.hard_kill().await.expect("the pool is running");
}

/// Connects to a broadcast listener and reads the pid of the worker that accepted.
async fn accepted_by(addr: std::net::SocketAddr) -> u32 {
    let conn = within("a connection", TcpStream::connect(addr))
        .await
        .unwrap();
    let mut lines = BufReader::new(conn).lines();
    within("the pid line", lines.next_line())
        .await
        .unwrap()
        .expect("a line")
        .parse()
        .unwrap()
}

/// Connects until the worker `pid` accepts one connection; fails the test
/// after [`DEADLINE`], naming the pids that accepted instead.
async fn until_accepted_by(addr: std::net::SocketAddr, pid: u32) {
    let mut seen = HashMap::<u32, usize>::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let by = accepted_by(addr).await;
        if by == pid {
            return;
        }
        *seen.entry(by).or_default() += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "worker {pid} accepted nothing within {DEADLINE:?}; accepted by {seen:?}"
        );
    }
}

/// Waits until `n` workers are ready, none of them in `gone`, and answers their pids.
async fn ready_pids(pool: &lpm::Pool, n: usize, gone: &[u32]) -> Vec<u32> {
    let health = wait_for_health(pool, "the workers to be ready", DEADLINE, |h| {
        h.len() == n
            && h.iter().all(|w| {
                w.state == lpm::WorkerState::Ready && w.pid.is_some_and(|p| !gone.contains(&p))
            })
    })
    .await;
    lpm_tests::pids(&health)
}

#[actix_rt::test]
async fn a_restarted_worker_gets_the_broadcast_listener() {
    let pool = start_stream_pool(command(), Config::default().workers(2)).await;
    let (addr, reached) = broadcast_a_listener(&pool).await;
    assert_eq!(reached, 2);
    let before = ready_pids(&pool, 2, &[]).await;

    let killed = before[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(killed as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let after = ready_pids(&pool, 2, &[killed]).await;
    let replacement = *after
        .iter()
        .find(|p| !before.contains(p))
        .expect("a replacement worker");
    until_accepted_by(addr, replacement).await;
    pool.hard_kill().await.expect("the pool is running");
}

#[actix_rt::test]
async fn a_worker_added_by_resize_gets_the_broadcast_listener() {
    let pool = start_stream_pool(command(), Config::default().workers(1)).await;
    let (addr, _) = broadcast_a_listener(&pool).await;
    let first = ready_pids(&pool, 1, &[]).await[0];
    until_accepted_by(addr, first).await;

    within("the resize", pool.resize(2)).await.unwrap();
    let pids = ready_pids(&pool, 2, &[]).await;
    let added = *pids.iter().find(|&&p| p != first).expect("an added worker");
    until_accepted_by(addr, added).await;
    pool.hard_kill().await.expect("the pool is running");
}

/// A soft kill lets a worker finish the connections it was handed: the
/// connection keeps being served after the kill starts, and the kill
/// completes, with no worker killed, once the client closes it.
#[actix_rt::test]
async fn a_soft_kill_waits_for_handed_off_connections() {
    let pool = start_stream_pool(command(), Config::default()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (client, request) = connection(&listener, &StreamOp::Serve).await;
    assert!(within("the ack", pool.send(request))
        .await
        .unwrap()
        .is_ack());
    let (read, mut write) = client.into_split();
    let mut lines = BufReader::new(read).lines();
    let pid = ask(&mut lines, &mut write, "before").await;

    let mut kill = Box::pin(futures::FutureExt::map(pool.soft_kill(), |r| {
        r.expect("the pool is running")
    }));
    // Without the connection the worker would be gone well within this window.
    let early = tokio::time::timeout(Duration::from_millis(500), &mut kill).await;
    assert!(
        early.is_err(),
        "the soft kill ended with a connection open: {early:?}"
    );
    // Still served while the kill waits for the connection.
    assert_eq!(ask(&mut lines, &mut write, "during").await, pid);
    drop((lines, write));
    let report = within("the soft kill", kill).await;
    assert_eq!(report.killed, 0, "{report:?}");
}
