//! What to run and how to run it: [`WorkerCommand`] and [`Config`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::balance::{Balance, CustomStrategy, LeastPressure, PowerOfTwoChoices, RoundRobin};
use crate::Autoscale;
use lpm_protocol::Codec;

/// The program each worker runs, with its arguments, environment and directory.
///
/// # Examples
///
/// ```
/// use lpm_actors::WorkerCommand;
///
/// let cmd = WorkerCommand::new("/usr/local/bin/my-worker")
///     .arg("--threads=1")
///     .env("RUST_LOG", "info")
///     .current_dir("/srv");
/// assert_eq!(cmd.program(), std::path::Path::new("/usr/local/bin/my-worker"));
/// ```
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) transport: Transport,
}

/// How frames travel between the supervisor and a worker; see
/// [`WorkerCommand::transport`] and the wire page's "The stdio transport".
///
/// It displays as its lower-case name (`"socketpair"`, `"stdio"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Transport {
    /// A Unix socketpair the worker inherits as fd 3 (`LPM_IPC_FD`); its
    /// stdout and stderr are its log. Streams, sockets and listeners pass
    /// as descriptors.
    #[default]
    Socketpair,
    /// The worker's stdin and stdout; its stderr is its log. Works through
    /// launchers that carry only stdio (`ssh host worker`, `docker run -i`):
    /// streams go in-band, sockets and listeners cannot be handed over
    /// ([`Error::NoFdPassing`](crate::Error::NoFdPassing)).
    Stdio,
}

impl Transport {
    /// The transport's lower-case name, e.g. `"stdio"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Socketpair => "socketpair",
            Transport::Stdio => "stdio",
        }
    }
}

impl std::fmt::Display for Transport {
    /// Writes [`Transport::as_str`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl WorkerCommand {
    /// Runs `program` (a path, or a name looked up in `PATH`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            transport: Transport::Socketpair,
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the worker (on top of the supervisor's own).
    #[must_use]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the worker's working directory.
    #[must_use]
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Chooses how frames travel: [`Transport::Socketpair`] (the default)
    /// or [`Transport::Stdio`], the worker's stdin and stdout, for workers
    /// started through a launcher that carries only those.
    ///
    /// # Examples
    ///
    /// A worker on another machine, through ssh (no TTY, so stdin and stdout
    /// stay plain pipes):
    ///
    /// ```
    /// use lpm_actors::{Transport, WorkerCommand};
    ///
    /// let cmd = WorkerCommand::new("ssh")
    ///     .args(["-T", "worker-host", "/srv/bin/my-worker"])
    ///     .transport(Transport::Stdio);
    /// assert_eq!(cmd.transport_kind(), Transport::Stdio);
    /// ```
    #[must_use]
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// The program to run.
    pub fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// How frames travel to and from this command's workers.
    pub fn transport_kind(&self) -> Transport {
        self.transport
    }
}

/// How the balancer picks a worker for each request: a built-in, or your own
/// [`Balance`] through [`Strategy::custom`]. See the [`balance`](crate::balance)
/// module for what a strategy sees.
///
/// # Examples
///
/// ```
/// use lpm_actors::{Config, Strategy};
///
/// let config = Config::default().workers(4).strategy(Strategy::RoundRobin);
/// assert_eq!(config.strategy, Strategy::RoundRobin);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// An idle worker first, else the least pressure: fewest in flight, then
    /// smallest RSS (the seed's behaviour); [`LeastPressure`].
    #[default]
    LeastPressure,
    /// Each ready worker in turn; [`RoundRobin`].
    RoundRobin,
    /// Two ready workers at random, the one under less pressure wins;
    /// [`PowerOfTwoChoices`].
    PowerOfTwoChoices {
        /// Seed for the random choice, so runs can be repeated.
        seed: u64,
    },
    /// Your own [`Balance`]; made by [`Strategy::custom`].
    Custom(CustomStrategy),
}

