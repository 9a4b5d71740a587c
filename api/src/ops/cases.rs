//! Cases: the committee that handles one (the branch's, or the township's after a transfer)
//! moves it through [`transition`]; each step is written with its event to the outbox in the
//! same transaction, under the case's row lock (two cases of a merge locked in id order).

use chrono::{DateTime, Utc};
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal, Role};
use yunlian_domain::events::{CaseOverdue, CaseTransitioned, DomainEvent};
use yunlian_domain::moments::{
    transition, Assignee, Case, CaseAction, CaseError, CaseStep, MergeTarget,
};
use yunlian_domain::org::{path_ids, OrgKind};
use yunlian_domain::settings::Settings;
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn};

/// What a request asks of a case; the use case turns it into a [`CaseAction`] with the facts
/// it needs.
#[derive(Debug, Clone)]
pub enum Ask {
    Accept { assignee: Uuid },
    Assign { assignee: Uuid },
    Resolve { reply: String },
    Decline { reason: String },
    Transfer { note: Option<String> },
}

/// A case the caller may see: its branch's committee, the committee handling it, or a member
/// who follows it.
pub async fn visible(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
) -> Result<(Case, Vec<CaseStep>), Error> {
    let (case, branch_path, handler_path) = db::cases::get(c, id).await?.ok_or(Error::NotFound)?;
    let committee =
        p.can(Action::ManageBoard, &branch_path) || p.can(Action::ManageBoard, &handler_path);
    if !committee && !db::cases::followers(c, &case).await?.contains(&p.member_id) {
        return Err(Error::NotFound);
    }
    let steps = db::cases::steps(c, id).await?;
    Ok((case, steps))
}

/// Only the committee handling a case moves it; its branch's committee still sees a case it
/// transferred (forbidden), anyone else does not (not found).
fn may_handle(p: &Principal, branch_path: &str, handler_path: &str) -> Result<(), Error> {
    if p.can(Action::ManageBoard, handler_path) {
        Ok(())
    } else if p.sees(branch_path) || p.sees(handler_path) {
        Err(Error::Forbidden("forbidden"))
    } else {
        Err(Error::NotFound)
    }
}

/// Whether `member` sits on the committee of `org` (or administers it): who may take a case.
async fn assignee(c: &mut Conn<'_>, org: Uuid, member: Uuid) -> Result<Assignee, Error> {
    let grants = db::roles::grants_of(c, member).await?;
    let on_committee = grants.iter().any(|g| {
        g.org_id == org
            && matches!(
                g.role,
                Role::Secretary | Role::CommitteeMember | Role::TownshipAdmin
            )
    });
    Ok(Assignee {
        member_id: member,
        on_committee,
    })
}

/// The township a branch's case goes up to: the nearest committee (党委) above the branch.
async fn township_above(c: &mut Conn<'_>, branch_path: &str) -> Result<Uuid, Error> {
    let mut ids = path_ids(branch_path);
    ids.pop();
    for id in ids.into_iter().rev() {
        if let Some(o) = db::orgs::get(c, id).await? {
            if o.kind == OrgKind::Committee {
                return Ok(o.id);
            }
        }
    }
    Err(Error::Unprocessable("no_township_above"))
}

fn event(case: &Case, step: &CaseStep) -> DomainEvent {
    DomainEvent::CaseTransitioned(CaseTransitioned {
        case_id: case.id,
        org_id: case.org_id,
        handler_org_id: case.handler_org_id,
        author_id: case.author_id,
        category: case.category,
        action: step.action.clone(),
        state: case.state,
        actor_id: step.actor_id,
        assignee_id: case.assignee_id,
        due_at: case.due_at,
        at: step.at,
    })
}

