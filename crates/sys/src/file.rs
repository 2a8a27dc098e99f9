//! Small configuration files read with a bound on time and bytes: opened without
//! blocking (a FIFO or device in a file's place is refused instead of waited on), only
//! regular files, at most a given size.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rustix::fs::OFlags;

/// The text of the regular file at `path`, if it holds at most `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    let flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut text = String::new();
    f.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

/// Wakes its owner when a file is created, renamed into or written in one
/// directory (inotify), instead of having it look again every few
/// milliseconds. Events are only a hint to look again: the caller still
/// checks what it waits for, and waits are bounded.
pub struct DirWatch {
    fd: std::os::fd::OwnedFd,
}

impl DirWatch {
    /// Watches `dir`, which must exist.
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            dir,
            WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::CLOSE_WRITE,
        )?;
        Ok(DirWatch { fd })
    }

    /// Waits until something happened in the directory or `timeout` passed,
    /// and forgets what it was. True if something happened.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        use rustix::event::{PollFd, PollFlags, Timespec};
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(false),
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::AGAIN) => return Ok(true),
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("latchkey-sys-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_a_file_up_to_its_limit_and_refuses_more() {
        let d = dir("limit");
        let p = d.join("f");
        std::fs::write(&p, "0123456789").unwrap();
        assert_eq!(read_text(&p, 10).unwrap(), "0123456789");
        let e = read_text(&p, 9).unwrap_err();
        assert_eq!(e.to_string(), "larger than 9 bytes");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_dir_watch_wakes_on_a_rename_into_the_directory_and_times_out_otherwise() {
        let d = dir("watch");
        let w = DirWatch::new(&d).unwrap();
        let start = Instant::now();
        assert!(!w.wait(Duration::from_millis(50)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(40));
        // udev writes its database as a temporary file renamed into place.
        let tmp =
            std::env::temp_dir().join(format!("latchkey-sys-file-tmp-{}", std::process::id()));
        std::fs::write(&tmp, "E:X=1\n").unwrap();
        let mover = std::thread::spawn({
            let to = d.join("b253:0");
            move || {
                std::thread::sleep(Duration::from_millis(100));
                std::fs::rename(&tmp, &to).unwrap();
            }
        });
        let start = Instant::now();
        assert!(w.wait(Duration::from_secs(20)).unwrap());
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
        mover.join().unwrap();
        // What woke it is forgotten: the next wait waits again.
        assert!(!w.wait(Duration::from_millis(20)).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let d = dir("fifo");
        let p = d.join("fifo");
        assert!(Command::new("mkfifo").arg(&p).status().unwrap().success());
        let start = Instant::now();
        let e = read_text(&p, 100).unwrap_err();
        assert_eq!(e.to_string(), "not a regular file");
        assert!(start.elapsed() < Duration::from_secs(5));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
