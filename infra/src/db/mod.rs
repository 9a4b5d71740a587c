//! One code path for PostgreSQL and SQLite.
//!
//! `Db` is an enum of two diesel-async pools. Repository functions take a [`Conn`] (a borrowed
//! connection, inside or outside a transaction) and write each query once inside [`on!`], which
//! compiles the body against both backends. The few per-dialect differences live here.

pub mod assessment;
pub mod attendance;
pub mod audit;
pub mod cases;
pub mod checkpoint;
pub mod clock_ins;
pub mod devices;
pub mod learning;
pub mod leases;
pub mod lists;
pub mod meetings;
pub mod members;
pub mod moments;
pub mod orgs;
pub mod outbox;
pub mod points;
pub mod push;
pub mod roles;
pub mod rows;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod sync;
pub mod synced;
pub mod warnings;

use diesel::connection::AnsiTransactionManager;
use diesel::{Connection as _, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::{SyncConnectionWrapper, SyncTransactionManagerWrapper};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection, TransactionManager};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
pub use scoped_futures::{ScopedBoxFuture, ScopedFutureExt};
use std::sync::Arc;
use std::time::Duration;
use yunlian_domain::Error;

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Inline>;

/// How the SQLite wrapper runs a statement: on the calling thread, a worker of the database
/// runtime ([`db_runtime`]), where diesel-async's default hands every statement to
/// `spawn_blocking` and waits for it.
///
/// A statement on the embedded file takes microseconds to a few milliseconds (the page cache is
/// warm, WAL readers never wait for the writer, and writers queue on [`Db::Sqlite`]'s writer
/// lock before they begin, so SQLite's busy handler does not sleep in-process), while each
/// hand-off is two thread wake-ups: a clock-in's transaction was about ten of them end to end,
/// the largest cost left on that path (see the README's clock-in profile). Running inline keeps
/// the one diesel-async code path and loses the hand-offs; the price is that a long statement
/// (an export's page, a retention sweep) holds one runtime worker while it runs, and the
/// runtime has one worker per core.
pub struct Inline;

impl diesel_async::sync_connection_wrapper::SpawnBlocking for Inline {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
                > + Send
                + 'a,
        >,
    >
    where
        R: Send + 'static,
    {
        let done = task();
        Box::pin(std::future::ready(Ok(done)))
    }

    fn get_runtime() -> Self {
        Inline
    }
}

pub(crate) const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// A borrowed connection of either engine.
pub enum Raw<'c> {
    /// Shared: diesel-async pipelines statements sent through `&AsyncPgConnection`, and a
    /// transaction's `BEGIN` is sent ahead of its body's first statement (see [`Db::write`]).
    Pg(&'c AsyncPgConnection),
    Sqlite(&'c mut SqliteConn),
}

/// A borrowed connection, inside or outside a write transaction. Inside one, the sync-index
/// entries and audit notes the transaction records wait in its [`TxLog`] and are written at its
/// end, every scope bumped in one global order (see [`sync::record`]: two transactions then
/// never hold scope locks in opposite orders), then the audit entries (see [`audit::note`]).
pub struct Conn<'c> {
    pub raw: Raw<'c>,
    pub(crate) tx: Option<&'c mut TxLog>,
}

/// What a write transaction records as it goes and writes at its end.
#[derive(Default)]
pub(crate) struct TxLog {
    pub(crate) sync: Vec<sync::Pending>,
    pub(crate) audit: Vec<audit::Note>,
    /// The transaction changed who may do what (a session revoked, a role granted or ended, a
    /// member moved): when it commits, every cached principal of this process is stale.
    pub(crate) access: bool,
}

impl TxLog {
    /// The transaction's work is done: its sync-index entries, then its audit entries (on
    /// SQLite; PostgreSQL's transactions end in [`TxLog::flush_and_commit_pg`]).
    async fn flush(self, conn: &mut Conn<'_>, cx: Option<&audit::Context>) -> Result<(), Error> {
        let synced = sync::subjects(&self.sync);
        let entries = audit::entries(conn, cx, self.audit, &synced).await?;
        sync::flush(conn, &sync::by_scope(self.sync)).await?;
        audit::insert(conn, &entries).await
    }

