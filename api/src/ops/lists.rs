//! The red and yellow lists (红黄榜): generated from the ledger by the township's rules as a
//! draft the committee may regenerate, published once by the secretary, then seen by the
//! branch and exported for the village notice board.

use super::authorize;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::events::{DomainEvent, ListPublished};
use yunlian_domain::org::OrgKind;
use yunlian_domain::points::{generate, ListKind, Period};
use yunlian_domain::Error;
use yunlian_infra::db::{self, lists::List, Conn};
use yunlian_infra::workbook::{self, Cell};

/// `generateLists`: the branch's lists for the period, from the ledger as it is now.
pub async fn generate_lists(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    period: Period,
    now: DateTime<Utc>,
) -> Result<List, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManagePoints, &o.path)?;
    if !matches!(o.kind, OrgKind::Branch | OrgKind::GeneralBranch) {
        return Err(Error::invalid("org_id", "org_not_a_branch"));
    }
    let key = period.to_string();
    let existing = db::lists::lock(c, o.id, &key).await?;
    if existing.as_ref().is_some_and(|l| l.state == "published") {
        return Err(Error::Conflict("list_already_published"));
    }
    let (rules, _) = super::points::effective(c, &o.path).await?;
    let facts = db::lists::member_facts(c, o.id, &period.months()).await?;
    let before = period.previous().to_string();
    let was_yellow: Vec<Uuid> = db::lists::list_within(c, &o.path, Some(&before), true)
        .await?
        .into_iter()
        .filter(|l| l.org_id == o.id)
        .flat_map(|l| l.entries)
        .filter(|e| e.list == ListKind::Yellow)
        .map(|e| e.member_id)
        .collect();
    let l = List {
        id: existing.map(|l| l.id).unwrap_or_else(Uuid::now_v7),
        org_id: o.id,
        period: key,
        state: "draft".into(),
        entries: generate(&facts, &rules.lists, &was_yellow),
        generated_by: p.member_id,
        generated_at: now,
        published_by: None,
        published_at: None,
    };
    db::lists::save_draft(c, &l).await?;
    Ok(l)
}

/// A list the caller may see: published ones by the branch, drafts by its committee.
pub async fn visible(c: &mut Conn<'_>, p: &Principal, id: Uuid) -> Result<(List, String), Error> {
    let (l, path) = db::lists::get(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &path)?;
    if l.state != "published" && !p.can(Action::ManagePoints, &path) {
        return Err(Error::NotFound);
    }
    Ok((l, path))
}

/// `publishList`: the secretary publishes the draft, once; the branch's phones get it.
pub async fn publish(
    c: &mut Conn<'_>,
    p: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<List, Error> {
    let (l, path) = db::lists::get(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManageMembers, &path)?;
    let locked = db::lists::lock(c, l.org_id, &l.period)
        .await?
        .ok_or(Error::NotFound)?;
    if !db::lists::publish(c, &locked, p.member_id, now).await? {
        return Err(Error::Conflict("list_already_published"));
    }
    // Warnings tell the members on the yellow list.
    let e = DomainEvent::ListPublished(ListPublished {
        list_id: locked.id,
        org_id: locked.org_id,
        period: locked.period.clone(),
        yellow: locked
            .entries
            .iter()
            .filter(|e| e.list == ListKind::Yellow)
            .map(|e| e.member_id)
            .collect(),
        at: now,
    });
    db::outbox::append(c, &e, now).await?;
    Ok(List {
        state: "published".into(),
        published_by: Some(p.member_id),
        published_at: Some(now),
        ..locked
    })
}

/// Posted admonitions per month and per branch, for a township to follow over time (the
/// seed's 151 → 23).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdmonitionCounts {
    pub org_id: Uuid,
    pub total: i64,
    /// Every month of the range, oldest first, zero where there were none.
    pub months: Vec<MonthCount>,
    /// Branches with at least one, the most first (ties by id).
    pub branches: Vec<BranchCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthCount {
    pub month: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchCount {
    pub org_id: Uuid,
    pub name: String,
    pub count: i64,
}

/// The longest range `getAdmonitionCounts` answers, in months.
pub const ADMONITION_RANGE_MONTHS: usize = 60;

/// `getAdmonitionCounts`: posted admonitions inside an org from month `from` to `to`.
pub async fn admonition_counts(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    from: Period,
    to: Period,
) -> Result<AdmonitionCounts, Error> {
    let (Period::Month(fy, fm), Period::Month(ty, tm)) = (from, to) else {
        return Err(Error::invalid("from", "invalid_period"));
    };
    let months: Vec<String> = (fy * 12 + fm as i32 - 1..=ty * 12 + tm as i32 - 1)
        .map(|i| format!("{:04}-{:02}", i / 12, i % 12 + 1))
        .collect();
    if months.is_empty() {
        return Err(Error::invalid("to", "range_reversed"));
    }
    if months.len() > ADMONITION_RANGE_MONTHS {
        return Err(Error::invalid("to", "range_too_long"));
    }
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ManagePoints, &o.path)?;
    let rows = db::lists::admonitions(c, &o.path, &months).await?;
    let mut per_branch: std::collections::BTreeMap<Uuid, i64> = Default::default();
    let mut per_month: std::collections::BTreeMap<&str, i64> =
        months.iter().map(|m| (m.as_str(), 0)).collect();
    for (branch, month, n) in &rows {
        *per_branch.entry(*branch).or_default() += n;
        if let Some(m) = per_month.get_mut(month.as_str()) {
            *m += n;
        }
    }
    let mut branches = Vec::new();
    for (id, count) in per_branch {
        let name = db::orgs::get(c, id)
            .await?
            .map(|o| o.name)
            .unwrap_or_default();
        branches.push(BranchCount {
            org_id: id,
            name,
            count,
        });
    }
    branches.sort_by(|a, b| b.count.cmp(&a.count).then(a.org_id.cmp(&b.org_id)));
    Ok(AdmonitionCounts {
        org_id: o.id,
        total: per_month.values().sum(),
        months: per_month
            .into_iter()
            .map(|(m, count)| MonthCount {
                month: m.to_string(),
                count,
            })
            .collect(),
        branches,
    })
}

/// `listLists`: the lists of the branches inside the org (drafts for the committee only).
pub async fn list(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    period: Option<Period>,
) -> Result<Vec<List>, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &o.path)?;
    let drafts = p.can(Action::ManagePoints, &o.path);
    let key = period.map(|p| p.to_string());
    db::lists::list_within(c, &o.path, key.as_deref(), !drafts).await
}

