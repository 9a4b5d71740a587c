//! Branch assessment: each branch's monthly checklist over a year (or the months of one
//! quarter, for the scan), its quarters against the township's minimum, its grade and its
//! card; the township's table of branches, and its workbook.

use super::authorize;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;
use yunlian_domain::auth::{Action, Principal};
use yunlian_domain::org::{Org, OrgKind};
use yunlian_domain::points::Period;
use yunlian_domain::settings::Settings;
use yunlian_domain::warnings::assessment::{
    card, grade, month_requirements, quarter_total, score_month, scored_months, Card, Grade,
    MonthFacts, MonthScore, MONTH_MAX,
};
use yunlian_domain::warnings::calendar::bounds;
use yunlian_domain::Error;
use yunlian_infra::db::{self, Conn};
use yunlian_infra::workbook::{self, Cell};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuarterScore {
    pub quarter: String,
    pub total: i64,
    pub max: i64,
    /// Under the township's `assessment_quarter_min`: warned.
    pub below: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchAssessment {
    pub org_id: Uuid,
    pub name: String,
    pub year: i32,
    pub months: Vec<MonthScore>,
    /// The quarters whose months have all been scored.
    pub quarters: Vec<QuarterScore>,
    /// The year's points so far on a scale of 100, and its grade.
    pub score: i64,
    pub grade: Grade,
    /// Quarters under the minimum running, up to the last scored one, and its card.
    pub quarters_behind: usize,
    pub card: Option<Card>,
    pub open_warnings: i64,
}

/// The assessment of every branch inside `within` for `year`, as of `now`.
pub async fn assess_within(
    c: &mut Conn<'_>,
    within: &Org,
    year: i32,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Vec<BranchAssessment>, Error> {
    let world = super::warnings::keepers(c, &within.path).await?;
    let branch_of = world.branch_of();
    let (from, to) = bounds(Period::Year(year));
    let to = to.min(now);
    let meetings = db::meetings::facts_since(c, from).await?;
    let facts = db::assessment::month_facts(c, &within.path, &branch_of, from, to).await?;
    let people = db::assessment::members_per_branch(c, &within.path).await?;
    let mut open: HashMap<Uuid, i64> = HashMap::new();
    for (org, n) in db::warnings::open_counts(c, &within.path).await? {
        *open
            .entry(*branch_of.get(&org).unwrap_or(&org))
            .or_default() += n;
    }
    let mut out = Vec::new();
    for b in &world.branches {
        let s = super::settings::effective(c, &b.path, root).await?;
        let ks = world.of.get(&b.id).cloned().unwrap_or_default();
        let months: Vec<MonthScore> = scored_months(year, b.created_at, now)
            .into_iter()
            .map(|m| {
                let (required, held) = month_requirements(&ks, &meetings, &s, m);
                let mut f = facts
                    .get(&(b.id, m.to_string()))
                    .cloned()
                    .unwrap_or_else(MonthFacts::default);
                f.members = people.get(&b.id).copied().unwrap_or(0);
                score_month(m, required, held, &f)
            })
            .collect();
        let scored: Vec<&str> = months.iter().map(|m| m.month.as_str()).collect();
        let quarters: Vec<QuarterScore> = (1..=4)
            .map(|q| Period::Quarter(year, q))
            .filter(|q| q.months().iter().all(|m| scored.contains(&m.as_str())))
            .map(|q| {
                let total = quarter_total(&months, q);
                QuarterScore {
                    quarter: q.to_string(),
                    total,
                    max: 3 * MONTH_MAX,
                    below: total < s.assessment_quarter_min,
                }
            })
            .collect();
        let behind = quarters.iter().rev().take_while(|q| q.below).count();
        let (score, g) = grade(&months, &s);
        out.push(BranchAssessment {
            org_id: b.id,
            name: b.name.clone(),
            year,
            months,
            quarters,
            score,
            grade: g,
            quarters_behind: behind,
            card: card(behind),
            open_warnings: open.get(&b.id).copied().unwrap_or(0),
        });
    }
    out.sort_by_key(|a| a.org_id);
    Ok(out)
}

fn year_of(raw: Option<i32>, now: DateTime<Utc>) -> Result<i32, Error> {
    let y = raw.unwrap_or_else(|| {
        yunlian_domain::points::month_of(now)[..4]
            .parse()
            .unwrap_or(2026)
    });
    if (2000..=2099).contains(&y) {
        Ok(y)
    } else {
        Err(Error::invalid("year", "out_of_range"))
    }
}

/// `getBranchAssessment`: one branch's year, for its committee and the township.
pub async fn get(
    c: &mut Conn<'_>,
    p: &Principal,
    branch: Uuid,
    year: Option<i32>,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<BranchAssessment, Error> {
    let o = db::orgs::get(c, branch).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadMembers, &o.path)?;
    if !matches!(o.kind, OrgKind::Branch | OrgKind::GeneralBranch) {
        return Err(Error::invalid("org_id", "org_not_a_branch"));
    }
    let year = year_of(year, now)?;
    assess_within(c, &o, year, root, now)
        .await?
        .into_iter()
        .find(|a| a.org_id == o.id)
        .ok_or(Error::NotFound)
}

/// `listBranchAssessments`: the township's table of its branches.
pub async fn list(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    year: Option<i32>,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<Vec<BranchAssessment>, Error> {
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    authorize(p, Action::ReadMembers, &o.path)?;
    let year = year_of(year, now)?;
    assess_within(c, &o, year, root, now).await
}

fn grade_zh(g: Grade) -> &'static str {
    match g {
        Grade::A => "A（示范型）",
        Grade::B => "B（成长型）",
        Grade::C => "C（孵化型）",
    }
}

fn card_zh(c: Option<Card>) -> &'static str {
    match c {
        None => "",
        Some(Card::Blue) => "蓝牌",
        Some(Card::Yellow) => "黄牌",
        Some(Card::Red) => "红牌",
    }
}

/// `exportBranchAssessments`: the table as a workbook (a row per branch: each quarter's points,
/// the year's score, grade, card and open warnings).
pub async fn export(
    c: &mut Conn<'_>,
    p: &Principal,
    org: Uuid,
    year: Option<i32>,
    root: Settings,
    now: DateTime<Utc>,
) -> Result<(Vec<u8>, String), Error> {
    let rows = list(c, p, org, year, root, now).await?;
    let o = db::orgs::get(c, org).await?.ok_or(Error::NotFound)?;
    let year = year_of(year, now)?;
    let cells: Vec<Vec<Cell>> = rows
        .iter()
        .map(|a| {
            let q = |n: u32| {
                let key = Period::Quarter(year, n).to_string();
                a.quarters
                    .iter()
                    .find(|q| q.quarter == key)
                    .map_or(Cell::Text(String::new()), |q| Cell::Number(q.total))
            };
            vec![
                Cell::Text(a.name.clone()),
                q(1),
                q(2),
                q(3),
                q(4),
                Cell::Number(a.score),
                Cell::Text(grade_zh(a.grade).into()),
                Cell::Text(card_zh(a.card).into()),
                Cell::Number(a.open_warnings),
            ]
        })
        .collect();
    let bytes = workbook::table(
        &format!("{} {year}年 基层党组织积分考核", o.name),
        "积分考核",
        &[
            "党组织",
            "一季度",
            "二季度",
            "三季度",
            "四季度",
            "年度得分",
            "等级",
            "预警牌",
            "未解除预警",
        ],
        &[24.0, 9.0, 9.0, 9.0, 9.0, 10.0, 14.0, 9.0, 12.0],
        &cells,
    )?;
    Ok((bytes, format!("assessment-{year}.xlsx")))
}
