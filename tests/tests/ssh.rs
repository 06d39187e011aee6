//! Workers on another machine, reached with `ssh` over the stdio transport:
//! a real `sshd` on 127.0.0.1 (`lpm_tests::sshd`).

use lpm_tests::sshd::Sshd;

#[test]
fn the_test_server_accepts_its_key() {
    let sshd = Sshd::start();
    let out = std::process::Command::new("ssh")
        .args(sshd.ssh_args())
        .arg("echo remote")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "remote");
}