impl Strategy {
    /// Balances with your own [`Balance`].
    ///
    /// `strategy` is a prototype. A [`Config`] is `Clone` and may start
    /// several pools, while a strategy picks through `&mut self`; so the
    /// `Strategy` keeps the value you pass (shared, behind a lock, which is
    /// why it need not be `Sync`) and each pool started with it gets its own
    /// clone, made when the pool starts. State in plain fields (a cursor, a
    /// random generator) is thus each pool's own; state behind an `Arc` in
    /// it is shared by every clone, which is how a caller can watch what the
    /// strategy does.
    ///
    /// Each pick shows your strategy every eligible worker, so its cost grows
    /// with the pool's size, unlike the built-ins' (see [`Balance`]).
    ///
    /// # Examples
    ///
    /// Always the highest slot that can take the request:
    ///
    /// ```
    /// use lpm_actors::balance::{Balance, Candidate};
    /// use lpm_actors::{Config, Strategy};
    ///
    /// #[derive(Debug, Clone)]
    /// struct HighestSlot;
    ///
    /// impl Balance for HighestSlot {
    ///     fn pick(&mut self, candidates: &[Candidate]) -> usize {
    ///         candidates.len() - 1
    ///     }
    /// }
    ///
    /// let config = Config::default().workers(4).strategy(Strategy::custom(HighestSlot));
    /// assert!(matches!(config.strategy, Strategy::Custom(_)));
    /// ```
    pub fn custom(strategy: impl Balance + Clone) -> Self {
        Strategy::Custom(CustomStrategy::new(strategy))
    }

    /// A fresh balancing instance for one pool.
    pub(crate) fn instantiate(&self) -> Box<dyn Balance> {
        match self {
            Strategy::LeastPressure => Box::new(LeastPressure),
            Strategy::RoundRobin => Box::<RoundRobin>::default(),
            Strategy::PowerOfTwoChoices { seed } => Box::new(PowerOfTwoChoices::new(*seed)),
            Strategy::Custom(custom) => custom.instantiate(),
        }
    }
}

/// What the supervisor does on SIGINT or SIGTERM.
///
/// With `SoftKill` or `HardKill` the pool installs handlers for both signals;
/// from then on they no longer end the process by themselves (the library
/// never exits its host): exit on [`PoolEvent::Stopped`](crate::PoolEvent::Stopped)
/// or [`PoolEvent::Signal`](crate::PoolEvent::Signal) if that is what you want.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignalPolicy {
    /// Start a soft kill (a second signal escalates to a hard kill).
    #[default]
    SoftKill,
    /// Start a hard kill.
    HardKill,
    /// Leave the signals to the application.
    Ignore,
}

