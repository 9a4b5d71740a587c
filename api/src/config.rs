//! Configuration from the environment, optionally seeded from a file of `KEY=value` lines
//! (`YUNLIAN_CONFIG_FILE`); a variable set in the environment wins over the file.

use std::collections::HashMap;
use std::path::PathBuf;

/// Every setting the server reads, with its default; the README's configuration table and
/// docker-compose.yml are checked against this list by a test.
pub const KEYS: &[(&str, &str)] = &[
    ("YUNLIAN_CONFIG_FILE", "(unset)"),
    ("YUNLIAN_BIND", "127.0.0.1:8080"),
    ("YUNLIAN_DATA_DIR", "./data"),
    ("DATABASE_URL", "sqlite://$YUNLIAN_DATA_DIR/yunlian.db"),
    ("YUNLIAN_DB_POOL_SIZE", "16"),
    ("REDIS_URL", "(unset: in-process)"),
    ("YUNLIAN_REDIS_PREFIX", "yl:"),
    ("YUNLIAN_ADMIN_PHONE", "(unset)"),
    ("YUNLIAN_ADMIN_PASSWORD", "(unset)"),
    ("YUNLIAN_ADMIN_NAME", "管理员"),
    ("YUNLIAN_ROOT_ORG_NAME", "中共某县委员会"),
    ("YUNLIAN_JWT_SECRET", "(generated into the data dir)"),
    ("YUNLIAN_ACCESS_TOKEN_TTL_SECS", "900"),
    ("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", "30"),
    ("YUNLIAN_MAX_BODY_BYTES", "1048576"),
    ("YUNLIAN_MAX_IMPORT_BYTES", "4194304"),
    ("YUNLIAN_TRUST_PROXY", "false"),
    ("YUNLIAN_SYNC_TOMBSTONE_DAYS", "180"),
    ("YUNLIAN_CLOSE_GRACE_MINUTES", "30"),
    ("YUNLIAN_OUTBOX_RELAY_MS", "1000"),
    ("YUNLIAN_RANKINGS_EVERY_SECS", "300"),
    ("YUNLIAN_VIDEO_PRESENT_SHARE", "2/3"),
    ("YUNLIAN_VIDEO_TOKEN_GRACE_MINUTES", "30"),
    ("YUNLIAN_LIVEKIT_URL", "(unset: no video)"),
    ("YUNLIAN_LIVEKIT_API_KEY", "(unset)"),
    ("YUNLIAN_LIVEKIT_API_SECRET", "(unset)"),
    ("YUNLIAN_PUSH_WEBHOOK_URL", "(unset: pushes are logged)"),
    ("YUNLIAN_PUSH_WEBHOOK_SECRET", "(unset)"),
    ("YUNLIAN_OBJECT_STORE", "(unset: $YUNLIAN_DATA_DIR/objects)"),
    ("YUNLIAN_S3_ENDPOINT", "(unset: the bucket's AWS endpoint)"),
    ("YUNLIAN_WORKERS", "(number of cores)"),
    ("YUNLIAN_LOG_FORMAT", "text"),
    ("YUNLIAN_METRICS_TOKEN", "(unset: no /metrics)"),
    ("YUNLIAN_SHUTDOWN_GRACE_SECS", "30"),
    ("YUNLIAN_DISK_LOW_MB", "500"),
    ("YUNLIAN_PRINCIPAL_CACHE_MS", "1000"),
    ("RUST_LOG", "info"),
];

#[derive(Clone)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub db_pool_size: usize,
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub admin_phone: Option<String>,
    pub admin_password: Option<String>,
    pub admin_name: String,
    pub root_org_name: String,
    pub jwt_secret: Option<String>,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_days: i64,
    pub max_body_bytes: usize,
    pub max_import_bytes: usize,
    pub trust_proxy: bool,
    pub sync_tombstone_days: i64,
    pub close_grace_minutes: i64,
    /// How often committed domain events are relayed from the outbox to the bus.
    pub outbox_relay_ms: u64,
    /// How often the rankings job rebuilds stale Redis rankings.
    pub rankings_every_secs: u64,
    pub video_present_share: (i64, i64),
    /// A video room token stops working this long after its meeting's end.
    pub video_token_grace_minutes: i64,
    pub livekit: Option<LiveKit>,
    /// The county's push relay (url, signing secret), when it has one.
    pub push_webhook: Option<(String, String)>,
    /// Where uploaded images are kept.
    pub objects: yunlian_infra::objects::Location,
    pub workers: Option<usize>,
    pub log_json: bool,
    /// The bearer token a Prometheus scrape of `/metrics` presents; without one, no metrics.
    pub metrics_token: Option<String>,
    /// On SIGTERM, in-flight requests and job rounds get this long to finish.
    pub shutdown_grace_secs: u64,
    /// Below this much free space on the data directory, readiness says so and the township's
    /// administrators are warned.
    pub disk_low_bytes: u64,
    /// How long a caller's loaded grants serve their later requests (0: reloaded on every
    /// request). A revocation made on this server bites at once; one made on another replica
    /// (or straight in the database) bites within this long.
    pub principal_cache_ms: u64,
}

