//! Roles scoped to an org subtree, and the one place that decides who may do what where.
//!
//! A grant reaches its org and everything below it, never sideways: the secretary of branch A
//! sees nothing of sibling branch B. Every member also holds an implicit `member` role on their
//! own branch (and party group).

use crate::org::{is_within, OrgKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 乡镇管理员: administers a committee and all below it.
    TownshipAdmin,
    /// 书记
    Secretary,
    /// 支委
    CommitteeMember,
    /// 党小组长
    GroupLeader,
    /// 党员: implicit on one's own branch; never stored as a grant.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::TownshipAdmin => "township_admin",
            Role::Secretary => "secretary",
            Role::CommitteeMember => "committee_member",
            Role::GroupLeader => "group_leader",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "township_admin" => Role::TownshipAdmin,
            "secretary" => Role::Secretary,
            "committee_member" => Role::CommitteeMember,
            "group_leader" => Role::GroupLeader,
            "member" => Role::Member,
            _ => return None,
        })
    }

    /// Whether this role may be granted on an org of `kind`.
    pub fn fits(self, kind: OrgKind) -> bool {
        use OrgKind::*;
        match self {
            Role::TownshipAdmin => kind == Committee,
            Role::Secretary | Role::CommitteeMember => {
                matches!(kind, Committee | GeneralBranch | Branch)
            }
            Role::GroupLeader => kind == Group,
            Role::Member => false,
        }
    }
}

/// The roles that make up a branch's committee (支委会): who is expected at a committee
/// meeting, and who may run the branch's meetings.
pub const COMMITTEE_ROLES: [Role; 2] = [Role::Secretary, Role::CommitteeMember];

/// One role held on one org (and so on its subtree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub org_id: Uuid,
    pub org_path: String,
    pub role: Role,
}

/// Who is calling, with every grant they hold now (read fresh on each request).
#[derive(Debug, Clone)]
pub struct Principal {
    pub member_id: Uuid,
    pub session_id: Uuid,
    pub grants: Vec<Grant>,
}

/// What a caller wants to do to something inside an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the org itself (name, kind, parent).
    ReadOrg,
    /// Create child orgs, rename.
    ManageOrg,
    /// See the roster and member details.
    ReadMembers,
    /// Add, edit, import members; reset their passwords.
    ManageMembers,
    /// See who holds which role.
    ReadRoles,
    /// Grant or revoke this role here.
    GrantRole(Role),
    /// Plan, edit, cancel and close meetings; see the meeting code.
    ManageMeetings,
    /// Change the settings of an org (and so of its subtree): township admins only.
    ManageSettings,
    /// Post, edit, close and pin topics on the board; keep the households; sort, assign and
    /// close cases; see the board's figures: the committee (and admins above).
    ManageBoard,
    /// Hide a reported comment or dismiss the report: the secretary (and admins above).
    Moderate,
    /// Enter, post and void points adjustments (violations, admonitions): the committee.
    ManagePoints,
    /// Read the audit log of the subtree: township admins only.
    ReadAudit,
}

impl Principal {
    fn roles_over<'a>(&'a self, target_path: &'a str) -> impl Iterator<Item = Role> + 'a {
        self.grants
            .iter()
            .filter(move |g| is_within(target_path, &g.org_path))
            .map(|g| g.role)
    }

    /// May this caller do `action` on the org at `target_path`?
    pub fn can(&self, action: Action, target_path: &str) -> bool {
        let mut roles = self.roles_over(target_path);
        match action {
            Action::ReadOrg => roles.next().is_some(),
            Action::ManageSettings | Action::ReadAudit => roles.any(|r| r == Role::TownshipAdmin),
            Action::ManageOrg | Action::ManageMembers | Action::Moderate => {
                roles.any(|r| matches!(r, Role::TownshipAdmin | Role::Secretary))
            }
            Action::ManageMeetings | Action::ManageBoard | Action::ManagePoints => roles.any(|r| {
                matches!(
                    r,
                    Role::TownshipAdmin | Role::Secretary | Role::CommitteeMember
                )
            }),
            Action::ReadMembers | Action::ReadRoles => roles.any(|r| {
                matches!(
                    r,
                    Role::TownshipAdmin
                        | Role::Secretary
                        | Role::CommitteeMember
                        | Role::GroupLeader
                )
            }),
            Action::GrantRole(role) => roles.any(|held| match held {
                Role::TownshipAdmin => role != Role::Member,
                Role::Secretary => matches!(role, Role::CommitteeMember | Role::GroupLeader),
                _ => false,
            }),
        }
    }

