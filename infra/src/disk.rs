//! Free space where the data lives.

use std::path::Path;

/// Free bytes available to this process on the filesystem holding `dir` (statvfs).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    fs4::available_space(dir)
}
