//! `--logfile FILE`: logs appended to a file that rotates by size
//! (`FILE` → `FILE.1`, the older `FILE.1` dropped), for hosts without a
//! journal. One lock per log line; logging is not on the data path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The open file and its size so far.
struct State {
    file: File,
    size: u64,
}

/// A size-rotated log file; cheap to clone.
#[derive(Clone)]
pub(crate) struct RotatingFile {
    path: PathBuf,
    max: u64,
    state: Arc<Mutex<State>>,
}

impl RotatingFile {
    /// Opens (appending to) `path` (mode 0600: logs name peers and
    /// users), rotating at `max` bytes.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub(crate) fn open(path: PathBuf, max: u64) -> io::Result<Self> {
        let file = open_private(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            max,
            state: Arc::new(Mutex::new(State { file, size })),
        })
    }

    fn rotate(&self, st: &mut State) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, &old)?;
        st.file = open_private(&self.path)?;
        st.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        if st.size > 0 && st.size + buf.len() as u64 > self.max {
            // A failed rotation keeps writing to the current file.
            let _ = self.rotate(&mut st);
        }
        let n = st.file.write(buf)?;
        st.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.state.lock() {
            Ok(mut st) => st.file.flush(),
            Err(_) => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// `path` for appending, created 0600; an existing file is narrowed to 0600.
fn open_private(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("burrow.log");
        let mut f = RotatingFile::open(p.clone(), 100).unwrap();
        for i in 0..25 {
            writeln!(f, "line {i:03} of the log").unwrap();
        }
        let cur = std::fs::read_to_string(&p).unwrap();
        let old = std::fs::read_to_string(dir.path().join("burrow.log.1")).unwrap();
        assert!(cur.len() <= 100 && old.len() <= 100, "{cur:?} {old:?}");
        assert!(cur.ends_with("line 024 of the log\n"), "{cur:?}");
        // Whole lines only: a line never straddles the rotation.
        assert!(old.lines().all(|l| l.starts_with("line ")), "{old:?}");
    }
}
