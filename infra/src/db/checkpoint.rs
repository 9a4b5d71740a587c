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
//! A passive checkpoint alone never lets the log start over while writes keep coming: a writer
//! restarts the log from its beginning only when, as it begins, every frame has been copied and
//! no reader still reads from the log, and with the copying on another thread there is nearly
//! always a frame or two not yet copied. Under a continuous stream of pushes the log grew past
//! 1 GB in a minute. So when the log holds [`RESTART_FRAMES`] or more after a passive round,
//! the thread takes the writers' turn (the same lock the writers queue on) and runs a `RESTART`
//! checkpoint: it copies the few frames the passive round left and waits for the readers still
//! on the log (a pull's milliseconds), so the next writer starts the log over. The writers
//! wait for that once per [`RESTART_FRAMES`] pages, for the frames written since the last round.
//! A reader that keeps the log longer than [`READERS_WAIT_MS`] (an export, a backup) makes the
//! restart give up, and the thread tries again only when the log has grown by as much again, so
//! a long read never holds the writers up more than once per [`RESTART_FRAMES`] pages.
//!
//! Other processes on the same file (the command line, a restore) keep SQLite's default.

use diesel::{Connection as _, RunQueryDsl, SqliteConnection};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// How often the log is copied back.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The log's length (pages of 4 KiB: 64 MiB) at which the thread makes it start over.
pub const RESTART_FRAMES: i32 = 16_384;

/// How long a restarting checkpoint waits for readers still on the log before it gives up
/// until the next round.
const READERS_WAIT_MS: u32 = 50;

/// Set on every pooled connection: no checkpoint in a commit.
pub(super) const NO_AUTOCHECKPOINT: &str = "PRAGMA wal_autocheckpoint = 0;";

/// The checkpointing thread of one SQLite pool; it checkpoints once more and stops when the
/// last clone of its `Db` is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

#[derive(diesel::QueryableByName)]
struct Outcome {
    /// 1 when the checkpoint could not finish: another process's checkpoint held the lock, or
    /// (`RESTART`) readers were still on the log when the wait ran out.
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
    pub fn start(
        path: &str,
        writers: Arc<tokio::sync::Mutex<()>>,
    ) -> std::io::Result<Checkpointer> {
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
                // How long a restart waits for the readers left on the log (a passive
                // checkpoint never waits).
                let _ = diesel::connection::SimpleConnection::batch_execute(
                    &mut conn,
                    &format!("PRAGMA busy_timeout = {READERS_WAIT_MS};"),
                );
                // The log's length at which the next restart is tried.
                let mut restart_at = RESTART_FRAMES;
                loop {
                    let last = match stopped.recv_timeout(PERIOD) {
                        Err(RecvTimeoutError::Timeout) => false,
                        // The pool is gone: copy what is left and stop.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    let log = checkpoint(&mut conn, "PASSIVE").log;
                    if log >= restart_at {
                        // In the writers' turn: no frame is appended while it copies the rest.
                        let _turn = writers.blocking_lock();
                        let done = checkpoint(&mut conn, "RESTART");
                        restart_at = if done.finished {
                            RESTART_FRAMES
                        } else {
                            // A long reader: not again before the log has grown as much again.
                            done.log.saturating_add(RESTART_FRAMES)
                        };
                    }
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// What a checkpoint found: the frames in the log, and whether it did all its mode asks.
struct Done {
    log: i32,
    finished: bool,
}

/// Runs one checkpoint of `mode` (a failed one finds an empty log, not finished).
fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> Done {
    match diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})")).get_result::<Outcome>(conn) {
        Ok(o) => {
            metrics::gauge!("yunlian_sqlite_wal_frames_pending")
                .set(f64::from((o.log - o.checkpointed).max(0)));
            if o.busy != 0 {
                tracing::debug!(
                    mode,
                    "checkpoint not finished: readers on the log, or another process's checkpoint"
                );
            }
            Done {
                log: o.log,
                finished: o.busy == 0,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "checkpoint failed; tried again next time");
            Done {
                log: 0,
                finished: false,
            }
        }
    }
}
