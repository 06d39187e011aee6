//! Out of descriptors (`EMFILE`): a request stream that needs a pipe fails
//! with `PoolError::Descriptor`, so does a response stream whose pipe the
//! kernel could not hand over (the worker is not blamed), nothing leaks,
//! nothing panics or hangs, and the same worker serves again once
//! descriptors are free; a worker that dies meanwhile is restarted once they
//! are, however many restarts failed for want of them. Run in a supervisor
//! process of its own (`fd_limit_supervisor`), since the limit is per process.

use std::process::Stdio;

use lpm_tests::within;

#[tokio::test]
async fn out_of_descriptors_a_stream_request_fails_with_a_typed_error_and_leaks_nothing() {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fd_limit_supervisor"))
        .arg(env!("CARGO_BIN_EXE_stream_worker"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = within("fd_limit_supervisor to finish", child.wait_with_output())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!(
        "{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    let lines: Vec<&str> = stdout.lines().collect();
    let field = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .collect()
    };

    let warm_up = field("warm-up");
    let [warm_up] = warm_up.as_slice() else {
        panic!("{report}")
    };
    let worker = warm_up
        .strip_prefix("served 1000 by ")
        .unwrap_or_else(|| panic!("{report}"));
    let streams = field("stream");
    assert_eq!(streams.len(), 3, "{report}");
    for outcome in streams {
        assert!(
            outcome.starts_with("descriptor stream: ") && outcome.contains("os error 24"),
            "expected PoolError::Descriptor for EMFILE, got {outcome:?}\n{report}"
        );
    }
    // A descriptor passed as it is needs none of our own.
    assert_eq!(field("file"), [format!("served 0 by {worker}")], "{report}");
    let response = field("response");
    assert!(
        response.len() == 1
            && response[0].starts_with("descriptor response stream: its pipe did not arrive"),
        "{report}"
    );
    let fds = field("fds");
    assert_eq!(fds.len(), 2, "{report}");
    assert_eq!(fds[0], fds[1], "descriptors leaked\n{report}");
    // Still the same worker: running out of descriptors is not its fault.
    assert_eq!(
        field("stream after"),
        [format!("served 1000 by {worker}")],
        "{report}"
    );
    // Restarts that failed for want of descriptors did not use up the
    // restart window: a new worker serves once the limit is lifted.
    let restarted = field("restarted");
    assert!(
        restarted.len() == 1
            && restarted[0].starts_with("served 1000 by ")
            && !restarted[0].ends_with(&format!(" {worker}")),
        "{report}"
    );
}
