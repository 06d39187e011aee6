//! The command line: a fixed pool or an autoscaled one, and the workers'
//! environment file.

use std::path::PathBuf;
use std::time::Duration;

use lpm::{Autoscale, Config, SignalPolicy};

/// The command line (see the module's docs).
pub(crate) struct Options {
    pub(crate) bind: String,
    pub(crate) size: Size,
    pub(crate) env_file: Option<PathBuf>,
}

/// How many workers.
pub(crate) enum Size {
    Fixed(usize),
    Autoscale {
        min: usize,
        max: usize,
        idle_for: Duration,
    },
}

impl Options {
    pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let (mut bind, mut workers, mut bounds, mut idle_for, mut env_file) =
            ("127.0.0.1:8080".to_owned(), None, None, None, None);
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let invalid = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--bind" => bind = value,
                "--workers" => workers = Some(value.parse::<usize>().map_err(|e| invalid(&e))?),
                "--autoscale" => bounds = Some(parse_bounds(&value).map_err(|e| invalid(&e))?),
                "--idle-for" => {
                    let secs: f64 = value.parse().map_err(|e| invalid(&e))?;
                    idle_for = Some(Duration::try_from_secs_f64(secs).map_err(|e| invalid(&e))?);
                }
                "--env-file" => env_file = Some(PathBuf::from(value)),
                other => return Err(format!("unknown option {other}")),
            }
        }
        let size = match (workers, bounds, idle_for) {
            (Some(_), Some(_), _) => {
                return Err("--workers and --autoscale exclude each other: choose one".into())
            }
            (_, None, Some(_)) => return Err("--idle-for needs --autoscale MIN,MAX".into()),
            (workers, None, None) => Size::Fixed(workers.unwrap_or(4)),
            (None, Some((min, max)), idle_for) => Size::Autoscale {
                min,
                max,
                idle_for: idle_for.unwrap_or(Duration::from_secs(30)),
            },
        };
        Ok(Options {
            bind,
            size,
            env_file,
        })
    }

    pub(crate) fn config(&self) -> Config {
        let config = Config::default()
            .timeout(Duration::from_secs(30))
            .retries(2)
            // The server decides when to stop, not the pool.
            .on_signal(SignalPolicy::Ignore);
        match self.size {
            Size::Fixed(workers) => config.workers(workers),
            // Start small; the load brings the rest.
            Size::Autoscale { min, max, idle_for } => config
                .workers(min)
                .autoscale(web_autoscale(min, max, idle_for)),
        }
    }
}

/// `MIN,MAX`, with 1 <= MIN <= MAX.
fn parse_bounds(value: &str) -> Result<(usize, usize), String> {
    let (min, max) = value.split_once(',').ok_or("expected MIN,MAX")?;
    let (min, max): (usize, usize) = (
        min.trim().parse().map_err(|e| format!("MIN: {e}"))?,
        max.trim().parse().map_err(|e| format!("MAX: {e}"))?,
    );
    if min == 0 || min > max {
        return Err("expected 1 <= MIN <= MAX".into());
    }
    Ok((min, max))
}

/// Autoscaling tuned for requests someone waits on:
/// - up one worker at a time, as soon as a request has waited 100 ms in
///   the queue (the client already feels it), or every worker has been
///   busy for 1 s (sustained load, not one slow request);
/// - down one worker after `idle_for` with one to spare: traffic comes in
///   waves, and a worker kept warm for the next one costs only memory;
/// - 1 s between changes, so that a new worker takes its share of the
///   load before the pool judges whether it needs another.
fn web_autoscale(min: usize, max: usize, idle_for: Duration) -> Autoscale {
    Autoscale::new(min, max)
        .backlog_wait(Duration::from_millis(100))
        .no_idle_for(Duration::from_secs(1))
        .idle_for(idle_for)
        .cooldown(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Options, String> {
        Options::parse(args.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn a_fixed_pool_of_four_unless_told() {
        let options = parse("").unwrap();
        assert_eq!(options.bind, "127.0.0.1:8080");
        assert!(matches!(options.size, Size::Fixed(4)));
        assert!(matches!(parse("--workers 2").unwrap().size, Size::Fixed(2)));
    }

    #[test]
    fn autoscale_takes_bounds_and_an_idle_period() {
        let options = parse("--autoscale 1,4 --idle-for 0.3 --env-file w.env").unwrap();
        let Size::Autoscale { min, max, idle_for } = options.size else {
            panic!("not autoscaled");
        };
        assert_eq!((min, max, idle_for), (1, 4, Duration::from_millis(300)));
        assert_eq!(options.env_file, Some(PathBuf::from("w.env")));
        let Size::Autoscale { idle_for, .. } = parse("--autoscale 2,2").unwrap().size else {
            panic!("not autoscaled");
        };
        assert_eq!(idle_for, Duration::from_secs(30));
    }

    #[test]
    fn refuses_what_makes_no_sense() {
        for args in [
            "--autoscale 4,1",
            "--autoscale 0,3",
            "--autoscale 3",
            "--idle-for 5",
            "--autoscale 1,4 --idle-for -1",
            "--workers 2 --autoscale 1,4",
            "--workers",
            "--threads 3",
        ] {
            assert!(parse(args).is_err(), "{args}");
        }
    }
}