fn reason_zh(r: &str) -> &'static str {
    match r {
        "most_points" => "积分靠前",
        "absent_without_leave" => "无故缺席组织生活",
        "learning_below_minimum" => "学习积分未达标",
        "admonished" => "受到告诫",
        "compliant_again" => "本期已达标，移出黄榜",
        _ => "其他",
    }
}

/// `exportList`: a published list as a workbook for the notice board (a draft: its committee
/// only, to review it).
pub async fn export(c: &mut Conn<'_>, p: &Principal, id: Uuid) -> Result<(Vec<u8>, String), Error> {
    let (l, path) = db::lists::get(c, id).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadOrg, &path)?;
    if l.state != "published" && !p.can(Action::ManagePoints, &path) {
        return Err(Error::Forbidden("list_not_published"));
    }
    let o = db::orgs::get(c, l.org_id).await?.ok_or(Error::NotFound)?;
    let rows: Vec<Vec<Cell>> = l
        .entries
        .iter()
        .map(|e| {
            vec![
                Cell::Text(
                    match e.list {
                        ListKind::Red => "红榜",
                        ListKind::Yellow => "黄榜",
                        ListKind::Cleared => "摘黄",
                    }
                    .into(),
                ),
                Cell::Text(e.name.clone()),
                Cell::Number(e.total),
                Cell::Text(
                    e.reasons
                        .iter()
                        .map(|r| reason_zh(r))
                        .collect::<Vec<_>>()
                        .join("；"),
                ),
            ]
        })
        .collect();
    let title = format!("{} {} 红黄榜", o.name, l.period);
    let bytes = workbook::table(
        &title,
        "红黄榜",
        &["榜单", "姓名", "积分", "原因"],
        &[10.0, 14.0, 10.0, 40.0],
        &rows,
    )?;
    Ok((bytes, format!("lists-{}.xlsx", l.period)))
}

/// `exportRanking`: a ranking as a workbook.
pub fn export_ranking(
    org_name: &str,
    period: Period,
    lines: &[super::points::Ranked],
) -> Result<Vec<u8>, Error> {
    let rows: Vec<Vec<Cell>> = lines
        .iter()
        .map(|r| {
            vec![
                Cell::Number(r.position as i64),
                Cell::Text(r.name.clone()),
                Cell::Number(r.total),
            ]
        })
        .collect();
    let title = format!("{org_name} {period} 积分排名");
    workbook::table(
        &title,
        "积分排名",
        &["名次", "姓名", "积分"],
        &[8.0, 14.0, 10.0],
        &rows,
    )
}
