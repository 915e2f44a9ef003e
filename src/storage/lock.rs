//! The data directory's exclusive lock, and telling a live holder from a
//! dying one.
//!
//! Owns `flock(LOCK_EX | LOCK_NB)` on the `LOCK` file. A node killed with
//! kill -9 keeps its lock until the kernel has torn the whole process down
//! (its threads and io_uring rings), which can take a moment after the
//! process is already a zombie; a supervisor restarting it at once must not
//! be told that "another process" uses the directory. So when the lock is
//! taken, the holder's pid is looked up in `/proc/locks`: a live holder is
//! refused at once (and named); a holder that is a zombie, gone, or cannot be
//! found is waited for, polling every [`LOCK_RELEASE_POLL`] for up to
//! [`LOCK_RELEASE_WAIT`]. Blocking std I/O is fine: this runs once, before
//! any executor starts.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

/// How long start-up waits for a lock whose holder is exiting.
pub(crate) const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often it tries again meanwhile.
pub(crate) const LOCK_RELEASE_POLL: Duration = Duration::from_millis(50);

/// Why the lock could not be taken.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process holds it: `pid` when known (a live holder).
    Held {
        pid: Option<u32>,
    },
    Io(std::io::Error),
}

/// Who holds the lock, as far as `/proc` tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Alive(u32),
    /// A zombie, gone, or not found: the lock is being released.
    Leaving,
}

/// Takes the exclusive lock on `file`, waiting out a holder that is exiting.
pub(crate) fn acquire(file: &File) -> Result<(), LockError> {
    acquire_waiting(file, LOCK_RELEASE_WAIT)
}

#[allow(unsafe_code)] // one call: flock(2) (std's File::try_lock needs a newer Rust than rust-version)
fn acquire_waiting(file: &File, wait: Duration) -> Result<(), LockError> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        // SAFETY: flock(2) only reads its arguments; the descriptor belongs
        // to `file`, which the caller keeps open for the whole call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(LockError::Io(e));
        }
        match holder(file) {
            Holder::Alive(pid) => return Err(LockError::Held { pid: Some(pid) }),
            Holder::Leaving if started.elapsed() >= wait => {
                return Err(LockError::Held { pid: None })
            }
            Holder::Leaving => {
                if !logged {
                    tracing::info!(
                        "the data directory's lock is held by a process that is exiting; \
                         waiting for its release"
                    );
                    logged = true;
                }
                std::thread::sleep(LOCK_RELEASE_POLL);
            }
        }
    }
}

/// The holder of `file`'s flock, from `/proc/locks`.
fn holder(file: &File) -> Holder {
    let Ok(meta) = file.metadata() else {
        return Holder::Leaving;
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return Holder::Leaving;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let pids = locks
        .lines()
        .filter_map(parse_proc_locks_line)
        .filter(|l| l.flock && l.inode == meta.ino() && l.major == major && l.minor == minor)
        .map(|l| l.pid);
    for pid in pids {
        if process_alive(pid) {
            return Holder::Alive(pid);
        }
    }
    Holder::Leaving
}

/// True unless `/proc/<pid>/stat` is gone or says zombie / dead.
fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name in parentheses, which may itself
    // hold spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .and_then(|rest| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X" | "x"))
}

/// One lock of `/proc/locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcLock {
    flock: bool,
    pid: u32,
    major: u32,
    minor: u32,
    inode: u64,
}

/// Parses `1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF` (device numbers
/// in hex, inode in decimal); `None` for lines of another shape (`->`
/// blocked waiters, OFD locks without a pid).
fn parse_proc_locks_line(line: &str) -> Option<ProcLock> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_, kind, _, _, pid, file, ..] = fields.as_slice() else {
        return None;
    };
    if *kind == "->" {
        return None;
    }
    let mut parts = file.split(':');
    let major = u32::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
    let inode = parts.next()?.parse().ok()?;
    Some(ProcLock {
        flock: *kind == "FLOCK",
        pid: pid.parse().ok()?,
        major,
        minor,
        inode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn proc_locks_lines_parse() {
        let l = parse_proc_locks_line("1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF").unwrap();
        assert_eq!(
            l,
            ProcLock {
                flock: true,
                pid: 1234,
                major: 0xfd,
                minor: 1,
                inode: 5678
            }
        );
        let posix = parse_proc_locks_line("2: POSIX  ADVISORY  READ 99 08:02:77 0 EOF").unwrap();
        assert!(!posix.flock);
        assert_eq!(
            parse_proc_locks_line("1: -> FLOCK  ADVISORY  WRITE 1 fd:01:5678 0 EOF"),
            None
        );
        assert_eq!(
            parse_proc_locks_line("3: OFDLCK ADVISORY  WRITE -1 fd:01:5 0 EOF"),
            None
        );
        assert_eq!(parse_proc_locks_line("garbage"), None);
    }

    #[test]
    fn a_live_holder_is_refused_at_once_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap()
        };
        let held = open();
        acquire(&held).unwrap();
        let second = open();
        let started = Instant::now();
        let err = acquire_waiting(&second, Duration::from_secs(30)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(err, LockError::Held { pid: Some(pid) } if pid == std::process::id()),
            "{err:?}"
        );
        drop(held);
        acquire(&second).unwrap();
    }

    #[test]
    fn liveness_reads_proc() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }
}
