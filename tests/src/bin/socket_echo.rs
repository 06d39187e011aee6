//! Baseline child for the IPC benchmark: writes back every byte it reads on
//! its inherited channel (fd 3, named by `LPM_IPC_FD`), with no framing and
//! no runtime: blocking std I/O and one big buffer. It exits at end of file.

use std::io::{ErrorKind, Read, Write};

/// Large enough to take a whole batch of in-flight messages in one read.
const BUF_LEN: usize = 256 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut channel = lpm_protocol::inherited_channel()?;
    let mut buf = vec![0u8; BUF_LEN];
    loop {
        let n = match channel.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // The parent is gone: that ends the benchmark's use of us too.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match channel.write_all(&buf[..n]) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
