//! TCP workers: the supervisor accepts TCP connections and hands each one to
//! a worker process, which serves it from then on.
//!
//! What it shows: socket handoff with a typed call. The supervisor binds
//! 127.0.0.1, accepts, and sends every accepted `TcpStream` to the pool as a
//! `TakeConnection` call with [`Enqueue::tcp`](lpm::Enqueue::tcp); the
//! descriptor travels to a worker over its channel (`SCM_RIGHTS`) and the
//! supervisor keeps no copy. The worker's handler takes it with
//! `CallContext::socket`, spawns a task that serves the connection from then
//! on (a greeting line, then every line echoed back upper-cased after the
//! worker's pid), and returns at once: its reply, `Taken`, names the
//! worker's pid, so the supervisor's `send` resolves as soon as the
//! connection is the worker's. New connections go to the worker holding the
//! fewest sockets, which the health table shows.
//!
//! By default the example is its own client, so it runs to completion
//! unattended: it opens 20 connections at once, checks every answer, prints
//! which worker served each connection, the per-worker counts and the
//! pool's health, closes the connections, soft-kills the pool and exits 0
//! (non-zero on any wrong or missing answer). With `--serve` it serves until
//! Ctrl-C instead (try `nc 127.0.0.1 <port>`); `--port N` picks the port
//! (default: any free one).
//!
//! ```text
//! cargo run --example tcp_workers
//! cargo run --example tcp_workers -- --serve --port 7878
//! ```
//!
//! Like the quickstart, the binary is both sides: it re-executes itself as
//! each worker (the worker sees `LPM_IPC_FD`). Linux only, as lpm is.
//!
//! When every worker should accept on the same port instead (Node cluster's
//! shared-handle style), `Pool::broadcast_listener` sends them all the
//! listening socket; per-connection handoff, shown here, lets the pool pick
//! the least loaded worker for each connection and count what each holds.

use std::collections::{BTreeMap, HashMap};
use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lpm::worker::{CallContext, Socket, Worker};
use lpm::{Call, Config, Enqueue, HealthTable, Pool, PoolEvent, WorkerCommand};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WORKERS: usize = 4;
/// Client connections opened at once in the default (self-test) mode.
const CLIENTS: usize = 20;
/// Lines each client sends.
const LINES: usize = 3;
/// How long the self-test may wait for anything before it fails.
const DEADLINE: Duration = Duration::from_secs(10);

type BoxError = Box<dyn Error>;

/// The call that carries a connection: the payload says whose it is.
#[derive(Serialize, Deserialize)]
struct TakeConnection {
    peer: String,
}

/// The worker's reply once the connection is its own: which worker it is.
#[derive(Serialize, Deserialize)]
struct Taken {
    pid: u32,
}

/// The call's wire name, and the reply type it promises.
impl Call for TakeConnection {
    const NAME: &'static str = "take_connection";
    type Reply = Taken;
}

/// A handed-off connection: the client's address and the worker that took it.
type Handoff = Result<(SocketAddr, u32), String>;

fn main() -> Result<(), BoxError> {
    if std::env::var_os(lpm::IPC_FD_ENV).is_some() {
        return worker_main();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut serve = false;
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--serve" => serve = true,
            "--port" => port = args.next().ok_or("--port needs a number")?.parse()?,
            other => {
                return Err(format!("unknown argument {other:?} (use --serve, --port N)").into())
            }
        }
    }
    actix_rt::System::new().block_on(supervisor_main(serve, port))
}

async fn supervisor_main(serve: bool, port: u16) -> Result<(), BoxError> {
    let pool = Pool::start(
        WorkerCommand::new(std::env::current_exe()?),
        Config::default()
            .workers(WORKERS)
            .timeout(Duration::from_secs(5)),
    );
    let mut events = pool.events();
    pool.online().await?;

    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    println!("{WORKERS} workers online; listening on {addr}");
    let (handoffs_tx, handoffs) = mpsc::unbounded_channel();
    actix_rt::spawn(accept_loop(pool.clone(), listener, handoffs_tx));

    if serve {
        println!(
            "serving until Ctrl-C; try: nc {} {}",
            addr.ip(),
            addr.port()
        );
        // The default SignalPolicy::SoftKill turns Ctrl-C into a soft kill;
        // the pool never exits its host, so exit once it has stopped.
        while let Some(event) = events.next().await {
            if let PoolEvent::Stopped(report) = event {
                println!(
                    "pool stopped: served {}, failed {}, killed {}",
                    report.served, report.failed, report.killed
                );
                break;
            }
        }
        return Ok(());
    }

    let result = tokio::time::timeout(DEADLINE, self_test(&pool, addr, handoffs)).await;
    let report = pool.soft_kill().await.expect("the pool is running");
    println!(
        "soft kill done: served {}, failed {}, killed {}",
        report.served, report.failed, report.killed
    );
    result.map_err(|_| format!("the self-test took longer than {DEADLINE:?}"))?
}

