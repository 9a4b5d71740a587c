//! The operator's commands (`yunlian migrate`, `create-admin`, `check-config`, `backup`,
//! `restore`) and `serve`, called by `main.rs` after it parsed the command line.

use crate::config::Config;
use crate::startup::Application;
use std::path::Path;
use yunlian_domain::member::{check_password, Phone};
use yunlian_infra::backup::{self, BackupError};
use yunlian_infra::datadir::DirLock;
use yunlian_infra::{Db, SystemClock};

/// Why a command failed: bad input from the operator (exit 2) or a failure (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => 2,
            AdminError::Failed(_) => 1,
        }
    }
}

impl From<BackupError> for AdminError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Failed(_) => AdminError::Failed(e.to_string()),
            _ => AdminError::Usage(e.to_string()),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(e.to_string())
}

type Done = Result<String, AdminError>;

/// Serves until SIGTERM or SIGINT, then stops gracefully (see [`Application`]).
pub async fn serve(config: Config) -> Done {
    let app = Application::build(config).await.map_err(failed)?;
    app.run_until_stopped().await.map_err(failed)?;
    Ok(String::new())
}

pub async fn migrate(config: &Config) -> Done {
    let _lock = lock_if_embedded(config)?;
    Db::connect(&config.database_url, 1).await.map_err(failed)?;
    Ok("migrations applied".into())
}

/// The configuration parsed (`Config::from_env` already refused what it could not read);
/// here, what only makes sense together.
pub fn check_config(config: &Config) -> Done {
    if let Some(s) = &config.jwt_secret {
        if s.len() < 32 {
            return Err(AdminError::Usage(
                "YUNLIAN_JWT_SECRET must be at least 32 characters".into(),
            ));
        }
    }
    if let Some(t) = &config.metrics_token {
        if t.len() < 16 {
            return Err(AdminError::Usage(
                "YUNLIAN_METRICS_TOKEN must be at least 16 characters".into(),
            ));
        }
    }
    Ok("configuration ok".into())
}

/// A township administrator at the root org, with `password` (from standard input).
pub async fn create_admin(config: &Config, phone: &str, name: &str, password: &str) -> Done {
    let phone = Phone::parse(phone)
        .map_err(|_| AdminError::Usage("--phone: not an 11-digit mobile number".into()))?;
    let name = yunlian_domain::member::parse_name(name)
        .map_err(|_| AdminError::Usage("--name: 1 to 50 characters of text".into()))?;
    check_password(password).map_err(|_| {
        AdminError::Usage(
            "password_too_weak: 8 to 128 characters with letters and digits (read from standard input)"
                .into(),
        )
    })?;
    let db = Db::connect(&config.database_url, 2).await.map_err(failed)?;
    let clock = SystemClock;
    let root = crate::startup::ensure_root(&db, config, &clock)
        .await
        .map_err(failed)?;
    let hash = yunlian_infra::password::hash(password)
        .await
        .map_err(failed)?;
    // Recorded in the audit log as the operator's act (no actor: the command line).
    let cx = yunlian_infra::db::audit::Context::command(
        "cli:create-admin",
        yunlian_domain::ports::Clock::now(&clock),
    );
    let made = crate::startup::insert_admin(&db, &root, phone.clone(), name, hash, &clock);
    let id = yunlian_infra::db::audit::within(cx, made)
        .await
        .map_err(|e| match e {
            yunlian_domain::Error::Conflict(_) => AdminError::Usage(format!(
                "phone_taken: {} already has an account",
                phone.masked()
            )),
            e => failed(e),
        })?;
    Ok(format!(
        "created township administrator {id} ({})",
        phone.masked()
    ))
}

/// While the server serves: a consistent copy to `file`, which must not exist.
pub async fn backup(config: &Config, file: &Path) -> Done {
    let (url, f) = (config.database_url.clone(), file.to_path_buf());
    tokio::task::spawn_blocking(move || backup::backup(&url, &f))
        .await
        .map_err(failed)??;
    Ok(format!("backed up to {}", file.display()))
}

/// With the server stopped: `file` put back, migrated to this binary's schema, and a new
/// sync epoch started.
pub async fn restore(config: &Config, file: &Path) -> Done {
    let _lock = lock_if_embedded(config)?;
    let (url, f) = (config.database_url.clone(), file.to_path_buf());
    let restored = tokio::task::spawn_blocking(move || backup::restore(&url, &f))
        .await
        .map_err(failed)??;
    // An older backup is brought up to this binary's schema now, not at the next start.
    Db::connect(&config.database_url, 1).await.map_err(failed)?;
    let kept = match &restored.kept {
        Some(p) => format!("; the replaced database is kept at {}", p.display()),
        None => String::new(),
    };
    Ok(format!(
        "restored {}{kept}; new sync epoch {}: every phone rebuilds its data at its next pull",
        file.display(),
        restored.epoch
    ))
}

/// A new sync epoch on the database as it is (after a recovery the operator made by other
/// means).
pub async fn new_epoch(config: &Config) -> Done {
    let _lock = lock_if_embedded(config)?;
    let url = config.database_url.clone();
    let epoch = tokio::task::spawn_blocking(move || backup::new_epoch(&url))
        .await
        .map_err(failed)??;
    Ok(format!(
        "new sync epoch {epoch}: every phone rebuilds its data at its next pull"
    ))
}

/// The data directory's lock when the database is the embedded one (a restore or migration
/// must not run under a serving process).
fn lock_if_embedded(config: &Config) -> Result<Option<DirLock>, AdminError> {
    if config.database_url.starts_with("postgres") {
        return Ok(None);
    }
    DirLock::acquire(&config.data_dir)
        .map(Some)
        .map_err(|e| AdminError::Usage(e.to_string()))
}
