//! Members: create, list, read, edit, import a roster, reset a password.

use super::{authorize, created, decode_cursor, limit, load_org, nullable, page};
use crate::auth::AuthUser;
use crate::errors::ApiError;
use crate::ops::{self, members::Placement};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use yunlian_domain::auth::Action;
use yunlian_domain::member::{
    check_join_date, check_password, check_residence, parse_name, Member, MemberFields,
    MemberPatch, MemberStatus, Phone, Residence,
};
use yunlian_domain::org::OrgKind;
use yunlian_domain::{roster, text, Error, FieldError};
use yunlian_infra::db::{self, members::MemberFilter, ScopedFutureExt};
use yunlian_infra::password;

fn collect<T>(r: Result<T, FieldError>, errs: &mut Vec<FieldError>) -> Option<T> {
    r.map_err(|e| errs.push(e)).ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMember {
    org_id: Uuid,
    group_id: Option<Uuid>,
    name: String,
    phone: String,
    status: MemberStatus,
    join_date: Option<NaiveDate>,
    residence: Option<Residence>,
    migrant_city: Option<String>,
    elderly_or_infirm: Option<bool>,
    central_household: Option<bool>,
    /// An initial password, so the member can log in at once.
    password: Option<String>,
}

pub async fn create_member(
    state: web::Data<AppState>,
    user: AuthUser,
    body: web::Json<CreateMember>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let org = load_org(&state, b.org_id).await?;
    authorize(&user, Action::ManageMembers, &org.path)?;
    let today = state.clock.now().date_naive();
    let mut errs = Vec::new();
    let name = collect(parse_name(&b.name), &mut errs);
    let phone = collect(Phone::parse(&b.phone), &mut errs);
    let join_date = b
        .join_date
        .and_then(|d| collect(check_join_date(d, today), &mut errs));
    let residence = b.residence.unwrap_or(Residence::AtHome);
    let city = collect(
        check_residence(residence, b.migrant_city.as_deref()),
        &mut errs,
    );
    if let Some(p) = &b.password {
        collect(check_password(p), &mut errs);
    }
    let (Some(name), Some(phone), Some(migrant_city), true) = (name, phone, city, errs.is_empty())
    else {
        return Err(Error::Invalid(errs).into());
    };
    let (o, g) = (org.clone(), b.group_id);
    state
        .db
        .read(move |mut c| {
            async move { ops::members::check_placement(&mut c, &o, g).await }.scope_boxed()
        })
        .await?;
    let hash = match &b.password {
        Some(p) => Some(password::hash(p).await?),
        None => None,
    };
    let now = state.clock.now();
    let member = Member {
        id: Uuid::now_v7(),
        org_id: org.id,
        group_id: b.group_id,
        fields: MemberFields {
            name,
            phone,
            status: b.status,
            join_date,
            residence,
            migrant_city,
            elderly_or_infirm: b.elderly_or_infirm.unwrap_or(false),
            central_household: b.central_household.unwrap_or(false),
        },
        can_login: hash.is_some(),
        created_at: now,
        updated_at: now,
    };
    let (m, path) = (member.clone(), org.path.clone());
    state
        .db
        .write(move |mut c| {
            async move {
                if hash.is_some() {
                    let mut changes = yunlian_domain::audit::diff_of(None, Some(&m.fields));
                    changes.push(yunlian_domain::audit::secret_changed("password"));
                    db::audit::note(&mut c, "member", m.id, &path, changes);
                } else {
                    let changes = yunlian_domain::audit::diff_of(None, Some(&m.fields));
                    db::audit::note(&mut c, "member", m.id, &path, changes);
                }
                db::members::insert(&mut c, &m, hash).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(member = %member.id, org = %org.id, phone = %member.fields.phone.masked(), "member created");
    Ok(created(&member))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMembersQuery {
    org_id: Option<Uuid>,
    status: Option<MemberStatus>,
    residence: Option<Residence>,
    group_id: Option<Uuid>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list_members(
    state: web::Data<AppState>,
    user: AuthUser,
    q: crate::extract::Query<ListMembersQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = limit(q.limit)?;
    let within = match q.org_id {
        Some(id) => {
            let org = load_org(&state, id).await?;
            authorize(&user, Action::ReadMembers, &org.path)?;
            org.path
        }
        None => {
            let mut roots = user.member_read_roots();
            match roots.len() {
                0 => return Err(ApiError::forbidden()),
                1 => roots.remove(0),
                _ => return Err(ApiError::field("org_id", "org_id_required")),
            }
        }
    };
    let filter = MemberFilter {
        within,
        status: q.status,
        residence: q.residence,
        group_id: q.group_id,
        q: text::clean_opt("q", q.q.as_deref(), text::Kind::Line, 100)
            .map_err(|e| Error::Invalid(vec![e]))?,
        after: decode_cursor(q.cursor.as_deref())?,
        limit: limit + 1,
    };
    let rows = state
        .db
        .read(move |mut c| async move { db::members::list(&mut c, &filter).await }.scope_boxed())
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |m| m.id)))
}

pub async fn get_member(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (member, path) = state
        .db
        .read(move |mut c| async move { db::members::get(&mut c, id).await }.scope_boxed())
        .await?
        .ok_or_else(ApiError::not_found)?;
    // Oneself, or anyone in a subtree where the caller reads the roster.
    if member.id != user.member_id {
        authorize(&user, Action::ReadMembers, &path)?;
    }
    Ok(HttpResponse::Ok().json(member))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    org_id: Option<Uuid>,
    #[serde(default, deserialize_with = "nullable")]
    group_id: Option<Option<Uuid>>,
    name: Option<String>,
    phone: Option<String>,
    status: Option<MemberStatus>,
    #[serde(default, deserialize_with = "nullable")]
    join_date: Option<Option<NaiveDate>>,
    residence: Option<Residence>,
    #[serde(default, deserialize_with = "nullable")]
    migrant_city: Option<Option<String>>,
    elderly_or_infirm: Option<bool>,
    central_household: Option<bool>,
}

pub async fn update_member(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<UpdateMember>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let patch = MemberPatch {
        name: b.name,
        phone: b.phone,
        status: b.status,
        join_date: b.join_date,
        residence: b.residence,
        migrant_city: b.migrant_city,
        elderly_or_infirm: b.elderly_or_infirm,
        central_household: b.central_household,
    };
    let place = Placement {
        org_id: b.org_id,
        group_id: b.group_id,
    };
    let (principal, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    let member = state
        .db
        .write(move |mut c| {
            async move { ops::members::update(&mut c, &principal, id, &patch, place, now).await }
                .scope_boxed()
        })
        .await?;
    Ok(HttpResponse::Ok().json(member))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    password: String,
}

/// An admin or secretary sets a member's password (an imported member's first, or a forgotten
/// one); every session of that member ends.
pub async fn reset_member_password(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    let (principal, id) = (user.0.clone(), id.into_inner());
    // Checked before the (slow) hash, and again under the member's lock where the hash is
    // written: a role granted meanwhile still puts the account out of reach.
    let p = principal.clone();
    state
        .db
        .read(move |mut c| {
            async move { ops::members::load_manageable(&mut c, &p, id).await }.scope_boxed()
        })
        .await?;
    check_password(&body.password).map_err(|e| Error::Invalid(vec![e]))?;
    let hash = password::hash(&body.password).await?;
    let now = state.clock.now();
    state
        .db
        .write(move |mut c| {
            async move { ops::members::reset_password(&mut c, &principal, id, &hash, now).await }
                .scope_boxed()
        })
        .await?;
    tracing::info!(member = %id, by = %user.member_id, "password reset");
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize)]
struct ImportReport {
    dry_run: bool,
    rows: usize,
    created: usize,
    ignored_columns: Vec<String>,
}

/// The roster of an org subtree as a CSV file in the import's own format (`exportMembers`):
/// what a village committee prints or keeps, and can import again. Cells a spreadsheet would run
/// as formulas are neutralised.
pub async fn export_members(
    state: web::Data<AppState>,
    user: AuthUser,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org = load_org(&state, org_id.into_inner()).await?;
    authorize(&user, Action::ReadMembers, &org.path)?;
    let within = org.path.clone();
    let (members, groups) = state
        .db
        .read(move |mut c| {
            async move {
                let mut all = Vec::new();
                let mut after = None;
                loop {
                    let filter = MemberFilter {
                        within: within.clone(),
                        after,
                        limit: 1000,
                        ..Default::default()
                    };
                    let page = db::members::list(&mut c, &filter).await?;
                    after = page.last().map(|m| m.id);
                    let done = page.len() < 1000;
                    all.extend(page);
                    if done {
                        break;
                    }
                }
                let mut ids: Vec<Uuid> = all.iter().filter_map(|m| m.group_id).collect();
                ids.sort();
                ids.dedup();
                let mut groups = std::collections::HashMap::new();
                for g in ids {
                    if let Some(o) = db::orgs::get(&mut c, g).await? {
                        groups.insert(g, o.name);
                    }
                }
                Ok((all, groups))
            }
            .scope_boxed()
        })
        .await?;
    let rows: Vec<roster::ExportRow<'_>> = members
        .iter()
        .map(|m| roster::ExportRow {
            member: &m.fields,
            group: m.group_id.and_then(|g| groups.get(&g)).map(String::as_str),
        })
        .collect();
    let csv = roster::export(&rows)?;
    let exported = vec![yunlian_domain::audit::Change {
        field: "members_exported".into(),
        before: serde_json::Value::Null,
        after: serde_json::json!(rows.len()),
    }];
    db::audit::record(
        &state.db,
        "roster",
        org.path.clone(),
        org.path.clone(),
        exported,
    )
    .await?;
    tracing::info!(org = %org.id, rows = rows.len(), by = %user.member_id, "roster exported");
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"roster.csv\"",
        ))
        .body(csv))
}

