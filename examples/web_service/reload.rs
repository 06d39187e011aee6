//! SIGHUP reloads the workers, as gunicorn's HUP does: the service reads
//! its workers' environment file again and replaces every worker, one slot
//! at a time, with one started from it (`Pool::reload`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use lpm::{Pool, PoolError, ReloadReport, WorkerCommand};
use serde::Serialize;
use tokio::signal::unix::Signal;

/// How to start a worker: this executable, with the variables of the
/// environment file (if there is one) on top of the service's own
/// environment.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    /// Resolved once, at start: a deploy that replaces the file at this
    /// path is what a reload then starts.
    pub(crate) exe: PathBuf,
    /// `--env-file`, read at start and on every SIGHUP.
    pub(crate) env_file: Option<PathBuf>,
}

impl WorkerSpec {
    /// The command for the next workers, with the environment file as it
    /// reads now.
    pub(crate) fn command(&self) -> Result<WorkerCommand, String> {
        let mut command = WorkerCommand::new(&self.exe);
        if let Some(path) = &self.env_file {
            for (key, value) in read_env_file(path)? {
                command = command.env(key, value);
            }
        }
        Ok(command)
    }
}

/// What `GET /health` says about reloads.
#[derive(Debug, Default, Serialize)]
pub(crate) struct ReloadStatus {
    /// A reload is under way.
    pub(crate) running: bool,
    /// The report of the last reload that ended.
    pub(crate) last: Option<ReloadReport>,
}

/// Shared between the SIGHUP task and the `/health` handler.
pub(crate) type SharedStatus = Arc<Mutex<ReloadStatus>>;

fn update(status: &SharedStatus, change: impl FnOnce(&mut ReloadStatus)) {
    // A panic elsewhere cannot leave a half-written status: take it as is.
    change(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

/// The status as `GET /health` shows it.
pub(crate) fn to_json(status: &SharedStatus) -> serde_json::Value {
    let status = status.lock().unwrap_or_else(PoisonError::into_inner);
    serde_json::to_value(&*status).unwrap_or_default()
}

/// Starts a reload on every SIGHUP, until the process ends. Each reload
/// runs in a task of its own, so a SIGHUP during a reload still reaches the
/// pool, which refuses it (`ReloadInProgress`): that is logged, and the
/// reload under way goes on.
pub(crate) async fn reload_on_hangup(
    mut hangup: Signal,
    pool: Pool,
    spec: WorkerSpec,
    status: SharedStatus,
) {
    while hangup.recv().await.is_some() {
        actix_rt::spawn(reload(pool.clone(), spec.clone(), Arc::clone(&status)));
    }
}

async fn reload(pool: Pool, spec: WorkerSpec, status: SharedStatus) {
    let command = match spec.command() {
        Ok(command) => command,
        Err(e) => {
            eprintln!("SIGHUP: no reload, the workers keep running: {e}");
            return;
        }
    };
    eprintln!("SIGHUP: asking for a rolling reload of every worker");
    update(&status, |s| s.running = true);
    match pool.reload(command).await {
        Ok(report) => {
            match &report.error {
                None => eprintln!("reload done: {} workers replaced", report.replaced.len()),
                Some(e) => eprintln!(
                    "reload stopped after {} workers replaced: {e}",
                    report.replaced.len()
                ),
            }
            update(&status, |s| {
                s.running = false;
                s.last = Some(report);
            });
        }
        // The reload under way answers for `running`.
        Err(e @ PoolError::ReloadInProgress) => eprintln!("SIGHUP refused: {e}"),
        Err(e) => {
            eprintln!("SIGHUP refused: {e}");
            update(&status, |s| s.running = false);
        }
    }
}

/// Reads `KEY=VALUE` lines (see [`parse_env`]).
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    // A few lines, read once per SIGHUP: no need for the blocking pool.
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the env file {}: {e}", path.display()))?;
    parse_env(&text).map_err(|e| format!("env file {}: {e}; fix it", path.display()))
}

/// `KEY=VALUE` lines; blank lines and lines starting with `#` are skipped.
/// Keys and values are trimmed and taken as written: no quotes, no `$`.
fn parse_env(text: &str) -> Result<Vec<(String, String)>, String> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(number, line)| match line.split_once('=') {
            Some((key, value)) if valid_key(key.trim()) => {
                Ok((key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(format!("line {number}: expected KEY=VALUE, found {line:?}")),
        })
        .collect()
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains(|c: char| c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_pairs_and_skips_comments_and_blank_lines() {
        let text = "# the workers' version\nWEB_SERVICE_VERSION = 2\n\n  RUST_LOG=info,lpm=debug\nEMPTY=\n";
        assert_eq!(
            parse_env(text),
            Ok(pairs(&[
                ("WEB_SERVICE_VERSION", "2"),
                ("RUST_LOG", "info,lpm=debug"),
                ("EMPTY", ""),
            ]))
        );
    }

    #[test]
    fn names_the_line_it_cannot_read() {
        assert_eq!(
            parse_env("A=1\nno equals sign\n"),
            Err(r#"line 2: expected KEY=VALUE, found "no equals sign""#.to_owned())
        );
        assert!(parse_env("=1").unwrap_err().starts_with("line 1:"));
        assert!(parse_env("TWO WORDS=1").unwrap_err().starts_with("line 1:"));
    }
}