impl Config {
    /// The settings at the root of the org tree: DOMAIN.md's defaults, with what the
    /// configuration sets; every org may override them for its subtree.
    pub fn settings_root(&self) -> yunlian_domain::settings::Settings {
        let (num, den) = self.video_present_share;
        yunlian_domain::settings::Settings {
            video_present_share: yunlian_domain::settings::Share { num, den },
            video_token_grace_minutes: self.video_token_grace_minutes,
            ..Default::default()
        }
    }
}

impl std::fmt::Debug for Config {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database", &redact_url(&self.database_url))
            .field("redis", &self.redis_url.as_deref().map(redact_url))
            .field(
                "admin_phone",
                &self
                    .admin_phone
                    .as_deref()
                    .map(yunlian_domain::member::mask_phone),
            )
            .field("workers", &self.workers)
            .field("metrics", &self.metrics_token.as_ref().map(|_| "token set"))
            .field("shutdown_grace_secs", &self.shutdown_grace_secs)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// The LiveKit server a county hosts for video meetings.
#[derive(Clone)]
pub struct LiveKit {
    pub url: String,
    pub api_key: String,
    pub api_secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {why}")]
    Invalid { key: &'static str, why: String },
    #[error("config file {0}: {1}")]
    File(String, String),
}

impl Config {
    /// Reads the process environment (and the optional file).
    pub fn from_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_map(env)
    }

