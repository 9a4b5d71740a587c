//! Building the application: storage, Redis, the first administrator, the HTTP server.

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::errors::ApiError;
use crate::middleware::request_context;
use crate::routes;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use uuid::Uuid;
use yunlian_domain::auth::Role;
use yunlian_domain::member::{Member, MemberFields, MemberStatus, Phone, Residence};
use yunlian_domain::org::{self, Org, OrgKind};
use yunlian_domain::ports::Clock;
use yunlian_domain::Error;
use yunlian_infra::bus::Bus;
use yunlian_infra::db::{self, roles::RoleGrant, ScopedFutureExt};
use yunlian_infra::ratelimit::{Backend, Limiter, MemoryLimiter, RedisLimiter};
use yunlian_infra::redis::Redis;
use yunlian_infra::{password, Db, SystemClock};

pub struct Application {
    server: Server,
    port: u16,
    jobs: crate::jobs::Runners,
    grace: std::time::Duration,
    /// The data directory's lock (the embedded database): held while the server runs.
    _lock: Option<yunlian_infra::datadir::DirLock>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(Error),
    #[error("redis: {0}")]
    Redis(Error),
    #[error("bootstrap: {0}")]
    Bootstrap(Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Locked(#[from] yunlian_infra::datadir::LockError),
}

impl Application {
    /// Connects storage (migrating it), creates the root org and first administrator on first
    /// start, and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> Result<Application, StartError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartError> {
        tracing::info!(?config, "starting");
        // One server per embedded database: the second refuses, naming the first.
        let lock = if config.database_url.starts_with("postgres") {
            None
        } else {
            Some(yunlian_infra::datadir::DirLock::acquire(&config.data_dir)?)
        };
        crate::telemetry::metrics();
        let db = Db::connect(&config.database_url, config.db_pool_size)
            .await
            .map_err(StartError::Storage)?;
        let redis = match &config.redis_url {
            Some(url) => Some(Redis::connect(url).await.map_err(StartError::Redis)?),
            None => None,
        };
        let secret = jwt_secret(&config)?;
        let limiter = Limiter::new(
            match &redis {
                Some(r) => Backend::Redis(RedisLimiter {
                    redis: r.clone(),
                    prefix: config.redis_prefix.clone(),
                }),
                None => Backend::Memory(MemoryLimiter::default()),
            },
            &secret,
        );
        let bus = match &redis {
            Some(r) => Bus::redis(r.clone(), &config.redis_prefix),
            None => Bus::memory(4096),
        };
        bootstrap(&db, &config, clock.as_ref())
            .await
            .map_err(StartError::Bootstrap)?;
        let jobs = crate::jobs::spawn_all(crate::jobs::JobCx {
            db: db.clone(),
            bus: bus.clone(),
            clock: clock.clone(),
            close_grace: chrono::TimeDelta::minutes(config.close_grace_minutes),
            settings: config.settings_root(),
            tombstone_days: config.sync_tombstone_days,
            relay_every: std::time::Duration::from_millis(config.outbox_relay_ms),
            rankings_every: std::time::Duration::from_secs(config.rankings_every_secs),
            redis: redis.clone().map(|r| (r, config.redis_prefix.clone())),
            data_dir: config.data_dir.clone(),
            disk_low_bytes: config.disk_low_bytes,
            push: match &config.push_webhook {
                Some((url, secret)) => yunlian_infra::push::Gateway::webhook(url, secret)
                    .map_err(|e| StartError::Storage(yunlian_domain::Error::Internal(e)))?,
                None => yunlian_infra::push::Gateway::Log,
            },
        });
        // The hub reads the events stream on a connection of its own (its reads block).
        let reader = match &config.redis_url {
            Some(url) => Some(Redis::connect(url).await.map_err(StartError::Redis)?),
            None => None,
        };
        let hub = yunlian_infra::stream::Hub::start(&bus, reader, &config.redis_prefix).await;
        let listener = TcpListener::bind(&config.bind)?;
        let port = listener.local_addr()?.port();
        let workers = config.workers;
        let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
        let (json_limit, payload_limit) = (config.max_body_bytes, config.max_import_bytes);
        let state = web::Data::new(AppState {
            db,
            redis,
            bus,
            limiter,
            clock,
            jwt: JwtKeys::new(&secret),
            principals: crate::auth::Principals::new(std::time::Duration::from_millis(
                config.principal_cache_ms,
            )),
            hub,
            objects: yunlian_infra::objects::Objects::open(&config.objects)
                .map_err(StartError::Storage)?,
            config,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(json_limit)
                        .error_handler(|e, _| json_error(e).into()),
                )
                .app_data(web::PayloadConfig::new(payload_limit))
                .app_data(web::PathConfig::default().error_handler(|e, _| path_error(e).into()))
                .app_data(web::QueryConfig::default().error_handler(|e, _| query_error(e).into()))
                .configure(routes::configure)
                .default_service(web::to(|_: HttpRequest| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "route_not_found",
                    ))
                }))
                // gzip (or br, zstd) only when the phone asks with Accept-Encoding.
                .wrap(actix_web::middleware::Compress::default())
                .wrap(actix_web::middleware::from_fn(request_context))
        })
        .listen(listener)?;
        if let Some(w) = workers {
            server = server.workers(w);
        }
        // SIGTERM or SIGINT: stop accepting, give in-flight requests this long.
        server = server.shutdown_timeout(grace.as_secs());
        tracing::info!(port, "listening");
        Ok(Application {
            server: server.run(),
            port,
            jobs,
            grace,
            _lock: lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT (actix's signal handling): the listener closes, requests
    /// in flight finish within the grace period, then the job runners stop after their current
    /// round (each gives its lease back) and the process may exit.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        tracing::info!("HTTP server stopped; stopping the jobs");
        self.jobs.stop(self.grace).await;
        tracing::info!("stopped");
        served
    }

    /// A handle that stops the server as SIGTERM would (tests).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// The signing secret: configured, or generated once and kept in the data dir.
fn jwt_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    if let Some(s) = &config.jwt_secret {
        if s.len() < 32 {
            return Err(StartError::Bootstrap(Error::Internal(
                "YUNLIAN_JWT_SECRET must be at least 32 characters".into(),
            )));
        }
        return Ok(s.as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        if s.trim().len() >= 32 {
            return Ok(s.trim().as_bytes().to_vec());
        }
    }
    if !config.data_dir.exists() {
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(&config.data_dir)?;
    }
    let raw: [u8; 32] = rand::random();
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a token signing secret");
    Ok(secret.into_bytes())
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(contents.as_bytes())
}

/// First start: the root of the org tree, and its administrator from configuration. Later
/// starts change nothing (an administrator who changed their password keeps it).
async fn bootstrap(db: &Db, config: &Config, clock: &dyn Clock) -> Result<(), Error> {
    let root = ensure_root(db, config, clock).await?;
    let rid = root.id;
    let admins = db
        .read(move |mut c| {
            async move { db::roles::list(&mut c, &org::root_path(rid), None, None, 1).await }
                .scope_boxed()
        })
        .await?;
    if admins.iter().any(|g| g.role == Role::TownshipAdmin) {
        return Ok(());
    }
    let (Some(phone), Some(pw)) = (&config.admin_phone, &config.admin_password) else {
        tracing::warn!("no administrator yet: set YUNLIAN_ADMIN_PHONE and YUNLIAN_ADMIN_PASSWORD, or run `yunlian create-admin`");
        return Ok(());
    };
    let phone = Phone::parse(phone).map_err(|e| Error::Invalid(vec![e]))?;
    yunlian_domain::member::check_password(pw).map_err(|e| Error::Invalid(vec![e]))?;
    let hash = password::hash(pw).await?;
    insert_admin(db, &root, phone, config.admin_name.clone(), hash, clock).await?;
    Ok(())
}

/// The root of the org tree, created on first use.
pub(crate) async fn ensure_root(db: &Db, config: &Config, clock: &dyn Clock) -> Result<Org, Error> {
    let now = clock.now();
    if let Some(r) = db
        .read(move |mut c| async move { db::orgs::root(&mut c).await }.scope_boxed())
        .await?
    {
        return Ok(r);
    }
    let id = Uuid::now_v7();
    let root = Org {
        id,
        parent_id: None,
        kind: OrgKind::Committee,
        name: org::parse_name(&config.root_org_name).map_err(|e| Error::Invalid(vec![e]))?,
        path: org::root_path(id),
        depth: 0,
        created_at: now,
        updated_at: now,
    };
    let r = root.clone();
    db.write(move |mut c| async move { db::orgs::insert(&mut c, &r).await }.scope_boxed())
        .await?;
    tracing::info!(org = %id, "created the root org");
    Ok(root)
}

/// A township administrator at the root org (start-up's first administrator, or `yunlian
/// create-admin`), recorded in the audit log as the operator's act.
pub(crate) async fn insert_admin(
    db: &Db,
    root: &Org,
    phone: Phone,
    name: String,
    hash: String,
    clock: &dyn Clock,
) -> Result<Uuid, Error> {
    let now = clock.now();
    let admin = Member {
        id: Uuid::now_v7(),
        org_id: root.id,
        group_id: None,
        fields: MemberFields {
            name,
            phone: phone.clone(),
            status: MemberStatus::Full,
            join_date: None,
            residence: Residence::AtHome,
            migrant_city: None,
            elderly_or_infirm: false,
            central_household: false,
        },
        can_login: true,
        created_at: now,
        updated_at: now,
    };
    let grant = RoleGrant {
        id: Uuid::now_v7(),
        member_id: admin.id,
        org_id: root.id,
        role: Role::TownshipAdmin,
        granted_by: None,
        created_at: now,
    };
    let id = admin.id;
    db.write(move |mut c| {
        async move {
            if db::members::by_phone(&mut c, &admin.fields.phone)
                .await?
                .is_some()
            {
                return Err(Error::Conflict("phone_taken"));
            }
            db::members::insert(&mut c, &admin, Some(hash)).await?;
            db::roles::insert(&mut c, &grant).await
        }
        .scope_boxed()
    })
    .await?;
    tracing::info!(phone = %phone.masked(), "created a township administrator");
    Ok(id)
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        JsonPayloadError::ContentType => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        JsonPayloadError::Deserialize(de) => {
            use serde_json::error::Category;
            let msg = de.to_string();
            let backticked = msg.split('`').nth(1).unwrap_or("").to_string();
            let (code, field) = match de.classify() {
                Category::Data if msg.starts_with("unknown field") => ("unknown_field", backticked),
                Category::Data if msg.starts_with("missing field") => ("missing_field", backticked),
                Category::Data => ("invalid_type", String::new()),
                _ => ("malformed_json", String::new()),
            };
            let mut err = ApiError::bad_request(code);
            if !field.is_empty() {
                err.fields
                    .push(yunlian_domain::FieldError::new(field, code));
            }
            err
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        _ => ApiError::bad_request("malformed_json"),
    }
}

fn path_error(_: PathError) -> ApiError {
    // A path segment that is not a valid id names nothing that exists.
    ApiError::not_found()
}

fn query_error(e: QueryPayloadError) -> ApiError {
    let mut err = ApiError::bad_request("invalid_query");
    let msg = e.to_string();
    if let Some(field) = msg.split('`').nth(1) {
        err.fields
            .push(yunlian_domain::FieldError::new(field, "invalid_query"));
    }
    err
}