    /// Whether anything at all of the org at `target_path` is visible to this caller. A thing
    /// outside every visible subtree answers 404, so its existence does not leak.
    pub fn sees(&self, target_path: &str) -> bool {
        self.can(Action::ReadOrg, target_path)
    }

    /// The subtree roots this caller may read members in (for filtering lists).
    pub fn member_read_roots(&self) -> Vec<String> {
        let mut roots: Vec<String> = self
            .grants
            .iter()
            .filter(|g| {
                matches!(
                    g.role,
                    Role::TownshipAdmin
                        | Role::Secretary
                        | Role::CommitteeMember
                        | Role::GroupLeader
                )
            })
            .map(|g| g.org_path.clone())
            .collect();
        minimal_roots(&mut roots);
        roots
    }

    /// The subtree roots of every grant, implicit ones included (for listing orgs).
    pub fn visible_roots(&self) -> Vec<String> {
        let mut roots: Vec<String> = self.grants.iter().map(|g| g.org_path.clone()).collect();
        minimal_roots(&mut roots);
        roots
    }

    /// Whether the caller sits on the committee of this very org (secretary or committee
    /// member): who is expected at a committee meeting.
    pub fn on_committee_of(&self, org: Uuid) -> bool {
        self.grants
            .iter()
            .any(|g| g.org_id == org && COMMITTEE_ROLES.contains(&g.role))
    }

    pub fn holds(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }

    /// Whether this caller may edit, reset or deactivate the account that holds `theirs`: only
    /// if they could grant every one of those roles themselves. A secretary therefore never
    /// takes over a township admin or a fellow secretary who sits in their branch.
    pub fn outranks_all(&self, theirs: &[Grant]) -> bool {
        theirs
            .iter()
            .all(|g| self.can(Action::GrantRole(g.role), &g.org_path))
    }
}

/// Whether a grant still fits its holder's place: a role on an org reaches that org's subtree,
/// so its holder must belong inside it (a party group's role: to that group). When a move takes
/// the holder out, the role ends.
pub fn grant_fits_place(grant: &Grant, member_org_path: &str, member_group: Option<Uuid>) -> bool {
    is_within(member_org_path, &grant.org_path) || member_group == Some(grant.org_id)
}

