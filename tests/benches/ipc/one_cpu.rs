//! One-CPU runs: the calling thread's affinity, inherited by the threads
//! and processes it starts.

use std::io;

/// The calling thread's CPU affinity.
pub(crate) fn affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is the
    // empty set; the kernel writes at most `size_of::<cpu_set_t>()` bytes into
    // it; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(set)
    }
}

/// Sets the calling thread's CPU affinity.
pub(crate) fn set_affinity(set: &libc::cpu_set_t) -> io::Result<()> {
    // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from a valid
    // set; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` with this thread, and all it starts meanwhile, on the first CPU
/// it may use; restores the affinity after.
pub(crate) fn on_one_cpu<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    let saved = affinity()?;
    let cpu = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET only reads the set; `i` is below CPU_SETSIZE.
        .find(|&i| unsafe { libc::CPU_ISSET(i, &saved) })
        .ok_or_else(|| io::Error::other("empty CPU affinity"))?;
    // SAFETY: as in `affinity`: all zeroes is the empty set; `cpu` < CPU_SETSIZE.
    let one = unsafe {
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        one
    };
    set_affinity(&one)?;
    let out = f();
    set_affinity(&saved)?;
    Ok(out)
}