    /// Reads from a map of variables, as the environment would give them.
    pub fn from_map(mut vars: HashMap<String, String>) -> Result<Config, ConfigError> {
        if let Some(path) = vars.get("YUNLIAN_CONFIG_FILE").cloned() {
            let iter = dotenvy::from_path_iter(&path)
                .map_err(|e| ConfigError::File(path.clone(), e.to_string()))?;
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError::File(path.clone(), e.to_string()))?;
                vars.entry(k).or_insert(v);
            }
        }
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let num = |k: &'static str, default: i64| -> Result<i64, ConfigError> {
            get(k).map_or(Ok(default), |v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError::Invalid {
                        key: k,
                        why: format!("not a positive number: {v}"),
                    })
            })
        };
        let data_dir = PathBuf::from(get("YUNLIAN_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = get("DATABASE_URL").unwrap_or_else(|| {
            format!("sqlite://{}", data_dir.join("yunlian.db").to_string_lossy())
        });
        let flag = |k: &'static str| -> Result<bool, ConfigError> {
            match get(k).as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("false" | "0" | "no") => Ok(false),
                Some("true" | "1" | "yes") => Ok(true),
                Some(v) => Err(ConfigError::Invalid {
                    key: k,
                    why: format!("not a boolean: {v}"),
                }),
            }
        };
        let log_json = match get("YUNLIAN_LOG_FORMAT").as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    key: "YUNLIAN_LOG_FORMAT",
                    why: format!("text or json, not {v}"),
                })
            }
        };
        let workers = match get("YUNLIAN_WORKERS") {
            None => None,
            Some(_) => Some(num("YUNLIAN_WORKERS", 1)? as usize),
        };
        let video_present_share = match get("YUNLIAN_VIDEO_PRESENT_SHARE") {
            None => (2, 3),
            Some(v) => v
                .split_once('/')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?))
                })
                .filter(|(a, b)| *a > 0 && *b > 0 && a <= b)
                .ok_or(ConfigError::Invalid {
                    key: "YUNLIAN_VIDEO_PRESENT_SHARE",
                    why: format!("a fraction like 2/3, not {v}"),
                })?,
        };
        let livekit = match (
            get("YUNLIAN_LIVEKIT_URL"),
            get("YUNLIAN_LIVEKIT_API_KEY"),
            get("YUNLIAN_LIVEKIT_API_SECRET"),
        ) {
            (Some(url), Some(api_key), Some(api_secret)) => Some(LiveKit {
                url,
                api_key,
                api_secret,
            }),
            (None, None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "YUNLIAN_LIVEKIT_URL",
                    why: "set YUNLIAN_LIVEKIT_URL, _API_KEY and _API_SECRET together".into(),
                })
            }
        };
        let push_webhook = match (
            get("YUNLIAN_PUSH_WEBHOOK_URL"),
            get("YUNLIAN_PUSH_WEBHOOK_SECRET"),
        ) {
            (Some(url), Some(secret)) if secret.len() >= 32 && url.starts_with("http") => {
                Some((url, secret))
            }
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid {
                    key: "YUNLIAN_PUSH_WEBHOOK_URL",
                    why: "set an http(s) YUNLIAN_PUSH_WEBHOOK_URL and a YUNLIAN_PUSH_WEBHOOK_SECRET of 32+ characters together".into(),
                })
            }
        };
        let objects = match get("YUNLIAN_OBJECT_STORE") {
            None => yunlian_infra::objects::Location::Dir(data_dir.join("objects")),
            Some(v) => match v.strip_prefix("s3://") {
                Some(bucket) if !bucket.is_empty() => yunlian_infra::objects::Location::S3 {
                    bucket: bucket.trim_end_matches('/').to_string(),
                    endpoint: get("YUNLIAN_S3_ENDPOINT"),
                },
                _ if v.starts_with('/') || v.starts_with('.') => {
                    yunlian_infra::objects::Location::Dir(PathBuf::from(v))
                }
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "YUNLIAN_OBJECT_STORE",
                        why: format!("s3://bucket or a directory path, not {v}"),
                    })
                }
            },
        };
        let admin_phone = get("YUNLIAN_ADMIN_PHONE");
        let admin_password = get("YUNLIAN_ADMIN_PASSWORD");
        if admin_phone.is_some() != admin_password.is_some() {
            return Err(ConfigError::Invalid {
                key: "YUNLIAN_ADMIN_PASSWORD",
                why: "set YUNLIAN_ADMIN_PHONE and YUNLIAN_ADMIN_PASSWORD together".into(),
            });
        }
        Ok(Config {
            bind: get("YUNLIAN_BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir,
            database_url,
            db_pool_size: num("YUNLIAN_DB_POOL_SIZE", 16)? as usize,
            redis_url: get("REDIS_URL"),
            redis_prefix: get("YUNLIAN_REDIS_PREFIX").unwrap_or_else(|| "yl:".into()),
            admin_phone,
            admin_password,
            admin_name: get("YUNLIAN_ADMIN_NAME").unwrap_or_else(|| "管理员".into()),
            root_org_name: get("YUNLIAN_ROOT_ORG_NAME").unwrap_or_else(|| "中共某县委员会".into()),
            jwt_secret: get("YUNLIAN_JWT_SECRET"),
            access_token_ttl_secs: num("YUNLIAN_ACCESS_TOKEN_TTL_SECS", 900)?,
            refresh_token_ttl_days: num("YUNLIAN_REFRESH_TOKEN_TTL_DAYS", 30)?,
            max_body_bytes: num("YUNLIAN_MAX_BODY_BYTES", 1 << 20)? as usize,
            max_import_bytes: num("YUNLIAN_MAX_IMPORT_BYTES", 4 << 20)? as usize,
            trust_proxy: flag("YUNLIAN_TRUST_PROXY")?,
            sync_tombstone_days: num("YUNLIAN_SYNC_TOMBSTONE_DAYS", 180)?,
            close_grace_minutes: num("YUNLIAN_CLOSE_GRACE_MINUTES", 30)?,
            outbox_relay_ms: num("YUNLIAN_OUTBOX_RELAY_MS", 1000)?.max(10) as u64,
            rankings_every_secs: num("YUNLIAN_RANKINGS_EVERY_SECS", 300)?.max(1) as u64,
            video_present_share,
            video_token_grace_minutes: num("YUNLIAN_VIDEO_TOKEN_GRACE_MINUTES", 30)?,
            livekit,
            push_webhook,
            objects,
            workers,
            log_json,
            metrics_token: match get("YUNLIAN_METRICS_TOKEN") {
                Some(t) if t.len() < 16 => {
                    return Err(ConfigError::Invalid {
                        key: "YUNLIAN_METRICS_TOKEN",
                        why: "at least 16 characters".into(),
                    })
                }
                t => t,
            },
            shutdown_grace_secs: num("YUNLIAN_SHUTDOWN_GRACE_SECS", 30)? as u64,
            disk_low_bytes: num("YUNLIAN_DISK_LOW_MB", 500)? as u64 * 1024 * 1024,
            principal_cache_ms: num("YUNLIAN_PRINCIPAL_CACHE_MS", 1000)?.clamp(0, 10_000) as u64,
        })
    }
}