/// Drops every path that lies inside another, so each subtree is scanned once.
fn minimal_roots(paths: &mut Vec<String>) {
    paths.sort();
    paths.dedup();
    let mut kept: Vec<String> = Vec::with_capacity(paths.len());
    for p in paths.drain(..) {
        if !kept.iter().any(|k| is_within(&p, k)) {
            kept.push(p);
        }
    }
    *paths = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::{child_path, root_path};

    fn principal(grants: &[(&str, Role)]) -> Principal {
        Principal {
            member_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            grants: grants
                .iter()
                .map(|(p, r)| Grant {
                    org_id: Uuid::now_v7(),
                    org_path: p.to_string(),
                    role: *r,
                })
                .collect(),
        }
    }

    #[test]
    fn a_secretary_manages_their_branch_and_never_a_sibling() {
        let township = root_path(Uuid::now_v7());
        let a = child_path(&township, Uuid::now_v7());
        let b = child_path(&township, Uuid::now_v7());
        let group_a = child_path(&a, Uuid::now_v7());
        let sec = principal(&[(&a, Role::Secretary), (&a, Role::Member)]);
        assert!(sec.can(Action::ManageMembers, &a));
        assert!(sec.can(Action::ManageMembers, &group_a));
        assert!(!sec.sees(&b));
        assert!(!sec.can(Action::ReadMembers, &b));
        assert!(!sec.can(Action::ManageOrg, &township));
        assert!(sec.can(Action::GrantRole(Role::CommitteeMember), &a));
        assert!(!sec.can(Action::GrantRole(Role::Secretary), &a));
        assert!(!sec.can(Action::GrantRole(Role::TownshipAdmin), &a));
        let committee = principal(&[(&a, Role::CommitteeMember), (&a, Role::Member)]);
        assert!(committee.can(Action::ManageMeetings, &a));
        assert!(!committee.can(Action::ManageMeetings, &b));
        assert!(!committee.can(Action::ManageMembers, &a));
    }

    #[test]
    fn a_township_admin_sees_both_branches_and_a_plain_member_reads_no_roster() {
        let township = root_path(Uuid::now_v7());
        let a = child_path(&township, Uuid::now_v7());
        let b = child_path(&township, Uuid::now_v7());
        let admin = principal(&[(&township, Role::TownshipAdmin)]);
        assert!(admin.can(Action::ReadMembers, &a) && admin.can(Action::ManageMembers, &b));
        assert!(admin.can(Action::GrantRole(Role::Secretary), &b));
        let member = principal(&[(&a, Role::Member)]);
        assert!(member.sees(&a));
        assert!(!member.can(Action::ReadMembers, &a));
        assert!(!member.can(Action::ManageOrg, &a));
    }

    #[test]
    fn roots_inside_others_collapse() {
        let township = root_path(Uuid::now_v7());
        let a = child_path(&township, Uuid::now_v7());
        let p = principal(&[(&a, Role::Secretary), (&township, Role::TownshipAdmin)]);
        assert_eq!(p.member_read_roots(), vec![township]);
    }

    #[test]
    fn only_who_could_grant_every_role_of_an_account_may_manage_it() {
        let township = root_path(Uuid::now_v7());
        let a = child_path(&township, Uuid::now_v7());
        let sec = principal(&[(&a, Role::Secretary)]);
        let admin = principal(&[(&township, Role::TownshipAdmin)]);
        let their = |p: &str, r: Role| Grant {
            org_id: Uuid::now_v7(),
            org_path: p.to_string(),
            role: r,
        };
        assert!(sec.outranks_all(&[]));
        assert!(sec.outranks_all(&[their(&a, Role::CommitteeMember)]));
        assert!(!sec.outranks_all(&[their(&a, Role::Secretary)]));
        assert!(!sec.outranks_all(&[their(&township, Role::TownshipAdmin)]));
        assert!(admin.outranks_all(&[their(&a, Role::Secretary)]));
        assert!(admin.outranks_all(&[their(&township, Role::TownshipAdmin)]));
    }

    #[test]
    fn a_grant_ends_when_its_holder_leaves_the_subtree() {
        let township = root_path(Uuid::now_v7());
        let (a_id, b_id, g_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (a, b) = (child_path(&township, a_id), child_path(&township, b_id));
        let g = child_path(&a, g_id);
        let on = |id, p: &str, role| Grant {
            org_id: id,
            org_path: p.to_string(),
            role,
        };
        let secretary_of_a = on(a_id, &a, Role::Secretary);
        assert!(grant_fits_place(&secretary_of_a, &a, None));
        assert!(!grant_fits_place(&secretary_of_a, &b, None));
        let leader = on(g_id, &g, Role::GroupLeader);
        assert!(grant_fits_place(&leader, &a, Some(g_id)));
        assert!(!grant_fits_place(&leader, &a, None));
        let admin = on(Uuid::now_v7(), &township, Role::TownshipAdmin);
        assert!(grant_fits_place(&admin, &b, None));
    }

    #[test]
    fn roles_fit_org_kinds() {
        assert!(Role::TownshipAdmin.fits(OrgKind::Committee));
        assert!(!Role::TownshipAdmin.fits(OrgKind::Branch));
        assert!(Role::GroupLeader.fits(OrgKind::Group));
        assert!(!Role::Member.fits(OrgKind::Branch));
    }
}