    /// PostgreSQL: the transaction's sync-index entries, its audit entries and its `COMMIT` in
    /// one pipeline, sent together and run in the order sent: one round trip where a clock-in
    /// took four. A statement that fails aborts the transaction, and the `COMMIT` behind it
    /// then only rolls back; the first error in the order sent is the one reported.
    ///
    /// Order is what makes this safe: every statement here goes through diesel-async's
    /// statement cache, whose lock is first-come first-served and is held while a statement is
    /// prepared, and they are polled in the order written every time (`biased`: tokio's
    /// `join!` otherwise starts each poll at the next future, and a poll that ran out of its
    /// task's budget before one took the lock would let a later one take it first), so the
    /// `COMMIT` is sent last. An audit batch of more than one statement is sent one statement
    /// after another, and more than 30 scopes' bumps are not polled in order every time, so
    /// then the `COMMIT` waits for them.
    async fn flush_and_commit_pg(
        self,
        c: &AsyncPgConnection,
        cx: Option<&audit::Context>,
    ) -> Result<(), Error> {
        let synced = sync::subjects(&self.sync);
        let entries = audit::entries(&mut Conn::new(Raw::Pg(c)), cx, self.audit, &synced).await?;
        let groups = sync::by_scope(self.sync);
        let commit = async {
            diesel_async::RunQueryDsl::execute(diesel::sql_query("COMMIT").cached(), &mut &*c)
                .await
                .map_err(db_error)
        };
        let (bumped, audited, committed) = if sync::bumps_in_order(&groups)
            && audit::in_one_statement(&entries)
        {
            tokio::join!(
                biased;
                sync::bump_all_pg(c, &groups),
                audit::insert_pg(c, &entries),
                commit
            )
        } else {
            let (bumped, audited) =
                tokio::join!(biased; sync::bump_all_pg(c, &groups), audit::insert_pg(c, &entries));
            (bumped, audited, commit.await)
        };
        bumped?;
        audited?;
        committed.map(drop)
    }
}

/// Bumped after every committed transaction that changed access (see [`TxLog::access`]):
/// a principal cached under an older generation is not served. One per process, whatever the
/// database: a server loads principals from one.
static ACCESS_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current access generation: read it *before* loading a principal, and the principal is
/// good for as long as the generation stays the same.
pub fn access_generation() -> u64 {
    ACCESS_GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

fn access_changed_now() {
    ACCESS_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// A run of steps in one write transaction, each of which can be undone alone (see
/// [`Conn::step`]): a push's mutations.
#[derive(Default)]
pub struct Steps {
    /// The savepoint exists.
    open: bool,
    /// The current step was not undone (its savepoint must be released before the next).
    stands: bool,
    /// How much the transaction had recorded when the current step began.
    sync: usize,
    audit: usize,
}

impl<'c> Conn<'c> {
    pub fn new(raw: Raw<'c>) -> Self {
        Conn { raw, tx: None }
    }

    /// Marks that this write changes access: cached principals are dropped when it commits (at
    /// once, outside a transaction).
    pub(crate) fn access_changed(&mut self) {
        match self.tx.as_deref_mut() {
            Some(tx) => tx.access = true,
            None => access_changed_now(),
        }
    }

    /// Begins the next of `steps` in this write transaction, under a savepoint:
    /// [`Conn::undo_step`] undoes everything the step does, the sync entries and audit notes it
    /// records too, and leaves the transaction usable. One round trip at most: the release of
    /// the step before (when it stood) and the new savepoint go in one batch, and after an
    /// undone step its savepoint serves the next. A step still open at commit commits with the
    /// transaction.
    pub async fn step(&mut self, steps: &mut Steps) -> Result<(), Error> {
        let Some(tx) = self.tx.as_deref() else {
            return Err(Error::Internal("a step outside a transaction".into()));
        };
        (steps.sync, steps.audit) = (tx.sync.len(), tx.audit.len());
        let sql = match (steps.open, steps.stands) {
            (false, _) => Some("SAVEPOINT yl_step"),
            (true, true) => Some("RELEASE SAVEPOINT yl_step; SAVEPOINT yl_step"),
            (true, false) => None,
        };
        if let Some(sql) = sql {
            crate::on!(self, |c| c.batch_execute(sql).await).map_err(db_error)?;
        }
        steps.open = true;
        steps.stands = true;
        Ok(())
    }

    /// Undoes the current step of `steps`: its writes, and the sync entries and audit notes it
    /// recorded.
    pub async fn undo_step(&mut self, steps: &mut Steps) -> Result<(), Error> {
        crate::on!(self, |c| c
            .batch_execute("ROLLBACK TO SAVEPOINT yl_step")
            .await)
        .map_err(db_error)?;
        if let Some(tx) = self.tx.as_deref_mut() {
            tx.sync.truncate(steps.sync);
            tx.audit.truncate(steps.audit);
        }
        steps.stands = false;
        Ok(())
    }

    /// The PostgreSQL connection, when this is one.
    pub fn pg(&self) -> Option<&'c AsyncPgConnection> {
        match &self.raw {
            Raw::Pg(c) => Some(*c),
            Raw::Sqlite(_) => None,
        }
    }
}

/// Runs `$body` with `$c` bound to the concrete connection, compiled once per backend.
/// `$conn` is a `&mut Conn`, reborrowed, so one connection serves many calls in a transaction.
#[macro_export]
macro_rules! on {
    ($conn:expr, |$c:ident| $body:expr) => {
        match &mut ($conn).raw {
            $crate::db::Raw::Pg(inner) => {
                let $c = inner;
                $body
            }
            $crate::db::Raw::Sqlite(inner) => {
                let $c = &mut **inner;
                $body
            }
        }
    };
}

#[derive(Clone)]
pub enum Db {
    Pg(Pool<AsyncPgConnection>),
    /// SQLite admits one writer at a time; write transactions queue on `write_lock` in-process
    /// instead of failing with SQLITE_BUSY when a deferred transaction upgrades to a write.
    Sqlite {
        pool: Pool<SqliteConn>,
        write_lock: Arc<tokio::sync::Mutex<()>>,
        /// Copies the log back into the file, off the writers' turns.
        _checkpointer: Arc<checkpoint::Checkpointer>,
    },
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Pg(_) => "Db::Pg",
            Db::Sqlite { .. } => "Db::Sqlite",
        })
    }
}

