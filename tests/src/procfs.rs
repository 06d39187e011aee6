//! What `/proc` says about processes, for the tests that hunt orphans and
//! zombies: a process's state, parent and process group, the children of a
//! pid, the members of a process group, and a process's open descriptors.
//!
//! Every function reads `/proc` afresh; a process that ends while it is read
//! is simply left out, as if it had ended just before.

use std::path::Path;

/// The fields of `/proc/<pid>/stat` the tests look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The process id.
    pub pid: u32,
    /// The state letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// The parent's pid.
    pub ppid: u32,
    /// The process group id.
    pub pgrp: u32,
}

impl Stat {
    /// True for a process that has exited and waits to be reaped by its parent.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// `/proc/<pid>/stat` of one process, or `None` when there is no such process.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &text)
}

fn parse_stat(pid: u32, text: &str) -> Option<Stat> {
    // The command name is in parentheses and may itself hold spaces or ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        ppid,
        pgrp,
    })
}

/// Every process on the machine (that this process may see).
pub fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// True while `pid` exists, whatever its state (a zombie counts).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// True when `pid` is a zombie.
pub fn is_zombie(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.is_zombie())
}

/// The processes whose parent is `pid` (zombies included).
pub fn children(pid: u32) -> Vec<Stat> {
    all().into_iter().filter(|s| s.ppid == pid).collect()
}

/// The unreaped children of `pid`.
pub fn zombie_children(pid: u32) -> Vec<Stat> {
    children(pid).into_iter().filter(Stat::is_zombie).collect()
}

/// The processes in process group `pgid` (zombies included).
pub fn group_members(pgid: u32) -> Vec<Stat> {
    all().into_iter().filter(|s| s.pgrp == pgid).collect()
}

/// The processes in process group `pgid` that have not exited. A member
/// that exited after its parent did is a zombie of init (or of a
/// subreaper), which reaps it in its own time: dead, and no orphan.
pub fn live_group_members(pgid: u32) -> Vec<Stat> {
    group_members(pgid)
        .into_iter()
        .filter(|s| !s.is_zombie())
        .collect()
}

/// The open file descriptors of `pid`, each with what it points to
/// (`socket:[..]`, a path, `pipe:[..]`); empty when the process is gone.
pub fn open_fds(pid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<(u32, String)> = dir
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect();
    fds.sort();
    fds
}

/// The value of the environment variable `name` that process `pid` was
/// started with (`/proc/<pid>/environ`); `None` when it is not set or the
/// process is gone.
pub fn env_var(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    environ.split(|&b| b == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        let (key, value) = entry.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

/// The live (not zombie) descendants of `root`: children, their children ...
pub fn live_descendants(root: u32) -> Vec<u32> {
    let processes = all();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            processes
                .iter()
                .filter(|p| p.ppid == parent && !p.is_zombie())
                .map(|p| p.pid),
        );
        next += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_command_name_with_spaces_and_parentheses() {
        let s = parse_stat(42, "42 (a) b (c)) S 7 42 42 0 -1 4194560").unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 42,
                state: 'S',
                ppid: 7,
                pgrp: 42
            }
        );
    }

    #[test]
    fn sees_this_process_and_its_group() {
        let me = std::process::id();
        let s = stat(me).expect("this process is in /proc");
        assert!(!s.is_zombie());
        assert!(exists(me));
        assert!(group_members(s.pgrp).iter().any(|m| m.pid == me));
        assert!(children(s.ppid).iter().any(|c| c.pid == me));
        assert!(!open_fds(me).is_empty(), "a test has stdin/stdout/stderr");
        assert!(env_var(me, "PATH").is_some_and(|p| !p.is_empty()));
        assert_eq!(env_var(me, "LPM_NO_SUCH_VARIABLE"), None);
    }
}
