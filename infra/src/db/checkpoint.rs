//! SQLite's write-ahead log copied back into the database file by a thread of its own, instead of
//! by whichever writer's commit took the log past 1,000 pages.
//!
//! SQLite's default (`wal_autocheckpoint = 1000`) checkpoints inside the commit that crossed the
//! threshold: that writer copies the log's pages into the file and syncs both, while every other
//! writer waits for its turn behind it (this server's writers take turns, see `Db::Sqlite`).
//! In the clock-in benchmark at 64 in flight that turn, a few times a second, was the tail of
//! the latency (the commit and the checkpoint with its `fsync` 11 % of the server's samples).
//!
//! Here the pool's connections have `wal_autocheckpoint = 0` and [`Checkpointer`] runs a
//! `PASSIVE` checkpoint every [`PERIOD`] on its own connection. A passive checkpoint takes no
//! lock a writer or a reader waits for: writers go on appending while it copies, readers keep
//! their snapshots, and it copies only the frames no reader still needs (the rest the next time
//! round). The log is synced at each checkpoint, so with `synchronous = NORMAL` a commit reaches
//! the disk within about [`PERIOD`] where it used to wait for the log's thousandth page. With
//! nothing new in the log a checkpoint reads the log's header and returns, without a sync.
//!
//! Other processes on the same file (the command line, a restore) keep SQLite's default.

use diesel::{Connection as _, RunQueryDsl, SqliteConnection};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// How often the log is copied back.
pub const PERIOD: Duration = Duration::from_millis(100);

/// Set on every pooled connection: no checkpoint in a commit.
pub(super) const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0;";

/// The checkpointing thread of one SQLite pool; it checkpoints once more and stops when the
/// last clone of its `Db` is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

#[derive(diesel::QueryableByName)]
struct Outcome {
    /// 1 when another checkpoint (another process's) held the checkpoint lock.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
    /// Frames in the log, and of them copied into the file.
    #[diesel(sql_type = diesel::sql_types::Integer)]
    log: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    checkpointed: i32,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path` (a file already in WAL mode).
    pub fn start(path: &str) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let path = path.to_string();
        std::thread::Builder::new()
            .name("yunlian-checkpoint".into())
            .spawn(move || {
                let mut conn = match SqliteConnection::establish(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "no checkpoint thread; SQLite's log grows until restart");
                        return;
                    }
                };
                // A busy writer of another process makes the checkpoint skip a turn, not wait.
                let _ = diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    "PRAGMA busy_timeout = 0;",
                );
                loop {
                    let last = match stopped.recv_timeout(PERIOD) {
                        Err(RecvTimeoutError::Timeout) => false,
                        // The pool is gone: copy what is left and stop.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    checkpoint(&mut conn);
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

fn checkpoint(conn: &mut SqliteConnection) {
    match diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result::<Outcome>(conn) {
        Ok(o) => {
            metrics::gauge!("yunlian_sqlite_wal_frames_pending")
                .set(f64::from((o.log - o.checkpointed).max(0)));
            if o.busy != 0 {
                tracing::debug!("checkpoint skipped: another process holds the checkpoint lock");
            }
        }
        Err(e) => tracing::debug!(error = %e, "checkpoint failed; tried again next time"),
    }
}
