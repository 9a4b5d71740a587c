//! Backups and restores, for the `yunlian backup` and `yunlian restore` commands.
//!
//! SQLite: `VACUUM INTO` writes a consistent copy of the database while the server serves (one
//! read transaction: every row committed before it began, nothing after). PostgreSQL: `pg_dump
//! -Fc` (one snapshot) and `pg_restore`. Every restore ends by starting a new sync epoch: the
//! phones' cursors may be ahead of the restored data, and a changed epoch makes each phone
//! rebuild its scopes instead of asking for changes "after" a version whose history was lost.
//!
//! These run in the operator's command, not the server: blocking code, called from a blocking
//! thread.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: choose a new file (a backup never overwrites one)")]
    Exists(PathBuf),
    #[error("cannot write to {0}: {1}")]
    NotWritable(PathBuf, String),
    #[error("{0} is not a Yunlian database: {1}")]
    NotYunlian(PathBuf, String),
    #[error(
        "{0} was made by a newer Yunlian (schema {1}); upgrade this binary before restoring it"
    )]
    NewerSchema(PathBuf, String),
    #[error("{0}")]
    Failed(String),
}

/// Which engine a `DATABASE_URL` names, with its SQLite file path.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let p = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    Some(PathBuf::from(p))
}

/// The schema versions this binary knows, for each engine.
fn known_versions(postgres: bool) -> Result<BTreeSet<String>, BackupError> {
    let source = if postgres {
        super::db::PG_MIGRATIONS
    } else {
        super::db::SQLITE_MIGRATIONS
    };
    let ms = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&source)
        .map_err(|e| BackupError::Failed(format!("embedded migrations: {e}")))?;
    Ok(ms.iter().map(|m| m.name().version().to_string()).collect())
}

