//! Workers inherit nothing but stdio (0, 1, 2) and their channel (3), however
//! many descriptors the supervisor holds when it starts them, close-on-exec
//! or not.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use lpm::Strategy;
use lpm_tests::{call, config, online, start, test_worker, wait_for_health, Op, DEADLINE};

/// A duplicate of `fd` without close-on-exec, as a library or the host's own
/// parent may leave one.
fn inheritable(fd: impl AsFd) -> OwnedFd {
    let dup = fd.as_fd().try_clone_to_owned().unwrap();
    nix::fcntl::fcntl(
        &dup,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    dup
}

/// Asks every worker of the pool for the descriptors it inherited, until each
/// of the `n` workers answered; keyed by pid.
async fn inherited_by_each(pool: &lpm::Pool, n: usize) -> HashMap<u32, Vec<i32>> {
    let health = wait_for_health(pool, "the workers to be ready", DEADLINE, |h| {
        h.len() == n && h.iter().all(|w| w.state == lpm::WorkerState::Ready)
    })
    .await;
    let mut answers = HashMap::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while answers.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {answers:?} of {n} workers answered"
        );
        let (fds, response): (Vec<i32>, _) = call(pool, &Op::InheritedFds).await;
        answers.insert(response.pid(), fds);
    }
    assert!(lpm_tests::pids(&health)
        .iter()
        .all(|p| answers.contains_key(p)));
    answers
}

#[actix_rt::test]
async fn workers_inherit_only_stdio_and_their_channel() {
    // The supervisor holds a file, a listener, both ends of a connection and
    // a descriptor without close-on-exec when its workers start.
    let file = tempfile::tempfile().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let leaky = inheritable(&file);

    let (pool, _events) = start(test_worker!(), config(2).strategy(Strategy::RoundRobin));
    online(&pool).await;
    for (pid, fds) in inherited_by_each(&pool, 2).await {
        assert_eq!(fds, [0, 1, 2, 3], "worker {pid} inherited more");
    }

    // A worker started later, while the supervisor holds even more.
    let (unix_a, unix_b) = std::os::unix::net::UnixStream::pair().unwrap();
    let leaky_socket = inheritable(&accepted);
    pool.resize(3).await.unwrap();
    for (pid, fds) in inherited_by_each(&pool, 3).await {
        assert_eq!(fds, [0, 1, 2, 3], "worker {pid} inherited more");
    }
    drop((
        file,
        listener,
        client,
        accepted,
        leaky,
        unix_a,
        unix_b,
        leaky_socket,
    ));
    pool.hard_kill().await.expect("the pool is running");
}
