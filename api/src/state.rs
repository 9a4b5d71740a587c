//! What every handler shares: the database, Redis when configured, the event bus, the rate
//! limiter, the clock and the token keys.

use crate::auth::JwtKeys;
use crate::config::Config;
use std::sync::Arc;
use yunlian_domain::ports::Clock;
use yunlian_infra::bus::Bus;
use yunlian_infra::ratelimit::Limiter;
use yunlian_infra::redis::Redis;
use yunlian_infra::Db;

pub struct AppState {
    pub db: Db,
    pub redis: Option<Redis>,
    /// Where committed domain events go (the relay publishes; in-process consumers subscribe).
    pub bus: Bus,
    pub limiter: Limiter,
    pub clock: Arc<dyn Clock>,
    pub jwt: JwtKeys,
    pub config: Config,
    /// This instance's delivery of warnings to connected phones (`streamEvents`).
    pub hub: yunlian_infra::stream::Hub,
    /// Uploaded images (a directory, or an S3-compatible bucket).
    pub objects: yunlian_infra::objects::Objects,
    /// Callers' grants, loaded once for a moment (see `auth::Principals`).
    pub principals: crate::auth::Principals,
}