/// Pool settings. The defaults are the seed's: one worker, no timeout,
/// no retries, at most 5 restarts within 120 s.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lpm_actors::Config;
///
/// let config = Config::default()
///     .workers(4)
///     .timeout(Duration::from_secs(5))
///     .retries(2);
/// assert_eq!(config.workers, 4);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Workers to keep running (with [`Config::autoscale`], the number to
    /// start with, brought within its bounds).
    pub workers: usize,
    /// Scale the number of workers with load, between a minimum and a
    /// maximum; off (`None`) by default. See [`Autoscale`].
    pub autoscale: Option<Autoscale>,
    /// Per-attempt request timeout; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Times a request is tried again when its worker dies or its attempt times
    /// out on a worker. A request that times out while still queued is not
    /// retried (another attempt would only wait in the same queue).
    pub retries: u32,
    /// Restarts allowed per slot within `restart_window` before giving up on the slot.
    pub max_restarts: u32,
    /// The sliding window for `max_restarts`.
    pub restart_window: Duration,
    /// Delay before the second restart of a slot within the window (the first
    /// is immediate); it doubles with each further restart in the window.
    pub restart_backoff: Duration,
    /// Cap on the delay between restarts.
    pub max_restart_backoff: Duration,
    /// How long a slot given up after `max_restarts` rests before it is tried
    /// again, its restart window starting over
    /// ([`PoolEvent::SlotRevived`](crate::PoolEvent::SlotRevived)); `None`
    /// gives it up for good (until a resize). While every slot is given up
    /// and none is revived within `max_restart_backoff`, requests fail with
    /// [`Error::NoWorkers`](crate::Error::NoWorkers) rather than wait.
    pub revive_after: Option<Duration>,
    /// Requests that may wait for a worker; past it, enqueue answers
    /// `QueueFull`. It also bounds the requests handed to the Balancer and
    /// not taken in yet (a caller's loop that never yields), so the intake
    /// holds at most about twice this many. Requests that
    /// [`wait_for_room`](crate::Enqueue::wait_for_room) are not refused.
    pub queue_capacity: usize,
    /// Requests one worker may hold at once.
    pub max_in_flight: usize,
    /// Descriptors one worker may have in flight at once: requests with a
    /// stream or socket not answered yet plus response streams not ended
    /// yet. Further such requests wait in the queue, in order, while
    /// requests without a descriptor behind them go on to the workers.
    /// (Sockets a worker keeps serving after its `ack` do not count here.)
    /// Over the stdio transport the in-band streams count the same way;
    /// each holds at most a 256 KiB window in memory.
    pub max_fds_in_flight: usize,
    /// How a worker is picked: a built-in [`Strategy`], or your own
    /// [`Balance`] with [`Strategy::custom`].
    pub strategy: Strategy,
    /// How long a soft kill waits for workers before SIGTERM.
    pub soft_kill_grace: Duration,
    /// How long after SIGTERM before SIGKILL.
    pub term_grace: Duration,
    /// What SIGINT/SIGTERM do.
    pub on_signal: SignalPolicy,
    /// How often each worker's RSS and CPU are sampled.
    pub sample_interval: Duration,
    /// How long a new worker has, from its spawn, to send its `Hello` before
    /// it is killed. The Rust worker runtime sends it when `Worker::run`
    /// starts, so this bounds the worker's own set-up too.
    pub spawn_timeout: Duration,
    /// Largest frame body either side may send.
    pub max_frame_len: usize,
    /// Heartbeat: how often each worker is pinged, and how long it may go
    /// without answering before it is killed as hung. Off (`None`) by default:
    /// a worker whose handlers block its runtime would not answer either.
    pub heartbeat: Option<Heartbeat>,
    /// When a request times out on a worker, recycle that worker too (SIGTERM,
    /// then SIGKILL after `term_grace`), as uWSGI's harakiri does. Off by default.
    pub recycle_on_timeout: bool,
    /// Replace a worker after it has answered this many requests, plus a
    /// random share of `max_requests_jitter` so workers do not all recycle at once.
    pub max_requests: Option<u64>,
    /// The random extra for `max_requests` (0 to this, per worker).
    pub max_requests_jitter: u64,
    /// Replace a worker whose resident memory passes this many bytes
    /// (checked every `sample_interval`).
    pub max_rss: Option<u64>,
    /// How payloads are encoded: postcard (the default, compact) or JSON
    /// (self-describing: `serde_json::Value` works, and a worker in another
    /// language needs only JSON). Workers learn it from `LPM_CODEC`; a
    /// worker whose `Hello` names another codec is killed at the handshake
    /// ([`KillReason::CodecMismatch`](crate::KillReason::CodecMismatch)).
    pub codec: Codec,
}

/// How a pool checks that its workers still answer; see [`Config::heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Time between pings.
    pub every: Duration,
    /// Silence after which the worker is killed as hung.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            workers: 1,
            timeout: None,
            retries: 0,
            max_restarts: 5,
            restart_window: Duration::from_secs(120),
            restart_backoff: Duration::from_millis(50),
            max_restart_backoff: Duration::from_secs(5),
            revive_after: Some(Duration::from_secs(60)),
            autoscale: None,
            queue_capacity: 10_000,
            max_in_flight: 256,
            max_fds_in_flight: 64,
            strategy: Strategy::default(),
            soft_kill_grace: Duration::from_secs(30),
            term_grace: Duration::from_secs(5),
            on_signal: SignalPolicy::default(),
            sample_interval: Duration::from_millis(500),
            spawn_timeout: Duration::from_secs(10),
            max_frame_len: lpm_protocol::DEFAULT_MAX_FRAME_LEN,
            heartbeat: None,
            recycle_on_timeout: false,
            max_requests: None,
            max_requests_jitter: 0,
            max_rss: None,
            codec: Codec::Postcard,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        impl Config {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, value: $ty) -> Self {
                    self.$name = value;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`Config::workers`].
    workers: usize,
    /// Sets [`Config::retries`].
    retries: u32,
    /// Sets [`Config::max_restarts`].
    max_restarts: u32,
    /// Sets [`Config::restart_window`].
    restart_window: Duration,
    /// Sets [`Config::restart_backoff`].
    restart_backoff: Duration,
    /// Sets [`Config::max_restart_backoff`].
    max_restart_backoff: Duration,
    /// Sets [`Config::queue_capacity`].
    queue_capacity: usize,
    /// Sets [`Config::max_in_flight`].
    max_in_flight: usize,
    /// Sets [`Config::max_fds_in_flight`].
    max_fds_in_flight: usize,
    /// Sets [`Config::strategy`].
    strategy: Strategy,
    /// Sets [`Config::soft_kill_grace`].
    soft_kill_grace: Duration,
    /// Sets [`Config::term_grace`].
    term_grace: Duration,
    /// Sets [`Config::on_signal`].
    on_signal: SignalPolicy,
    /// Sets [`Config::sample_interval`].
    sample_interval: Duration,
    /// Sets [`Config::spawn_timeout`].
    spawn_timeout: Duration,
    /// Sets [`Config::max_frame_len`].
    max_frame_len: usize,
    /// Sets [`Config::recycle_on_timeout`].
    recycle_on_timeout: bool,
    /// Sets [`Config::codec`].
    codec: Codec,
}