/// A statement kept in the connection's statement cache under its SQL text, where diesel
/// would prepare it afresh every time it runs.
///
/// diesel caches no `UPDATE`, no upsert's `DO UPDATE`, no multi-row insert and no raw SQL
/// (`sql_query`): their text can differ between two runs of the same Rust type, and its cache
/// is keyed by type where it can be. Uncached, a statement on PostgreSQL is two round trips
/// (diesel-async prepares it and waits, then binds and runs it) and on SQLite one
/// `sqlite3_prepare` per run. Keyed by its text and bind types instead ([`QueryId`] without a
/// static id), any statement is safe to cache, whatever varies in it; the price is one cache
/// entry per distinct text on each connection. So wrap statements whose text takes a few
/// shapes (a changeset's optional columns), never one with a list of N binds.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(Q);

/// `.cached()` on any statement: see [`Cached`].
pub trait CachedDsl: Sized {
    fn cached(self) -> Cached<Self> {
        Cached(self)
    }
}

impl<Q> CachedDsl for Q {}

impl<Q> diesel::query_builder::QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB, Q> diesel::query_builder::QueryFragment<DB> for Cached<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

/// Maps a diesel error to the domain: unique violations are conflicts, lost connections are
/// transient (the client retries), everything else is internal.
pub fn db_error(e: diesel::result::Error) -> Error {
    use diesel::result::{DatabaseErrorKind as K, Error as D};
    match e {
        D::NotFound => Error::NotFound,
        D::DatabaseError(K::UniqueViolation, _) => Error::Conflict("conflict"),
        D::DatabaseError(K::ClosedConnection | K::UnableToSendCommand, info) => {
            Error::Unavailable(info.message().into())
        }
        // SQLSTATE class 57 (the server terminating or refusing sessions), which diesel does
        // not classify: the database is going away, not the request going wrong.
        D::DatabaseError(_, info)
            if info.message().starts_with("terminating connection")
                || info.message().starts_with("the database system is") =>
        {
            Error::Unavailable(info.message().into())
        }
        // Lost races: SQLSTATE 40001, 40P01 (diesel does not classify deadlocks), SQLite busy.
        // The transaction is run again (see `Db::write`).
        D::DatabaseError(K::SerializationFailure, _) => Error::Busy("serialization".into()),
        D::DatabaseError(_, info) if info.message().starts_with("deadlock detected") => {
            Error::Busy("deadlock".into())
        }
        D::DatabaseError(_, info)
            if info.message().contains("database is locked")
                || info.message().contains("database is busy") =>
        {
            Error::Busy("sqlite busy".into())
        }
        // SQLITE_FULL; PostgreSQL's disk_full (SQLSTATE 53100) and the ENOSPC it reports
        // while extending a relation or writing WAL. Nothing was committed.
        D::DatabaseError(_, info) if is_disk_full(info.message()) => {
            Error::StorageFull(info.message().into())
        }
        other => Error::Internal(other.to_string()),
    }
}

