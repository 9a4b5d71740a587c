//! Members: edits by the committee, whereabouts reported from a phone, and who may touch an
//! account. Every edit locks the member's row and writes only the columns it changes.

use super::authorize;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use yunlian_domain::auth::{grant_fits_place, Action, Grant, Principal};
use yunlian_domain::events::{DomainEvent, RoleEnded};
use yunlian_domain::member::{check_residence, Member, MemberPatch, Residence};
use yunlian_domain::org::{Org, OrgKind};
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn};

/// Where an edit puts the member: another org (the group then follows unless named), and the
/// party group inside it (`Some(None)`: none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Placement {
    pub org_id: Option<Uuid>,
    pub group_id: Option<Option<Uuid>>,
}

/// The org a member is placed in must hold members; a group, when given, must be a party group
/// directly inside it.
pub async fn check_placement(
    c: &mut Conn<'_>,
    org: &Org,
    group_id: Option<Uuid>,
) -> Result<(), Error> {
    if !org.kind.holds_members() {
        return Err(Error::invalid("org_id", "org_holds_no_members"));
    }
    if let Some(g) = group_id {
        match db::orgs::get(c, g).await? {
            Some(group) if group.kind == OrgKind::Group && group.parent_id == Some(org.id) => {}
            _ => return Err(Error::invalid("group_id", "group_not_found")),
        }
    }
    Ok(())
}

/// Refuses when `target` holds a role the caller could not grant (editing oneself is fine: it
/// takes over nobody).
async fn ensure_outranks(c: &mut Conn<'_>, p: &Principal, target: Uuid) -> Result<(), Error> {
    if target == p.member_id {
        return Ok(());
    }
    let theirs = db::roles::grants_of(c, target).await?;
    if p.outranks_all(&theirs) {
        Ok(())
    } else {
        Err(Error::Forbidden("member_holds_higher_role"))
    }
}

/// A member the caller may manage as an account (edit, reset the password of): in a subtree
/// where they manage members, holding no role they could not grant.
pub async fn load_manageable(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
) -> Result<(Member, String), Error> {
    let (member, path) = db::members::get(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMembers, &path)?;
    ensure_outranks(c, p, member.id).await?;
    Ok((member, path))
}

/// An admin or secretary sets a member's password (`resetMemberPassword`); every session of
/// that member ends in the same transaction.
pub async fn reset_password(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let (_, path) = db::members::lock(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMembers, &path)?;
    ensure_outranks(c, p, id).await?;
    let changes = vec![yunlian_domain::audit::secret_changed("password")];
    db::audit::note(c, "member", id, &path, changes);
    db::members::set_password(c, id, hash, now).await?;
    db::sessions::revoke_all(c, id, "password_reset", now).await?;
    Ok(())
}

/// The committee edits a member (`updateMember`): fields, and maybe a move to another org or
/// group, which ends the roles the member held where they no longer belong.
pub async fn update(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    patch: &MemberPatch,
    place: Placement,
    now: DateTime<Utc>,
) -> Result<Member, Error> {
    let (before, path) = db::members::lock(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMembers, &path)?;
    ensure_outranks(c, p, before.id).await?;
    let fields = patch
        .apply(&before.fields, now.date_naive())
        .map_err(Error::Invalid)?;
    let mut after = Member {
        fields,
        ..before.clone()
    };
    let target = match place.org_id {
        Some(o) if o != before.org_id => {
            let org = db::orgs::get(c, o).await?.ok_or(Error::NotFound)?;
            authorize(p, Action::ManageMembers, &org.path)?;
            after.org_id = o;
            if place.group_id.is_none() {
                after.group_id = None;
            }
            org
        }
        _ => db::orgs::get(c, before.org_id)
            .await?
            .ok_or(Error::NotFound)?,
    };
    if let Some(g) = place.group_id {
        after.group_id = g;
    }
    check_placement(c, &target, after.group_id).await?;
    if after == before {
        return Ok(before);
    }
    after.updated_at = now;
    let mut changes = yunlian_domain::audit::diff_of(Some(&before.fields), Some(&after.fields));
    changes.extend(yunlian_domain::audit::diff(
        &serde_json::json!({"org_id": before.org_id, "group_id": before.group_id}),
        &serde_json::json!({"org_id": after.org_id, "group_id": after.group_id}),
    ));
    db::audit::note(c, "member", after.id, &path, changes);
    db::members::update(c, &before, &after).await?;
    if (after.org_id, after.group_id) != (before.org_id, before.group_id) {
        end_displaced_roles(c, &after, &target.path, now).await?;
    }
    Ok(after)
}

