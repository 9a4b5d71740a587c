//! One data directory, one server: the embedded database and the in-process bus belong to one
//! process. The lock is an advisory lock on `yunlian.lock` in the data directory, held for the
//! life of the process (the kernel drops it when the process dies, however it dies), with the
//! holder's pid written inside so the refusal can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases the directory.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another Yunlian server (pid {pid}) is using the data directory {dir}; stop it first, or run several replicas on PostgreSQL")]
    Held { pid: String, dir: PathBuf },
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl DirLock {
    /// Takes the data directory's lock, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join("yunlian.lock");
        let io = |e| LockError::Io(path.clone(), e);
        // The data directory holds the database and the signing secret: only its owner enters.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| LockError::Io(dir.to_path_buf(), e))?;
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = match pid.trim() {
                    "" => "unknown".to_string(),
                    p => p.to_string(),
                };
                return Err(LockError::Held {
                    pid,
                    dir: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DirLock { _file: file, path })
    }
}
