//! Use cases: authorise the actor, load the facts, ask the domain, write the result and its
//! events, all in the caller's transaction and with no HTTP in sight. Handlers, sync mutations
//! and jobs call them alike; none calls another entry point.

pub mod attendance;
pub mod cases;
pub mod learning;
pub mod lists;
pub mod meetings;
pub mod members;
pub mod moments;
pub mod points;
pub mod settings;
pub mod video;
pub mod warnings;

use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::Error;

/// Authorise `action` on the org at `path`: not found when the caller cannot see the org at all
/// (its existence does not leak to a sibling branch), forbidden when they see it but lack the
/// role.
pub fn authorize(p: &Principal, action: Action, path: &str) -> Result<(), Error> {
    if p.can(action, path) {
        Ok(())
    } else if p.sees(path) {
        Err(Error::Forbidden("forbidden"))
    } else {
        Err(Error::NotFound)
    }
}
