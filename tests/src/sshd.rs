//! A real OpenSSH server on 127.0.0.1, for the tests and benches that launch
//! workers with `ssh`: a throwaway host key and user key in a temporary
//! folder, an unprivileged port, and the server's own process (killed on drop).
//!
//! It needs `sshd` (Debian's `openssh-server`; `.ci/run` installs it) and
//! `ssh`, `ssh-keygen` on the machine.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the server.
const SSHD: &str = "/usr/sbin/sshd";

/// A running `sshd` that accepts one throwaway key for the current user.
#[derive(Debug)]
pub struct Sshd {
    server: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts the server and waits until it accepts a login.
    ///
    /// # Panics
    ///
    /// When `sshd`, `ssh` or `ssh-keygen` is missing or the server does not
    /// accept a login within 20 s; the message says which.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("a temporary folder");
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("user_key"));
        std::fs::copy(
            dir.path().join("user_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("copy the user key");
        // sshd run as root wants its privilege separation folder.
        if nix::unistd::geteuid().is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let port = free_port();
        let config = dir.path().join("sshd_config");
        let d = dir.path().display();
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 StrictModes no\nUsePAM no\nPrintMotd no\nLogLevel ERROR\n\
                 MaxStartups 100:30:200\nMaxSessions 100\n"
            ),
        )
        .expect("write sshd_config");
        let server = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd { server, port, dir };
        sshd.wait_for_login();
        sshd
    }

    /// The listening server's process id: every session, and every worker
    /// it runs, descends from it.
    pub fn pid(&self) -> u32 {
        self.server.id()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The private key the server accepts.
    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_key")
    }

    /// The `ssh` arguments that reach this server without prompts or a TTY,
    /// up to (not including) the remote command.
    pub fn ssh_args(&self) -> Vec<String> {
        [
            "-T",
            "-i",
            &self.user_key().to_string_lossy(),
            "-p",
            &self.port.to_string(),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "127.0.0.1",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn wait_for_login(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            // A login, not a bare TCP probe: sshd logs every connection
            // that closes before its key exchange.
            let login = Command::new("ssh")
                .args(self.ssh_args())
                .arg("true")
                .stdin(Stdio::null())
                .output()
                .expect("run ssh");
            if login.status.success() {
                return;
            }
            assert!(
                Instant::now() < until,
                "sshd on port {} refuses the test key: {}",
                self.port,
                String::from_utf8_lossy(&login.stderr)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed");
}

/// A port that was free a moment ago (the server binds it next).
fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("its address").port()
}