/// Accepts connections and hands each to a worker, concurrently.
async fn accept_loop(pool: Pool, listener: TcpListener, handoffs: mpsc::UnboundedSender<Handoff>) {
    loop {
        let (conn, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let pool = pool.clone();
        let handoffs = handoffs.clone();
        actix_rt::spawn(async move {
            let outcome = hand_off(&pool, conn, peer).await;
            if let Err(e) = &outcome {
                eprintln!("connection from {peer} not handed off: {e}");
            }
            let _ = handoffs.send(outcome.map(|pid| (peer, pid)).map_err(|e| e.to_string()));
        });
    }
}

/// Sends the connection to the pool; answers the pid of the worker that took it.
async fn hand_off(pool: &Pool, conn: TcpStream, peer: SocketAddr) -> Result<u32, BoxError> {
    let call = TakeConnection {
        peer: peer.to_string(),
    };
    // The connection travels with the call; `with_response` adds the
    // `Response`, to check the worker's word against the pool's.
    let request = Enqueue::call(call).tcp(conn.into_std()?).with_response();
    let (Taken { pid }, response) = pool.send(request).await?;
    // The worker replied: the connection is its own now.
    if pid != response.pid() {
        return Err(format!("worker pid {} replied that it is pid {pid}", response.pid()).into());
    }
    Ok(pid)
}

/// The client side: connects, checks, prints, closes.
async fn self_test(
    pool: &Pool,
    addr: SocketAddr,
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
) -> Result<(), BoxError> {
    let started = Instant::now();
    let clients = futures::future::join_all((0..CLIENTS).map(|n| client(addr, n))).await;
    let clients: Vec<Client> = clients.into_iter().collect::<Result<_, _>>()?;
    let elapsed = started.elapsed();

    // What the supervisor saw: which worker took each connection.
    let mut handed = HashMap::new();
    while handed.len() < CLIENTS {
        let (peer, pid) = handoffs.recv().await.ok_or("the accept loop stopped")??;
        handed.insert(peer, pid);
    }

    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for c in &clients {
        let taken_by = handed
            .get(&c.local)
            .ok_or_else(|| format!("no handoff for {}", c.local))?;
        if *taken_by != c.pid {
            return Err(format!(
                "connection {} was handed to pid {taken_by} but served by pid {}",
                c.local, c.pid
            )
            .into());
        }
        println!(
            "connection {:>2} from {} served by worker pid {}",
            c.n, c.local, c.pid
        );
        *per_worker.entry(c.pid).or_default() += 1;
    }
    println!(
        "{CLIENTS} connections x {LINES} lines answered in {elapsed:.1?}, each by the worker it was handed to"
    );
    for (pid, n) in &per_worker {
        println!("  pid {pid:>7} served {n} connections");
    }

    let health = pool.health().await?;
    println!("health while the clients are connected:");
    print!("{}", HealthTable(&health));
    let live: Vec<u32> = health.iter().filter_map(|w| w.pid).collect();
    if let Some(pid) = per_worker.keys().find(|pid| !live.contains(pid)) {
        return Err(format!("pid {pid} answered but is not one of the pool's workers").into());
    }

    // Closing the clients makes the workers drop their sockets and tell the pool.
    drop(clients);
    loop {
        let health = pool.health().await?;
        if health.iter().all(|w| w.sockets == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("clients closed: every worker holds 0 sockets");
    Ok(())
}

/// A connected client, kept open until the health table is printed.
struct Client {
    n: usize,
    local: SocketAddr,
    pid: u32,
    _conn: (Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf),
}

/// Connects, reads the greeting, sends [`LINES`] lines and checks the answers.
async fn client(addr: SocketAddr, n: usize) -> Result<Client, BoxError> {
    let conn = TcpStream::connect(addr).await?;
    let local = conn.local_addr()?;
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting = lines.next_line().await?.ok_or("no greeting")?;
    // "worker <pid> serving <peer>"
    let pid: u32 = greeting
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("bad greeting {greeting:?}"))?;
    for i in 0..LINES {
        let line = format!("hello {i} from client {n}");
        write.write_all(format!("{line}\n").as_bytes()).await?;
        let answer = lines.next_line().await?.ok_or("connection closed early")?;
        let expected = format!("{pid}: {}", line.to_uppercase());
        if answer != expected {
            return Err(format!("client {n}: expected {expected:?}, got {answer:?}").into());
        }
    }
    Ok(Client {
        n,
        local,
        pid,
        _conn: (lines, write),
    })
}

#[tokio::main]
async fn worker_main() -> Result<(), BoxError> {
    let worker = Worker::from_env().await?;
    worker.handle(take_connection);
    worker.ready();
    worker.run().await?;
    Ok(())
}

/// Takes the connection the call carries, serves it in a task of its own and
/// replies at once: the worker takes further calls meanwhile.
///
/// A typed call has no `ack` (its reply is the handler's return value), so
/// the handler hands the connection to a task and returns; the reply goes out
/// when it does.
async fn take_connection(
    TakeConnection { peer }: TakeConnection,
    mut ctx: CallContext,
) -> Result<Taken, lpm::BoxError> {
    let socket = ctx.socket()?.ok_or("the call carries no connection")?;
    tokio::spawn(async move {
        // A client that resets the connection is its own business.
        let _ = serve_connection(socket, &peer).await;
        // Dropping the socket closes it and tells the supervisor.
    });
    Ok(Taken {
        pid: std::process::id(),
    })
}

/// The line protocol: a greeting, then each line upper-cased after our pid.
async fn serve_connection(socket: Socket, peer: &str) -> std::io::Result<()> {
    let pid = std::process::id();
    let (read, mut write) = tokio::io::split(socket);
    write
        .write_all(format!("worker {pid} serving {peer}\n").as_bytes())
        .await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        write
            .write_all(format!("{pid}: {}\n", line.to_uppercase()).as_bytes())
            .await?;
    }
    Ok(())
}