/// Whether a database error message says the disk is full.
fn is_disk_full(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database or disk is full")
        || m.contains("no space left on device")
        || m.contains("could not extend file")
        || m.contains("disk full")
}

/// The embedded database holds password hashes, phone numbers and home cities: its directory
/// is created 0700 and the file 0600 before SQLite opens it (SQLite gives its `-wal` and
/// `-shm` files the database file's mode).
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
        }
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
        }
    }
    #[cfg(not(unix))]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

/// Warns at start when the database, its WAL or its directory can be read by others (a file
/// made by an older version, or copied with a loose mode).
fn warn_if_readable(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let wal = path.with_extension("db-wal");
        let shm = path.with_extension("db-shm");
        let dir = path.parent().map(std::path::Path::to_path_buf);
        for p in [Some(path.to_path_buf()), Some(wal), Some(shm), dir]
            .into_iter()
            .flatten()
        {
            if let Ok(meta) = std::fs::metadata(&p) {
                let others = if meta.is_dir() { 0o007 } else { 0o077 };
                if meta.permissions().mode() & others != 0 {
                    tracing::warn!(path = %p.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                        "the embedded database is readable by other users; chmod it 600 (700 for its directory)");
                }
            }
        }
    }
}

/// Turns off SQLite's memory statistics, once, before the process's first connection.
///
/// With them on (the library's default), every allocation SQLite makes takes one process-wide
/// mutex to count it. The pull profile with statements inline found two workers contending on
/// it while copying a page's rows out of SQLite (`sqlite3_value_dup` waking the other in
/// `futex`: about a fifth of the server's samples, between the lock and the kernel). SQLite's
/// documentation recommends `SQLITE_DEFAULT_MEMSTATUS=0` for speed; this server never reads the
/// statistics nor sets a soft heap limit.
///
/// It also puts SQLite in its multi-thread mode (`SQLITE_CONFIG_MULTITHREAD`): a connection
/// then takes no mutex of its own on every call. In the default, serialized mode each
/// `sqlite3_step` and each column read locked and unlocked the connection's mutex, about 3,300
/// pairs a pull of 100 rows (3.5 % of its instructions, callgrind). The mutex guards a
/// connection used from two threads at once, which never happens here: diesel's connection is
/// not `Sync`, and the pool lends each to one task at a time. The process-wide mutexes SQLite
/// keeps in this mode (its page caches, its allocator's) stay.
///
/// The calls only take effect before SQLite initialises: where something opened a SQLite
/// database first (a test process that already did), they answer SQLITE_MISUSE, change
/// nothing, and are logged at debug level.
fn sqlite_without_memstatus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MULTITHREAD takes no argument; the same conditions as below.
        let rc =
            unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(rc, "SQLite was initialised already; it stays serialized");
        }
        // SAFETY: `sqlite3_config` with SQLITE_CONFIG_MEMSTATUS takes one int, passed as one.
        // SQLite asks that no other thread use it while `sqlite3_config` runs: in the server,
        // `Db::connect` is the first use, at start-up, and the `Once` makes every other
        // connect wait for it. Where SQLite is initialised already (a test process whose other
        // threads opened databases first), the call returns SQLITE_MISUSE before touching
        // anything; before that, all it sets is the one flag SQLite reads once per allocation.
        let off: std::os::raw::c_int = 0;
        let rc =
            unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, off) };
        if rc != libsqlite3_sys::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialised already; memory statistics stay on"
            );
        }
    });
}

