//! The org tree: county/township committee (党委) → general branch (党总支) / branch (党支部) →
//! party group (党小组). Any depth of committees; a materialised path makes "is X inside Y" a
//! prefix test that both PostgreSQL and SQLite index.

use crate::error::{Error, FieldError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// 党委: county, township or any committee above branches.
    Committee,
    /// 党总支
    GeneralBranch,
    /// 党支部
    Branch,
    /// 党小组
    Group,
}

impl OrgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Committee => "committee",
            OrgKind::GeneralBranch => "general_branch",
            OrgKind::Branch => "branch",
            OrgKind::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "committee" => OrgKind::Committee,
            "general_branch" => OrgKind::GeneralBranch,
            "branch" => OrgKind::Branch,
            "group" => OrgKind::Group,
            _ => return None,
        })
    }

    /// Whether an org of kind `self` may sit directly under one of kind `parent`.
    pub fn may_sit_under(self, parent: OrgKind) -> bool {
        use OrgKind::*;
        match self {
            Committee => parent == Committee,
            GeneralBranch => parent == Committee,
            Branch => matches!(parent, Committee | GeneralBranch),
            Group => matches!(parent, GeneralBranch | Branch),
        }
    }

    /// Whether members may belong to an org of this kind directly (a group is joined as an
    /// addition to a branch, never instead of one).
    pub fn holds_members(self) -> bool {
        !matches!(self, OrgKind::Group)
    }
}

/// The materialised path of an org: `/<root-id>/.../<id>/`.
pub fn child_path(parent_path: &str, id: Uuid) -> String {
    format!("{parent_path}{id}/")
}

pub fn root_path(id: Uuid) -> String {
    format!("/{id}/")
}

/// The ids on an org's path, from the root down to the org itself.
pub fn path_ids(path: &str) -> Vec<Uuid> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect()
}

/// True when the org at `path` is the org at `ancestor` or lies below it.
pub fn is_within(path: &str, ancestor: &str) -> bool {
    path.starts_with(ancestor)
}

/// An org's name: one line of visible characters, NFC, trimmed, 1 to 100 characters.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    crate::text::clean("name", raw, crate::text::Kind::Line, 100)
}

/// Checks an org placement: kind under parent kind.
pub fn check_placement(kind: OrgKind, parent: OrgKind) -> Result<(), Error> {
    if kind.may_sit_under(parent) {
        Ok(())
    } else {
        Err(Error::invalid("kind", "kind_not_allowed_under_parent"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_sit_under_committees_and_groups_under_branches() {
        assert!(OrgKind::Branch.may_sit_under(OrgKind::Committee));
        assert!(OrgKind::Group.may_sit_under(OrgKind::Branch));
        assert!(!OrgKind::Committee.may_sit_under(OrgKind::Branch));
        assert!(!OrgKind::Group.may_sit_under(OrgKind::Committee));
        assert!(!OrgKind::Branch.may_sit_under(OrgKind::Group));
    }

    #[test]
    fn subtree_is_a_prefix_test_that_never_reaches_sideways() {
        let township = root_path(Uuid::now_v7());
        let a = child_path(&township, Uuid::now_v7());
        let b = child_path(&township, Uuid::now_v7());
        assert!(is_within(&a, &township));
        assert!(is_within(&a, &a));
        assert!(!is_within(&a, &b));
        assert!(!is_within(&township, &a));
    }
}

/// An org as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Org {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub kind: OrgKind,
    pub name: String,
    /// Materialised path, for subtree checks; not part of the API.
    #[serde(skip)]
    pub path: String,
    pub depth: i32,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    #[serde(serialize_with = "crate::rfc3339::ser")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}