impl Config {
    /// Sets [`Config::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Pings every worker `every` and kills one silent for `timeout` (see [`Config::heartbeat`]).
    ///
    /// # Examples
    ///
    /// Workers that leak or hang, kept in check:
    ///
    /// ```
    /// use std::time::Duration;
    /// use lpm_actors::Config;
    ///
    /// let config = Config::default()
    ///     .workers(4)
    ///     .heartbeat(Duration::from_secs(1), Duration::from_secs(10))
    ///     .max_requests(10_000, 1_000)
    ///     .max_rss(512 << 20)
    ///     .timeout(Duration::from_secs(30))
    ///     .recycle_on_timeout(true);
    /// assert_eq!(config.max_rss, Some(512 << 20));
    /// ```
    #[must_use]
    pub fn heartbeat(mut self, every: Duration, timeout: Duration) -> Self {
        self.heartbeat = Some(Heartbeat { every, timeout });
        self
    }

    /// Recycles each worker after `requests` answers plus a random 0 to
    /// `jitter` more (see [`Config::max_requests`]).
    #[must_use]
    pub fn max_requests(mut self, requests: u64, jitter: u64) -> Self {
        self.max_requests = Some(requests);
        self.max_requests_jitter = jitter;
        self
    }

    /// Recycles a worker whose RSS passes `bytes` (see [`Config::max_rss`]).
    #[must_use]
    pub fn max_rss(mut self, bytes: u64) -> Self {
        self.max_rss = Some(bytes);
        self
    }

    /// Scales the pool with load (see [`Autoscale`]). The pool starts with
    /// [`Config::workers`] brought within the bounds, and
    /// [`Resize`](crate::Resize) is refused with
    /// [`Error::Autoscaling`](crate::Error::Autoscaling) from then on.
    #[must_use]
    pub fn autoscale(mut self, autoscale: Autoscale) -> Self {
        self.autoscale = Some(autoscale);
        self
    }

    /// Tries a slot given up after its restart limit again after `rest`
    /// (see [`Config::revive_after`]).
    #[must_use]
    pub fn revive_after(mut self, rest: Duration) -> Self {
        self.revive_after = Some(rest);
        self
    }

    /// Gives a slot up for good once it reaches its restart limit (see
    /// [`Config::revive_after`]).
    #[must_use]
    pub fn never_revive(mut self) -> Self {
        self.revive_after = None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let c = Config::default();
        assert_eq!(c.workers, 1);
        assert_eq!(c.timeout, None);
        assert_eq!(c.retries, 0);
        assert_eq!(c.max_restarts, 5);
        assert_eq!(c.restart_window, Duration::from_secs(120));
        assert_eq!(c.strategy, Strategy::LeastPressure);
        assert_eq!(c.on_signal, SignalPolicy::SoftKill);
        assert_eq!(c.autoscale, None);
        assert_eq!(c.revive_after, Some(Duration::from_secs(60)));
        assert_eq!(c.never_revive().revive_after, None);
    }
}