/// `acceptCase`, `assignCase`, `resolveCase`, `declineCase`, `transferCase`.
pub async fn act(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    ask: Ask,
    now: DateTime<Utc>,
    root: Settings,
) -> Result<Case, Error> {
    let locked = db::cases::lock(c, &[id]).await?.pop().flatten();
    let (case, branch_path, handler_path) = locked.ok_or(Error::NotFound)?;
    may_handle(p, &branch_path, &handler_path)?;
    // The handling org's days: a township sets them for its branches and for itself.
    let settings = super::settings::effective(c, &handler_path, root).await?;
    let action = match ask {
        Ask::Accept { assignee: m } => CaseAction::Accept {
            assignee: assignee(c, case.handler_org_id, m).await?,
        },
        Ask::Assign { assignee: m } => CaseAction::Reassign {
            assignee: assignee(c, case.handler_org_id, m).await?,
        },
        Ask::Resolve { reply } => CaseAction::Resolve { reply },
        Ask::Decline { reason } => CaseAction::Decline { reason },
        Ask::Transfer { note } => {
            if case.handler_org_id != case.org_id {
                return Err(CaseError::AlreadyTransferred.into());
            }
            CaseAction::Transfer {
                to_org: township_above(c, &branch_path).await?,
                note,
            }
        }
    };
    let (after, step) = transition(&case, &action, Some(p.member_id), now, &settings)?;
    db::cases::update(c, &after, &step).await?;
    db::outbox::append(c, &event(&after, &step), now).await?;
    Ok(after)
}

/// `mergeCases`: `id` is a duplicate of `into`. Both rows are locked in id order; the
/// surviving case's history records the merge and its commenter now follows it.
pub async fn merge(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    into: Uuid,
    now: DateTime<Utc>,
    settings: Settings,
) -> Result<(Case, Case), Error> {
    let mut locked = db::cases::lock(c, &[id, into]).await?;
    let target = locked.pop().flatten();
    let (case, branch_path, handler_path) = locked.pop().flatten().ok_or(Error::NotFound)?;
    may_handle(p, &branch_path, &handler_path)?;
    // A case the caller cannot see is, to them, a case of another branch.
    let (target, _, _) = match target {
        Some(t) if p.sees(&t.1) || p.sees(&t.2) => t,
        _ => return Err(Error::invalid("into", "case_not_found")),
    };
    let facts = MergeTarget {
        id: target.id,
        org_id: target.org_id,
        state: target.state,
    };
    let (after, step) = transition(
        &case,
        &CaseAction::MergeInto { into: facts },
        Some(p.member_id),
        now,
        &settings,
    )?;
    db::cases::update(c, &after, &step).await?;
    let absorbed = CaseStep {
        action: "absorbed".into(),
        actor_id: Some(p.member_id),
        at: now,
        note: Some(case.id.to_string()),
    };
    db::cases::touch(c, &target, &absorbed).await?;
    db::outbox::append(c, &event(&after, &step), now).await?;
    let target = Case {
        updated_at: now,
        ..target
    };
    Ok((after, target))
}

/// The overdue job's round: every assigned case past due is marked once, each in its own
/// transaction under its row lock, and its event written. Returns how many were marked.
pub async fn mark_overdue(
    db: &yunlian_infra::Db,
    now: DateTime<Utc>,
    settings: Settings,
) -> Result<usize, Error> {
    use yunlian_infra::db::ScopedFutureExt;
    let ids = db
        .read(move |mut c| {
            async move { db::cases::due_for_overdue(&mut c, now, 500).await }.scope_boxed()
        })
        .await?;
    let mut marked = 0;
    for id in ids {
        let done = db
            .write(move |mut c| {
                async move {
                    let Some((case, _, _)) = db::cases::lock(&mut c, &[id]).await?.pop().flatten()
                    else {
                        return Ok(false);
                    };
                    let (after, step) =
                        match transition(&case, &CaseAction::MarkOverdue, None, now, &settings) {
                            Ok(t) => t,
                            // Resolved or reassigned meanwhile: nothing to mark.
                            Err(Error::Conflict("case_not_overdue")) => return Ok(false),
                            Err(e) => return Err(e),
                        };
                    db::cases::update(&mut c, &after, &step).await?;
                    let e = DomainEvent::CaseOverdue(CaseOverdue {
                        case_id: after.id,
                        org_id: after.org_id,
                        handler_org_id: after.handler_org_id,
                        assignee_id: after.assignee_id,
                        due_at: after.due_at.unwrap_or(now),
                        at: now,
                    });
                    db::outbox::append(&mut c, &e, now).await?;
                    Ok(true)
                }
                .scope_boxed()
            })
            .await?;
        marked += usize::from(done);
    }
    Ok(marked)
}
