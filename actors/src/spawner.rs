//! The spawner: threads of their own that fork and exec worker processes, so
//! that starting a worker never stalls the pool's actor thread (where every
//! request is dispatched), and several workers start at once.
//!
//! A thread that starts a process waits until the child has called `exec`
//! (or failed to): the child borrows the thread's memory until then
//! (`worker_handle/spawn/launch.rs`). Several threads let the next start
//! begin while earlier children are still getting to `exec`.
//!
//! The threads are shared by every pool of the process and never end. That
//! matters: a worker's parent-death signal (`PR_SET_PDEATHSIG`) fires when
//! the *thread* that started it ends, not the process. A pool of threads that
//! retires idle ones (tokio's blocking pool does, after 10 s) would SIGKILL
//! the workers they had started.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// How many spawns may be in progress at once. More than the cores of a
/// small machine: a starting thread mostly waits for its child to reach
/// `exec`. (On 2 cores, 2, 4 and 8 threads brought 64 workers online
/// equally fast, 1 thread took 1.6 times as long.)
const THREADS: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

/// The queue the spawner threads take their jobs from; `None` until the
/// first job (or while no thread could be started).
static QUEUE: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// Runs `job` on a spawner thread; the receiver gets what it returns.
///
/// Should the receiver be gone by then, the result is dropped on the spawner
/// thread: a result that owns a process must kill and reap it on drop.
///
/// # Errors
///
/// No spawner thread could be started (`EAGAIN`: the process or the system
/// is out of threads); a later call tries again.
pub(crate) fn run<T, F>(job: F) -> io::Result<oneshot::Receiver<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    submit(Box::new(move || {
        // A closed receiver hands the result back, and it drops here.
        let _ = tx.send(job());
    }))?;
    Ok(rx)
}

/// Runs `job` on a spawner thread, or on this one if none can be started;
/// for work that must happen even then (reaping a child).
pub(crate) fn detach(job: impl FnOnce() + Send + 'static) {
    let job: Job = Box::new(job);
    let queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    let unsent = match queue.as_ref() {
        Some(sender) => match sender.send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    drop(queue);
    // Only reached when no spawner thread exists, and then no child was
    // forked by one: nothing is waiting for this job.
    unsent();
}

fn submit(job: Job) -> io::Result<()> {
    let mut queue = QUEUE.lock().unwrap_or_else(PoisonError::into_inner);
    let sender = match queue.as_ref() {
        Some(sender) => sender,
        None => queue.insert(start_threads()?),
    };
    sender
        .send(job)
        .map_err(|_| io::Error::other("the spawner threads are gone"))
}

/// Starts the threads; succeeds when at least one is running.
fn start_threads() -> io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    let mut last_error = None;
    for n in 0..THREADS {
        let rx = Arc::clone(&rx);
        let thread = std::thread::Builder::new()
            .name(format!("lpm-spawner-{n}"))
            .spawn(move || serve(&rx));
        match thread {
            Ok(_) => started += 1,
            Err(e) => last_error = Some(e),
        }
    }
    match (started, last_error) {
        (0, Some(e)) => Err(e),
        (started, error) => {
            if let Some(e) = error {
                tracing::warn!(started, wanted = THREADS, error = %e, "started fewer spawner threads than planned");
            }
            Ok(tx)
        }
    }
}

/// A spawner thread's life: jobs, one at a time, for as long as the process runs.
fn serve(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is released before the job runs, so the next idle thread takes the next job.
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        // This thread must not end: the workers it forked would die with it.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a spawner job panicked; the spawner thread goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_off_the_calling_thread_and_returns_their_results() {
        let caller = std::thread::current().id();
        let rx = run(move || std::thread::current().id() != caller).unwrap();
        assert_eq!(rx.blocking_recv(), Ok(true));
    }

    #[test]
    fn runs_several_jobs_at_once() {
        // Two jobs that each wait for the other: only done when both run at once.
        let (a_tx, a_rx) = std::sync::mpsc::channel();
        let (b_tx, b_rx) = std::sync::mpsc::channel();
        let first = run(move || {
            a_tx.send(()).unwrap();
            b_rx.recv().is_ok()
        })
        .unwrap();
        let second = run(move || {
            b_tx.send(()).unwrap();
            a_rx.recv().is_ok()
        })
        .unwrap();
        assert_eq!(first.blocking_recv(), Ok(true));
        assert_eq!(second.blocking_recv(), Ok(true));
    }

    #[test]
    fn a_panicking_job_leaves_the_threads_serving() {
        let panicked = run::<(), _>(|| panic!("a job panics")).unwrap();
        assert!(panicked.blocking_recv().is_err(), "no result from a panic");
        for _ in 0..2 * THREADS {
            assert_eq!(run(|| 7).unwrap().blocking_recv(), Ok(7));
        }
    }

    #[test]
    fn a_result_nobody_waits_for_is_dropped_on_the_spawner_thread() {
        struct Noted(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Noted {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let result = run(move || {
            let _ = go_rx.recv();
            Noted(tx)
        })
        .unwrap();
        drop(result);
        go_tx.send(()).unwrap();
        let dropped_on = rx.recv().unwrap();
        assert_ne!(dropped_on, std::thread::current().id());
    }
}