/// Every SQLite connection this process opens gets the query planner stability guarantee
/// (`SQLITE_DBCONFIG_ENABLE_QPSG`), registered once as an auto-extension before the first.
///
/// Without it SQLite plans with the values bound to some parameters, the `LIMIT ?` diesel's
/// `.first()` binds among them, and marks such a statement to be compiled again whenever that
/// parameter is bound anew: every run of a `.first()` over a join (a meeting with its org, a
/// clock-in's facts, a device with its member's org) parsed and planned its SQL from scratch,
/// found by attaching gdb to `sqlite3Reprepare` during the clock-in benchmark (the three
/// statements of every clock-in; 14 % of the server's samples, most of them in the writer's
/// turn). With it, a statement is planned once, as PostgreSQL's prepared statements are; the
/// plans for this schema's point lookups do not depend on the values.
fn sqlite_stable_plans() {
    use libsqlite3_sys as ffi;
    use std::os::raw::{c_char, c_int};
    /// SQLite calls this with each new connection, before the connection is returned.
    unsafe extern "C" fn stable(
        db: *mut ffi::sqlite3,
        _err: *mut *mut c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        // SAFETY: `db` is the connection being opened; SQLITE_DBCONFIG_ENABLE_QPSG takes an int
        // (1: on) and an int pointer for the new setting, which may be null.
        unsafe {
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                1 as c_int,
                std::ptr::null_mut::<c_int>(),
            );
        }
        ffi::SQLITE_OK
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `stable` has the signature SQLite calls auto-extensions with, and lives for
        // the whole process; registering one is safe from any thread.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(stable)) };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(rc, "SQLite plans will be made afresh per binding");
        }
    });
}

fn pool_error(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("database pool: {e}"))
}

fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// Pragmas every SQLite connection gets: WAL for concurrent readers, a busy timeout, foreign
/// keys enforced, and NORMAL sync (durable across app crashes; WAL keeps it consistent).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