/// The content types a roster may come as: CSV, and what spreadsheet programs on Windows label
/// a `.csv` file with.
const CSV_TYPES: [&str; 3] = ["text/csv", "application/csv", "application/vnd.ms-excel"];

/// Imports a roster CSV into a branch: all rows or none.
pub async fn import_members(
    state: web::Data<AppState>,
    user: AuthUser,
    org_id: web::Path<Uuid>,
    q: crate::extract::Query<ImportQuery>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ct = actix_web::HttpMessage::content_type(&req).to_ascii_lowercase();
    if !CSV_TYPES.contains(&ct.as_str()) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ));
    }
    let org = load_org(&state, org_id.into_inner()).await?;
    authorize(&user, Action::ManageMembers, &org.path)?;
    if !org.kind.holds_members() {
        return Err(ApiError::field("org_id", "org_holds_no_members"));
    }
    let now = state.clock.now();
    let parsed = roster::parse(&body, now.date_naive())?;
    let mut errors = parsed.errors;
    let rows = parsed.roster.rows;

    // Checks against what is stored: phones already taken, groups that do not exist.
    let phones: Vec<String> = rows
        .iter()
        .map(|r| r.member.phone.as_str().to_string())
        .collect();
    let group_names: Vec<String> = {
        let mut g: Vec<String> = rows.iter().filter_map(|r| r.group.clone()).collect();
        g.sort();
        g.dedup();
        g
    };
    let oid = org.id;
    let (taken, groups) = state
        .db
        .read(move |mut c| {
            async move {
                let taken = db::members::taken_phones(&mut c, &phones).await?;
                let mut groups = Vec::new();
                for name in group_names {
                    let g = db::orgs::child_by_name(&mut c, oid, &name).await?;
                    groups.push((name, g.filter(|g| g.kind == OrgKind::Group).map(|g| g.id)));
                }
                Ok((taken, groups))
            }
            .scope_boxed()
        })
        .await?;
    let mut members = Vec::with_capacity(rows.len());
    for row in &rows {
        if taken.iter().any(|t| t == row.member.phone.as_str()) {
            errors.push(FieldError::new("phone", "phone_taken").at_line(row.line));
        }
        let group_id = match &row.group {
            None => None,
            Some(name) => match groups
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, id)| *id)
            {
                Some(id) => Some(id),
                None => {
                    errors.push(FieldError::new("group", "group_not_found").at_line(row.line));
                    None
                }
            },
        };
        members.push(Member {
            id: Uuid::now_v7(),
            org_id: org.id,
            group_id,
            fields: row.member.clone(),
            can_login: false,
            created_at: now,
            updated_at: now,
        });
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(ApiError {
            fields: errors,
            ..ApiError::from(Error::Unprocessable("roster_invalid"))
        });
    }
    let report = ImportReport {
        dry_run: q.dry_run,
        rows: members.len(),
        created: if q.dry_run { 0 } else { members.len() },
        ignored_columns: parsed.roster.ignored_columns,
    };
    if q.dry_run {
        return Ok(HttpResponse::Ok().json(report));
    }
    let n = members.len();
    let path = org.path.clone();
    state
        .db
        .write(move |mut c| {
            async move {
                // One entry for the import, and one per member it created (with their fields).
                let changes = vec![yunlian_domain::audit::Change {
                    field: "members_created".into(),
                    before: serde_json::Value::Null,
                    after: serde_json::json!(members.len()),
                }];
                db::audit::note(&mut c, "roster", &path, &path, changes);
                for m in &members {
                    let changes = yunlian_domain::audit::diff_of(None, Some(&m.fields));
                    db::audit::note(&mut c, "member", m.id, &path, changes);
                }
                db::members::insert_many(&mut c, &members).await
            }
            .scope_boxed()
        })
        .await?;
    tracing::info!(org = %org.id, created = n, by = %user.member_id, "roster imported");
    Ok(created(&report))
}

/// A member leaves the branch (`deactivateMember`).
pub async fn deactivate_member(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (principal, id, now) = (user.0.clone(), id.into_inner(), state.clock.now());
    state
        .db
        .write(move |mut c| {
            async move { ops::members::deactivate(&mut c, &principal, id, now).await }.scope_boxed()
        })
        .await?;
    tracing::info!(member = %id, by = %user.member_id, "member left");
    Ok(HttpResponse::NoContent().finish())
}
