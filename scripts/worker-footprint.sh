#!/usr/bin/env bash
# What a worker binary costs, with lpm's default features (pool + worker: it
# links actix, sysinfo and lpm-actors) and with the worker side only
# (`default-features = false, features = ["worker"]`).
#
# It writes three throwaway crates to a temporary folder, each depending on
# this checkout by path and pinned to its Cargo.lock:
#
#   worker-full/   the worker below, lpm with its default features
#   worker-lean/   the same source, lpm with `worker` only
#   supervisor/    a Pool of one worker on the binary given as argument: it
#                  waits for online(), sends one echo request, sleeps 1 s and
#                  prints the worker's VmRSS (/proc/<pid>/status), then soft-kills
#
# and prints, for each worker: the crates in its dependency tree
# (`cargo tree -e normal`, distinct packages, the worker itself excluded), its
# release binary size as built and stripped, and its idle RSS (median of
# FOOTPRINT_RUNS supervisor runs, 3 by default).
#
# Usage: scripts/worker-footprint.sh
# Environment: FOOTPRINT_TARGET_DIR (the throwaway crates' CARGO_TARGET_DIR;
# default: inside the temporary folder, removed at exit), FOOTPRINT_RUNS.
# Linux only, as lpm is; needs cargo and strip.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${FOOTPRINT_RUNS:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/lpm-footprint.XXXXXX")
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR=${FOOTPRINT_TARGET_DIR:-$work/target}
export CARGO_TERM_COLOR=never

# new_crate <dir> <package name> <dependencies, TOML>
new_crate() {
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<EOF
[package]
name = "$2"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$3

# Not part of any enclosing workspace.
[workspace]
EOF
    # The same dependency versions as this checkout (cargo drops what is unused).
    cp "$repo/Cargo.lock" "$work/$1/Cargo.lock"
}

worker_main='use lpm::worker::{Request, Worker};

#[tokio::main]
async fn main() -> Result<(), lpm::WorkerError> {
    let worker = Worker::from_env().await?;
    worker.on_request(|req: Request| async move {
        let text: String = req.data()?;
        req.respond(&text)?;
        Ok(())
    });
    worker.ready();
    worker.run().await
}'

tokio_dep='tokio = { version = "1", features = ["macros", "rt-multi-thread"] }'
new_crate worker-full lpm-footprint-full "lpm = { path = \"$repo\" }
$tokio_dep"
new_crate worker-lean lpm-footprint-lean "lpm = { path = \"$repo\", default-features = false, features = [\"worker\"] }
$tokio_dep"
printf '%s\n' "$worker_main" >"$work/worker-full/src/main.rs"
printf '%s\n' "$worker_main" >"$work/worker-lean/src/main.rs"

new_crate supervisor lpm-footprint-supervisor "lpm = { path = \"$repo\" }
actix = \"0.13\"
actix-rt = \"2\""
cat >"$work/supervisor/src/main.rs" <<'EOF'
use std::error::Error;
use std::time::Duration;

use lpm::{Config, Pool, WorkerCommand};

#[actix::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).ok_or("usage: lpm-footprint-supervisor <worker binary>")?;
    let pool = Pool::start(WorkerCommand::new(path), Config::default().workers(1));
    pool.online().await?;
    // One round trip, so the worker has served a request, then let it idle.
    let echo: String = pool.enqueue(&"ping".to_string()).await?.data()?;
    assert_eq!(echo, "ping");
    actix_rt::time::sleep(Duration::from_secs(1)).await;
    let health = pool.health().await?;
    let pid = health[0].pid.ok_or("the worker has no pid")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmRSS in /proc/<pid>/status")?;
    println!("{}", kib * 1024);
    pool.soft_kill().await?;
    Ok(())
}
EOF

for crate in worker-full worker-lean supervisor; do
    echo "== cargo build --release ($crate)" >&2
    cargo build --release --quiet --manifest-path "$work/$crate/Cargo.toml"
done
bin=$CARGO_TARGET_DIR/release

# crates <dir>: distinct packages in the normal dependency tree, the root excluded.
crates() {
    cargo tree --quiet -e normal --prefix none --format '{p}' \
        --manifest-path "$work/$1/Cargo.toml" |
        sed -e 's/ (\*)$//' | sort -u | grep -vc '^lpm-footprint-'
}

kib() { echo "$(($1 / 1024)) KiB"; }

# idle_rss <worker binary>: the median of $runs readings, in bytes.
idle_rss() {
    for _ in $(seq "$runs"); do
        "$bin/lpm-footprint-supervisor" "$1"
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A deps size stripped rss
for variant in full lean; do
    exe=$bin/lpm-footprint-$variant
    deps[$variant]=$(crates "worker-$variant")
    size[$variant]=$(stat -c %s "$exe")
    strip -o "$work/$variant.stripped" "$exe"
    stripped[$variant]=$(stat -c %s "$work/$variant.stripped")
    echo "== idle RSS of the $variant worker ($runs runs)" >&2
    rss[$variant]=$(idle_rss "$exe")
done

cat <<EOF

| echo worker, release | lpm default features | \`default-features = false, features = ["worker"]\` |
|---|---|---|
| crates in its dependency tree | ${deps[full]} | ${deps[lean]} |
| binary size | $(kib "${size[full]}") | $(kib "${size[lean]}") |
| binary size, stripped | $(kib "${stripped[full]}") | $(kib "${stripped[lean]}") |
| idle RSS (median of $runs) | $(kib "${rss[full]}") | $(kib "${rss[lean]}") |

bytes (default / worker): size ${size[full]} / ${size[lean]}, stripped ${stripped[full]} / ${stripped[lean]}, idle RSS ${rss[full]} / ${rss[lean]}
$(rustc --version), $(uname -srm)
EOF
