//! Yunlian's HTTP API: actix-web routes and handlers, the auth extractor, configuration and
//! start-up. `main.rs` is a few lines around [`startup::Application`].

pub mod admin;
pub mod auth;
pub mod config;
pub mod errors;
pub mod extract;
pub mod handlers;
pub mod jobs;
pub mod middleware;
pub mod mutations;
pub mod ops;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