/// A target path a backup may be written to: new, in a writable directory.
fn check_target(file: &Path) -> Result<(), BackupError> {
    if file.exists() {
        return Err(BackupError::Exists(file.to_path_buf()));
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(BackupError::NotWritable(
            file.to_path_buf(),
            format!("{} is not a directory", dir.display()),
        ));
    }
    // Probe: a directory may exist and still refuse a new file.
    let probe = dir.join(format!(".yunlian-backup-probe-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| BackupError::NotWritable(file.to_path_buf(), e.to_string()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes a consistent copy of the database at `url` to `file` (which must not exist).
pub fn backup(url: &str, file: &Path) -> Result<(), BackupError> {
    check_target(file)?;
    match sqlite_file(url) {
        Some(db) => {
            let mut c = SqliteConnection::establish(&db.to_string_lossy())
                .map_err(|e| BackupError::Failed(format!("{}: {e}", db.display())))?;
            c.batch_execute("PRAGMA busy_timeout = 5000;")
                .map_err(|e| BackupError::Failed(e.to_string()))?;
            diesel::sql_query("VACUUM INTO ?")
                .bind::<diesel::sql_types::Text, _>(file.to_string_lossy().to_string())
                .execute(&mut c)
                .map_err(|e| BackupError::NotWritable(file.to_path_buf(), e.to_string()))?;
            private(file);
            Ok(())
        }
        None => {
            let out = Command::new("pg_dump")
                .args(["--format=custom", "--no-owner", "--file"])
                .arg(file)
                .arg(url)
                .output()
                .map_err(|e| BackupError::Failed(format!("pg_dump: {e} (is it installed?)")))?;
            if !out.status.success() {
                let _ = std::fs::remove_file(file);
                return Err(BackupError::Failed(format!(
                    "pg_dump: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            private(file);
            Ok(())
        }
    }
}

/// A backup holds phone numbers and password hashes: only its owner reads it.
fn private(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
    }
}

/// The schema versions recorded in a candidate, refused when it is not a Yunlian database of
/// this engine or carries a version this binary does not know.
fn check_versions(
    file: &Path,
    stored: BTreeSet<String>,
    postgres: bool,
) -> Result<usize, BackupError> {
    let known = known_versions(postgres)?;
    if stored.is_empty() {
        return Err(BackupError::NotYunlian(
            file.to_path_buf(),
            "it records no Yunlian migrations".into(),
        ));
    }
    if let Some(newer) = stored.iter().find(|v| !known.contains(*v)) {
        return Err(BackupError::NewerSchema(file.to_path_buf(), newer.clone()));
    }
    Ok(stored.len())
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Refuses `file` unless it starts with `magic` (the format's signature).
fn expect_magic(file: &Path, magic: &[u8], what: &str) -> Result<(), BackupError> {
    use std::io::Read;
    let not = |why: String| BackupError::NotYunlian(file.to_path_buf(), why);
    let mut head = vec![0u8; magic.len()];
    std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| not(e.to_string()))?;
    if head != magic {
        return Err(not(format!("not {what}")));
    }
    Ok(())
}

fn sqlite_versions(file: &Path) -> Result<BTreeSet<String>, BackupError> {
    let not = |why: String| BackupError::NotYunlian(file.to_path_buf(), why);
    expect_magic(file, b"SQLite format 3\0", "an SQLite database")?;
    let mut c = SqliteConnection::establish(&format!("file:{}?mode=ro", file.display()))
        .map_err(|e| not(e.to_string()))?;
    let rows: Vec<Version> = diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
        .load(&mut c)
        .map_err(|_| not("it has no Yunlian schema".into()))?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}

/// The schema versions inside a `pg_dump -Fc` archive, read with pg_restore (no database
/// touched).
fn pg_dump_versions(file: &Path) -> Result<BTreeSet<String>, BackupError> {
    let not = |why: String| BackupError::NotYunlian(file.to_path_buf(), why);
    expect_magic(file, b"PGDMP", "a pg_dump custom-format archive")?;
    let out = Command::new("pg_restore")
        .args([
            "--data-only",
            "--table=__diesel_schema_migrations",
            "--file=-",
        ])
        .arg(file)
        .output()
        .map_err(|e| BackupError::Failed(format!("pg_restore: {e} (is it installed?)")))?;
    if !out.status.success() {
        return Err(not(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    // COPY ... FROM stdin; then one tab-separated row a line until `\.`.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = BTreeSet::new();
    let mut copying = false;
    for line in text.lines() {
        if line.starts_with("COPY ") {
            copying = true;
        } else if line == "\\." {
            copying = false;
        } else if copying {
            if let Some(v) = line.split('\t').next() {
                rows.insert(v.to_string());
            }
        }
    }
    Ok(rows)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the database it replaced was kept (SQLite), so nothing is overwritten.
    pub kept: Option<PathBuf>,
    /// The sync epoch every scope now carries.
    pub epoch: String,
}

/// Puts the backup `file` back as the database at `url`. The server must be stopped (the
/// caller holds the data directory's lock). The replaced SQLite file is kept beside it.
pub fn restore(url: &str, file: &Path) -> Result<Restored, BackupError> {
    match sqlite_file(url) {
        Some(db) => {
            check_versions(file, sqlite_versions(file)?, false)?;
            let dir = db
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            std::fs::create_dir_all(&dir)
                .map_err(|e| BackupError::NotWritable(dir.clone(), e.to_string()))?;
            // Prepare the copy beside the target, then swap it in with renames.
            let staging = dir.join(".yunlian-restoring.db");
            let _ = std::fs::remove_file(&staging);
            std::fs::copy(file, &staging)
                .map_err(|e| BackupError::NotWritable(staging.clone(), e.to_string()))?;
            private(&staging);
            let epoch = uuid::Uuid::now_v7().to_string();
            {
                let mut c = SqliteConnection::establish(&staging.to_string_lossy())
                    .map_err(|e| BackupError::Failed(e.to_string()))?;
                let ok: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
                    .load(&mut c)
                    .map_err(|e| BackupError::Failed(e.to_string()))?;
                if ok.first().map(|r| r.integrity_check.as_str()) != Some("ok") {
                    let _ = std::fs::remove_file(&staging);
                    return Err(BackupError::NotYunlian(
                        file.to_path_buf(),
                        "it fails SQLite's integrity check".into(),
                    ));
                }
                new_epoch_sqlite(&mut c, &epoch)?;
            }
            let kept = if db.exists() {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let kept = dir.join(format!(
                    "{}.before-restore-{stamp}",
                    db.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                // Fold the WAL into the old file first, so the kept copy is whole.
                if let Ok(mut old) = SqliteConnection::establish(&db.to_string_lossy()) {
                    let _ = old.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);");
                }
                std::fs::rename(&db, &kept)
                    .map_err(|e| BackupError::NotWritable(db.clone(), e.to_string()))?;
                Some(kept)
            } else {
                None
            };
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
            std::fs::rename(&staging, &db)
                .map_err(|e| BackupError::NotWritable(db.clone(), e.to_string()))?;
            Ok(Restored { kept, epoch })
        }
        None => {
            check_versions(file, pg_dump_versions(file)?, true)?;
            let out = Command::new("pg_restore")
                .args([
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--single-transaction",
                    "--exit-on-error",
                    "--dbname",
                ])
                .arg(url)
                .arg(file)
                .output()
                .map_err(|e| BackupError::Failed(format!("pg_restore: {e} (is it installed?)")))?;
            if !out.status.success() {
                return Err(BackupError::Failed(format!(
                    "pg_restore: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let epoch = uuid::Uuid::now_v7().to_string();
            new_epoch_pg(url, &epoch)?;
            Ok(Restored { kept: None, epoch })
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Check {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

fn new_epoch_sqlite(c: &mut SqliteConnection, epoch: &str) -> Result<(), BackupError> {
    diesel::sql_query("UPDATE sync_scopes SET epoch = ?")
        .bind::<diesel::sql_types::Text, _>(epoch)
        .execute(c)
        .map_err(|e| BackupError::Failed(format!("new sync epoch: {e}")))?;
    Ok(())
}

/// Starts a new sync epoch on a PostgreSQL database (after `pg_restore`, or after a
/// point-in-time recovery the operator made with PostgreSQL's own tools).
pub fn new_epoch_pg(url: &str, epoch: &str) -> Result<(), BackupError> {
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    use diesel_async::AsyncPgConnection;
    let mut c = <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url)
        .map_err(|e| BackupError::Failed(format!("postgres: {e}")))?;
    diesel::sql_query("UPDATE sync_scopes SET epoch = $1")
        .bind::<diesel::sql_types::Text, _>(epoch)
        .execute(&mut c)
        .map_err(|e| BackupError::Failed(format!("new sync epoch: {e}")))?;
    Ok(())
}

/// Starts a new sync epoch on the database at `url`, whichever engine.
pub fn new_epoch(url: &str) -> Result<String, BackupError> {
    let epoch = uuid::Uuid::now_v7().to_string();
    match sqlite_file(url) {
        Some(db) => {
            let mut c = SqliteConnection::establish(&db.to_string_lossy())
                .map_err(|e| BackupError::Failed(e.to_string()))?;
            new_epoch_sqlite(&mut c, &epoch)?;
        }
        None => new_epoch_pg(url, &epoch)?,
    }
    Ok(epoch)
}
