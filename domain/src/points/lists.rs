//! The red and yellow lists (红黄榜) of a branch for a period, generated from the ledger by the
//! township's rules: red, the members with the most points and no absence; yellow, the members
//! absent without leave, under the learning minimum, or admonished, each with its reasons.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How the lists are drawn (part of the township's points rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRules {
    /// The red list holds at most this many members (5).
    pub red_top: i64,
    /// ... each with at least this many points (1).
    pub red_min_points: i64,
    /// Fewer learning points than this in the period puts a member on the yellow list (0: the
    /// learning criterion is off until a township sets it).
    pub learning_min_points: i64,
}

impl Default for ListRules {
    fn default() -> Self {
        ListRules {
            red_top: 5,
            red_min_points: 1,
            learning_min_points: 0,
        }
    }
}

/// What the lists are drawn from, per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberFacts {
    pub member_id: Uuid,
    pub name: String,
    pub total: i64,
    /// Absences without leave that stand (a reversed one does not count).
    pub absences: i64,
    pub learning_points: i64,
    /// Posted admonitions (告诫).
    pub admonitions: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    Red,
    Yellow,
    /// Off the yellow list: on the previous period's published yellow list, compliant now.
    Cleared,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub list: ListKind,
    pub member_id: Uuid,
    pub name: String,
    pub total: i64,
    /// Red: `most_points`; yellow: `absent_without_leave`, `learning_below_minimum`,
    /// `admonished`; cleared: `compliant_again`.
    pub reasons: Vec<String>,
}

/// The lists from the facts: red first (most points, ties by member id), then yellow (by
/// member id), then the members who were on the previous period's published yellow list
/// (`was_yellow`) and are not on this one (by member id): their yellow entry clears.
pub fn generate(facts: &[MemberFacts], rules: &ListRules, was_yellow: &[Uuid]) -> Vec<ListEntry> {
    let mut red: Vec<&MemberFacts> = facts
        .iter()
        .filter(|f| f.absences == 0 && f.admonitions == 0 && f.total >= rules.red_min_points.max(1))
        .collect();
    red.sort_by(|a, b| b.total.cmp(&a.total).then(a.member_id.cmp(&b.member_id)));
    red.truncate(rules.red_top.max(0) as usize);
    let mut out: Vec<ListEntry> = red
        .into_iter()
        .map(|f| ListEntry {
            list: ListKind::Red,
            member_id: f.member_id,
            name: f.name.clone(),
            total: f.total,
            reasons: vec!["most_points".into()],
        })
        .collect();
    let mut yellow: Vec<ListEntry> = facts
        .iter()
        .filter_map(|f| {
            let mut reasons = Vec::new();
            if f.absences > 0 {
                reasons.push("absent_without_leave".to_string());
            }
            if f.learning_points < rules.learning_min_points {
                reasons.push("learning_below_minimum".into());
            }
            if f.admonitions > 0 {
                reasons.push("admonished".into());
            }
            (!reasons.is_empty()).then(|| ListEntry {
                list: ListKind::Yellow,
                member_id: f.member_id,
                name: f.name.clone(),
                total: f.total,
                reasons,
            })
        })
        .collect();
    yellow.sort_by_key(|e| e.member_id);
    let mut cleared: Vec<ListEntry> = facts
        .iter()
        .filter(|f| was_yellow.contains(&f.member_id))
        .filter(|f| !yellow.iter().any(|y| y.member_id == f.member_id))
        .map(|f| ListEntry {
            list: ListKind::Cleared,
            member_id: f.member_id,
            name: f.name.clone(),
            total: f.total,
            reasons: vec!["compliant_again".into()],
        })
        .collect();
    cleared.sort_by_key(|e| e.member_id);
    out.append(&mut yellow);
    out.append(&mut cleared);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(n: u128, total: i64, absences: i64, learning: i64, admonitions: i64) -> MemberFacts {
        MemberFacts {
            member_id: Uuid::from_u128(n),
            name: format!("党员{n}"),
            total,
            absences,
            learning_points: learning,
            admonitions,
        }
    }

    #[test]
    fn red_is_the_best_without_absence_and_yellow_carries_its_reasons() {
        let rules = ListRules {
            red_top: 2,
            red_min_points: 1,
            learning_min_points: 2,
        };
        let facts = [
            m(1, 9, 1, 5, 0),  // most points, but absent: yellow, not red
            m(2, 6, 0, 5, 0),  // red
            m(3, 6, 0, 5, 0),  // red (tie: by id)
            m(4, 5, 0, 5, 0),  // third: outside the top two
            m(5, 0, 0, 0, 1),  // admonished and behind on learning
            m(6, -3, 0, 2, 0), // nothing to say
        ];
        // Last period 1 and 6 were yellow: 1 still is, 6 is compliant now; 4 never was.
        let lists = generate(&facts, &rules, &[Uuid::from_u128(1), Uuid::from_u128(6)]);
        let seen: Vec<(ListKind, u128, Vec<String>)> = lists
            .iter()
            .map(|e| (e.list, e.member_id.as_u128(), e.reasons.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (ListKind::Red, 2, vec!["most_points".to_string()]),
                (ListKind::Red, 3, vec!["most_points".to_string()]),
                (
                    ListKind::Yellow,
                    1,
                    vec!["absent_without_leave".to_string()]
                ),
                (
                    ListKind::Yellow,
                    5,
                    vec![
                        "learning_below_minimum".to_string(),
                        "admonished".to_string()
                    ]
                ),
                (ListKind::Cleared, 6, vec!["compliant_again".to_string()]),
            ]
        );
    }
}
