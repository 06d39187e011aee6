//! End-to-end smoke test over the protocol-only worker.

use lpm_actors::{Config, Pool, SignalPolicy, WorkerCommand};
use std::time::Duration;

#[actix_rt::test]
async fn raw_echo_worker_answers_requests() {
    let pool = Pool::start(
        WorkerCommand::new(env!("CARGO_BIN_EXE_raw_echo")),
        Config::default().workers(2).on_signal(SignalPolicy::Ignore),
    );
    tokio::time::timeout(Duration::from_secs(10), pool.online())
        .await
        .expect("pool did not come online within 10 s")
        .expect("pool cannot come online");
    let mut handles = Vec::new();
    for i in 0..1000u32 {
        let pool = pool.clone();
        handles.push(async move { pool.enqueue(&i).await });
    }
    let responses = futures::future::join_all(handles).await;
    let mut pids = std::collections::HashSet::new();
    for (i, r) in responses.into_iter().enumerate() {
        let r = r.expect("request failed");
        assert_eq!(r.data::<u32>().unwrap(), i as u32);
        pids.insert(r.pid());
    }
    assert_eq!(pids.len(), 2, "both workers should have served");
    let report = pool.soft_kill().await.expect("the pool is running");
    assert_eq!(report.served, 1000);
}
