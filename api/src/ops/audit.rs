//! The audit log as township admins read it (`listAuditEvents`): their subtree only, a bounded
//! time range, newest first, keyset-paged.

use super::authorize;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal, Role};
use yunlian_domain::Error;
use yunlian_infra::db::{self, audit::AuditEvent, Conn};

/// What a caller asks of the log.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The subtree (default: the org of the caller's township-admin role).
    pub org_id: Option<Uuid>,
    pub actor: Option<Uuid>,
    pub subject: Option<String>,
    pub operation: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<Uuid>,
    pub limit: i64,
}

pub async fn list(
    c: &mut Conn<'_>,
    p: &Principal,
    q: &Query,
    now: DateTime<Utc>,
) -> Result<Vec<AuditEvent>, Error> {
    let (from, to) =
        yunlian_domain::audit::range(q.from, q.to, now).map_err(|e| Error::Invalid(vec![e]))?;
    let org_id = match q.org_id {
        Some(o) => o,
        None => p
            .grants
            .iter()
            .find(|g| g.role == Role::TownshipAdmin)
            .map(|g| g.org_id)
            .ok_or(Error::Forbidden("forbidden"))?,
    };
    let org = db::orgs::get(c, org_id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadAudit, &org.path)?;
    db::audit::list(
        c,
        &db::audit::Filter {
            under: org.path,
            actor: q.actor,
            subject: q.subject.clone(),
            operation: q.operation.clone(),
            from: Some(from),
            to: Some(to),
            before: q.before,
        },
        q.limit,
    )
    .await
}