/// Ends every role `m` holds on an org they no longer belong to, each with a `role.ended`
/// event. Authorisation reads grants afresh on every request, so the access ends at once.
async fn end_displaced_roles(
    c: &mut Conn<'_>,
    m: &Member,
    org_path: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    for (grant, path) in db::roles::of_member(c, m.id).await? {
        let held = Grant {
            org_id: grant.org_id,
            org_path: path,
            role: grant.role,
        };
        if grant_fits_place(&held, org_path, m.group_id) {
            continue;
        }
        end_role(c, &grant, "moved", now).await?;
        tracing::info!(grant = %grant.id, member = %m.id, role = grant.role.as_str(), "role ended by a move");
    }
    Ok(())
}

/// Ends one role with its `role.ended` event (`reason`: `moved`, `left`).
async fn end_role(
    c: &mut Conn<'_>,
    grant: &db::roles::RoleGrant,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    db::roles::delete(c, grant.id).await?;
    let event = DomainEvent::RoleEnded(RoleEnded {
        grant_id: grant.id,
        member_id: grant.member_id,
        org_id: grant.org_id,
        role: grant.role,
        reason: reason.into(),
    });
    db::outbox::append(c, &event, now).await?;
    Ok(())
}

/// A member reports where they are now (at home, or working in which city), from the phone:
/// only those two columns change, under the member's row lock.
pub async fn set_whereabouts(
    c: &mut Conn<'_>,
    p: &Principal,
    residence: Residence,
    city: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Member, Error> {
    let city = check_residence(residence, city).map_err(|e| Error::Invalid(vec![e]))?;
    let (before, _) = db::members::lock(c, p.member_id)
        .await?
        .ok_or(Error::NotFound)?;
    let mut after = before.clone();
    after.fields.residence = residence;
    after.fields.migrant_city = city;
    after.updated_at = now;
    db::members::update(c, &before, &after).await?;
    Ok(after)
}

/// A member leaves (`deactivateMember`): they can no longer log in (no password, every
/// session ended, every device revoked, every role ended with its `role.ended` event), are not
/// expected at meetings that begin later, and keep their attendance. Their phone number and
/// device keys are erased after the township's `departed_retention_days` (the `departed` job).
pub async fn deactivate(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let (member, path) = db::members::lock(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMembers, &path)?;
    if member.id == p.member_id {
        return Err(Error::Conflict("cannot_deactivate_self"));
    }
    ensure_outranks(c, p, member.id).await?;
    if !db::members::mark_left(c, &member, now).await? {
        return Err(Error::Conflict("member_already_left"));
    }
    db::audit::note(
        c,
        "member",
        member.id,
        &path,
        vec![yunlian_domain::audit::Change {
            field: "left_at".into(),
            before: serde_json::Value::Null,
            after: serde_json::json!(now),
        }],
    );
    db::sessions::revoke_all(c, member.id, "left", now).await?;
    for d in db::devices::of_member(c, member.id).await? {
        db::devices::revoke(c, &d, p.member_id, now).await?;
    }
    for (grant, _) in db::roles::of_member(c, member.id).await? {
        end_role(c, &grant, "left", now).await?;
    }
    Ok(())
}