impl Db {
    /// Connects, applies the embedded migrations, and returns the pool. `postgres://` and
    /// `postgresql://` choose PostgreSQL; anything else is a SQLite file path or `sqlite://` URL.
    pub async fn connect(url: &str, pool_size: usize) -> Result<Db, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let u = url.to_string();
            tokio::task::spawn_blocking(move || migrate_pg(&u))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            // Fast recycling: a connection PostgreSQL closed is dropped when the pool sees it
            // closed, and a request on one that died unseen answers 503; the default (`SELECT 1`
            // before every checkout) would add a round trip to every request.
            let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
            cfg.recycling_method = RecyclingMethod::Fast;
            let mgr = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, cfg);
            let pool = Pool::builder(mgr)
                .max_size(pool_size)
                // The connection returned last is lent first: under a light load a few stay
                // busy and warm (their backends' caches) instead of every one in turn.
                .queue_mode(deadpool::managed::QueueMode::Lifo)
                .wait_timeout(Some(Duration::from_secs(5)))
                .create_timeout(Some(Duration::from_secs(5)))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(pool_error)?;
            Ok(Db::Pg(pool))
        } else {
            sqlite_without_memstatus();
            sqlite_stable_plans();
            let path = sqlite_path(url).to_string();
            private_file(std::path::Path::new(&path))
                .map_err(|e| Error::Internal(format!("{path}: {e}")))?;
            let p = path.clone();
            tokio::task::spawn_blocking(move || migrate_sqlite(&p))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            warn_if_readable(std::path::Path::new(&path));
            let mut cfg = ManagerConfig::<SqliteConn>::default();
            cfg.recycling_method = RecyclingMethod::Fast;
            cfg.custom_setup = Box::new(|url| {
                let url = url.to_string();
                Box::pin(async move {
                    let mut c = SqliteConn::establish(&url).await?;
                    c.batch_execute(SQLITE_PRAGMAS)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    c.batch_execute(checkpoint::NO_AUTOCHECKPOINT)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(c)
                })
            });
            let mgr =
                AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path.clone(), cfg);
            let pool = Pool::builder(mgr)
                .max_size(pool_size)
                // The connection returned last is lent first: reads run on as many connections
                // as run at once (about one per core) and keep their page caches (2 MiB each)
                // warm, where taking each in turn read most pages of a pull from the file again.
                .queue_mode(deadpool::managed::QueueMode::Lifo)
                .wait_timeout(Some(Duration::from_secs(5)))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(pool_error)?;
            let write_lock = Arc::new(tokio::sync::Mutex::new(()));
            let checkpointer = checkpoint::Checkpointer::start(&path, write_lock.clone())
                .map_err(|e| Error::Internal(format!("checkpoint thread: {e}")))?;
            Ok(Db::Sqlite {
                pool,
                write_lock,
                _checkpointer: Arc::new(checkpointer),
            })
        }
    }

    /// Whether write transactions take turns, one at a time (SQLite): work that needs no lock
    /// is better done before a write than in it.
    pub fn serialises_writes(&self) -> bool {
        matches!(self, Db::Sqlite { .. })
    }

    pub fn engine(&self) -> &'static str {
        match self {
            Db::Pg(_) => "postgres",
            Db::Sqlite { .. } => "sqlite",
        }
    }

    /// Runs `f` on a pooled connection, outside any transaction (reads).
    pub async fn read<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: for<'r> FnOnce(Conn<'r>) -> ScopedBoxFuture<'static, 'r, Result<R, Error>>
            + Send
            + 'static,
        R: Send + 'static,
    {
        let db = self.clone();
        detached(async move {
            match db {
                Db::Pg(pool) => {
                    let c: Object<AsyncPgConnection> = pool.get().await.map_err(pool_error)?;
                    f(Conn::new(Raw::Pg(&c))).await
                }
                Db::Sqlite { pool, .. } => {
                    let mut c: Object<SqliteConn> = pool.get().await.map_err(pool_error)?;
                    f(Conn::new(Raw::Sqlite(&mut c))).await
                }
            }
        })
        .await
    }

    /// Runs `f` in one transaction: all of it commits, or none of it does. The sync-index
    /// entries it records are written last, scope by scope in one global order.
    ///
    /// A transaction that loses to another (a PostgreSQL deadlock or serialization failure,
    /// SQLite busy) is run again from the start, up to [`WRITE_ATTEMPTS`] times with a growing,
    /// jittered pause; after that the error is [`Error::Busy`] (503 with `Retry-After`).
    pub async fn write<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: for<'r> FnOnce(Conn<'r>) -> ScopedBoxFuture<'static, 'r, Result<R, Error>>
            + Clone
            + Send
            + 'static,
        R: Send + 'static,
    {
        let db = self.clone();
        // The request's audit context follows the transaction onto the database runtime.
        let cx = audit::current();
        detached(async move {
            let mut attempt = 1;
            loop {
                match db.write_once(f.clone(), cx.clone()).await {
                    Err(Error::Busy(why)) if attempt < WRITE_ATTEMPTS => {
                        tracing::debug!(attempt, why = %why, "write lost a race; retrying");
                        tokio::time::sleep(backoff(attempt)).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
        .await
    }

    async fn write_once<R, F>(&self, f: F, cx: Option<audit::Context>) -> Result<R, Error>
    where
        F: for<'r> FnOnce(Conn<'r>) -> ScopedBoxFuture<'static, 'r, Result<R, Error>>
            + Send
            + 'static,
        R: Send + 'static,
    {
        match self {
            Db::Pg(pool) => {
                let tx = PgTx(Some(pool.get().await.map_err(pool_error)?));
                let c = tx.conn();
                let body = async {
                    let mut log = TxLog::default();
                    let r = f(Conn {
                        raw: Raw::Pg(c),
                        tx: Some(&mut log),
                    })
                    .await?;
                    let access = log.access;
                    log.flush_and_commit_pg(c, cx.as_ref()).await?;
                    Ok::<(R, bool), Error>((r, access))
                };
                let (begun, done) = tokio::join!(biased; send(c, "BEGIN"), body);
                tx.end(begun, done).await.map(committed)
            }
            Db::Sqlite {
                pool, write_lock, ..
            } => {
                let _writer = write_lock.lock().await;
                let mut c: Object<SqliteConn> = pool.get().await.map_err(pool_error)?;
                let c: &mut SqliteConn = &mut c;
                // BEGIN IMMEDIATE: the write lock is taken up front, so another process's
                // writer (the command line) makes this wait in the busy handler rather than
                // fail on the first write. (diesel-async's `immediate_transaction` exists only
                // for its default spawn-blocking wrapper.)
                c.spawn_blocking(|c| {
                    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
                })
                .await
                .map_err(db_error)?;
                let body = async {
                    let mut log = TxLog::default();
                    let r = f(Conn {
                        raw: Raw::Sqlite(&mut *c),
                        tx: Some(&mut log),
                    })
                    .await?;
                    let access = log.access;
                    log.flush(&mut Conn::new(Raw::Sqlite(&mut *c)), cx.as_ref())
                        .await?;
                    Ok::<(R, bool), Error>((r, access))
                }
                .await;
                type Manager = SyncTransactionManagerWrapper<AnsiTransactionManager>;
                match body {
                    Ok(done) => {
                        Manager::commit_transaction(c).await.map_err(db_error)?;
                        Ok(committed(done))
                    }
                    Err(e) => {
                        Manager::rollback_transaction(c).await.map_err(db_error)?;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Runs `f` in one consistent read-only snapshot: REPEATABLE READ on PostgreSQL, a read
    /// transaction on SQLite (WAL gives it a snapshot). Pulls read every scope through one.
    pub async fn snapshot<R, F>(&self, f: F) -> Result<R, Error>
    where
        F: for<'r> FnOnce(Conn<'r>) -> ScopedBoxFuture<'static, 'r, Result<R, Error>>
            + Send
            + 'static,
        R: Send + 'static,
    {
        let db = self.clone();
        detached(async move {
            match db {
                Db::Pg(pool) => {
                    let tx = PgTx(Some(pool.get().await.map_err(pool_error)?));
                    let c = tx.conn();
                    let (begun, done) = tokio::join!(
                        biased;
                        send(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
                        f(Conn::new(Raw::Pg(c)))
                    );
                    match (begun, done) {
                        // Read-only: the COMMIT only ends the snapshot, and nothing the caller
                        // does waits for it. The connection goes back to the pool once it is
                        // answered (or leaves it, see `PgTx::end`).
                        (Ok(()), Ok(r)) => {
                            tokio::spawn(async move {
                                let ended = send(tx.conn(), "COMMIT").await;
                                if let Err(e) = tx.end(ended, Ok(())).await {
                                    tracing::debug!(error = %e, "a snapshot's COMMIT failed");
                                }
                            });
                            Ok(r)
                        }
                        (begun, done) => tx.end(begun, done).await,
                    }
                }
                Db::Sqlite { pool, .. } => {
                    let mut c: Object<SqliteConn> = pool.get().await.map_err(pool_error)?;
                    c.transaction(async move |c| {
                        f(Conn::new(Raw::Sqlite(c))).await.map_err(TxError::Domain)
                    })
                    .await
                    .map_err(TxError::into_domain)
                }
            }
        })
        .await
    }

    /// `SELECT 1`, for readiness.
    /// The pool now: (connections in use, idle, the maximum, requests waiting for one).
    pub fn pool_status(&self) -> (usize, usize, usize, usize) {
        let s = match self {
            Db::Pg(pool) => pool.status(),
            Db::Sqlite { pool, .. } => pool.status(),
        };
        (
            s.size.saturating_sub(s.available),
            s.available,
            s.max_size,
            s.waiting,
        )
    }

    pub async fn ping(&self) -> Result<(), Error> {
        self.read(move |mut c| {
            Box::pin(async move {
                on!(&mut c, |c| c
                    .batch_execute("SELECT 1")
                    .await
                    .map_err(db_error))
            })
        })
        .await
    }
}

/// How many times a write transaction runs before a lost race is reported as [`Error::Busy`].
pub const WRITE_ATTEMPTS: u32 = 5;

/// The pause before attempt `attempt + 1`: 10, 20, 40, 80 ms, each with up to as much again of
/// random jitter, so two transactions that deadlocked do not meet again in step.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << (attempt - 1).min(4);
    Duration::from_millis(base + rand::random_range(0..=base))
}

/// The runtime all database work runs on, apart from the HTTP workers.
///
/// A request future can be dropped mid-query (a client hangs up; actix drops the other
/// extractors when one fails). Spawning the work here detaches it from the request: a dropped
/// request lets its query (and transaction) finish or roll back whole instead of leaving a
/// pooled connection mid-transaction. PostgreSQL's connection tasks live here too, and SQLite's
/// statements run on its workers (see [`Inline`]), off the single-threaded actix workers.
fn db_runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        // One worker per core (at least two): SQLite statements run on them (see [`Inline`]).
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("yunlian-db")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the database runtime: {e}"))
    })
}

async fn detached<R: Send + 'static>(
    work: impl std::future::Future<Output = Result<R, Error>> + Send + 'static,
) -> Result<R, Error> {
    db_runtime()
        .spawn(work)
        .await
        .map_err(|e| Error::Internal(format!("database task: {e}")))?
}

/// A write committed: drops cached principals if it changed access.
fn committed<R>((r, access): (R, bool)) -> R {
    if access {
        access_changed_now();
    }
    r
}

/// Sends `sql` (a `BEGIN`, a `COMMIT`) on `c` when first polled, and waits for its answer.
/// Joined ahead of a transaction's body (`tokio::join!` in `biased` order), a `BEGIN` goes out
/// before the body's first statement and both are answered in one round trip, where
/// diesel-async's own transactions wait for the `BEGIN` first. A `BEGIN` fails only with its
/// connection, and so then does every statement sent behind it.
async fn send(c: &AsyncPgConnection, sql: &str) -> Result<(), Error> {
    let mut s = c;
    s.batch_execute(sql).await.map_err(db_error)
}

/// A pooled PostgreSQL connection in a transaction begun by hand (see [`send`]). It goes back
/// to the pool only when [`PgTx::end`] saw the transaction end; dropped before that (the task
/// panicked) it leaves the pool and closes, so no one is lent a connection mid-transaction.
/// (diesel-async's own transactions get the same from its transaction manager, which marks
/// such a connection broken.)
struct PgTx(Option<Object<AsyncPgConnection>>);

impl PgTx {
    fn conn(&self) -> &AsyncPgConnection {
        self.0
            .as_deref()
            .unwrap_or_else(|| unreachable!("a PgTx holds its connection until it ends"))
    }

    /// Ends the transaction after its `BEGIN` and its body (which committed, when it
    /// succeeded): on any error it rolls back, a no-op after a `COMMIT` that was sent anyway.
    /// The error reported is the `BEGIN`'s, else the body's.
    async fn end<R>(
        mut self,
        begun: Result<(), Error>,
        done: Result<R, Error>,
    ) -> Result<R, Error> {
        let outcome = match (begun, done) {
            (Ok(()), Ok(r)) => Ok(r),
            (Err(e), _) | (Ok(()), Err(e)) => {
                if let Err(why) = send(self.conn(), "ROLLBACK").await {
                    // Not back to the pool: dropped here, the connection closes.
                    tracing::warn!(error = %why, "rollback failed; the connection is closed");
                    return Err(e);
                }
                Err(e)
            }
        };
        // Back to the pool.
        drop(self.0.take());
        outcome
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            drop(Object::take(c));
        }
    }
}

/// Transaction error: a domain error from the body, or a database error from begin/commit.
enum TxError {
    Domain(Error),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

impl TxError {
    fn into_domain(self) -> Error {
        match self {
            TxError::Domain(e) => e,
            TxError::Db(e) => db_error(e),
        }
    }
}

fn migrate_pg(url: &str) -> Result<(), Error> {
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
    let mut c = <AsyncConnectionWrapper<AsyncPgConnection> as diesel::Connection>::establish(url)
        .map_err(|e| Error::Unavailable(format!("postgres: {e}")))?;
    c.run_pending_migrations(PG_MIGRATIONS)
        .map_err(|e| Error::Internal(format!("migrations: {e}")))?;
    Ok(())
}

fn migrate_sqlite(path: &str) -> Result<(), Error> {
    let mut c = SqliteConnection::establish(path)
        .map_err(|e| Error::Unavailable(format!("sqlite: {e}")))?;
    diesel::connection::SimpleConnection::batch_execute(&mut c, SQLITE_PRAGMAS)
        .map_err(db_error)?;
    c.run_pending_migrations(SQLITE_MIGRATIONS)
        .map_err(|e| Error::Internal(format!("migrations: {e}")))?;
    Ok(())
}

/// Text ids back to UUIDs; a malformed id in the database is an internal error, not a panic.
pub(crate) fn uuid(s: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::parse_str(s).map_err(|e| Error::Internal(format!("bad uuid in db: {e}")))
}

pub(crate) fn naive(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    yunlian_domain::truncate_micros(t).naive_utc()
}

pub(crate) fn utc(t: chrono::NaiveDateTime) -> chrono::DateTime<chrono::Utc> {
    t.and_utc()
}

/// A serde enum as the text stored in its column (`on_time`, `p256`, ...).
pub(crate) fn enum_text<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A stored column back to its serde enum; an unknown value is an internal error.
pub(crate) fn enum_parse<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(v.to_string()))
        .map_err(|_| Error::Internal(format!("bad {what} in db: {v}")))
}
