//! The same repository suite on each engine: SQLite always, PostgreSQL too when
//! `TEST_DATABASE_URL` is set. Migrations run on both from the embedded files.

use chrono::{TimeDelta, Utc};
use uuid::Uuid;
use yunlian_domain::auth::Role;
use yunlian_domain::member::{Member, MemberFields, MemberStatus, Phone, Residence};
use yunlian_domain::org::{self, Org, OrgKind};
use yunlian_domain::Error;
use yunlian_infra::db::{
    self, members::MemberFilter, roles::RoleGrant, sessions::Spent, ScopedFutureExt,
};
use yunlian_infra::Db;

async fn engines() -> Vec<Db> {
    let dir = crate::helpers::temp_dir();
    let mut dbs = vec![
        Db::connect(&format!("sqlite://{}", dir.join("repo.db").display()), 4)
            .await
            .expect("sqlite"),
    ];
    if crate::helpers::engine() == "postgres" {
        let url = crate::helpers::fresh_database(&dir).await;
        dbs.push(Db::connect(&url, 4).await.expect("postgres"));
    }
    dbs
}

fn org(parent: Option<&Org>, kind: OrgKind, name: &str) -> Org {
    let id = Uuid::now_v7();
    let now = yunlian_domain::truncate_micros(Utc::now());
    Org {
        id,
        parent_id: parent.map(|p| p.id),
        kind,
        name: name.into(),
        path: parent.map_or_else(|| org::root_path(id), |p| org::child_path(&p.path, id)),
        depth: parent.map_or(0, |p| p.depth + 1),
        created_at: now,
        updated_at: now,
    }
}

fn member(org: &Org, name: &str, phone: &str) -> Member {
    let now = yunlian_domain::truncate_micros(Utc::now());
    Member {
        id: Uuid::now_v7(),
        org_id: org.id,
        group_id: None,
        fields: MemberFields {
            name: name.into(),
            phone: Phone::parse(phone).expect("phone"),
            status: MemberStatus::Full,
            join_date: chrono::NaiveDate::from_ymd_opt(2001, 7, 1),
            residence: Residence::Migrant,
            migrant_city: Some("苏州".into()),
            elderly_or_infirm: true,
            central_household: false,
        },
        can_login: false,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn the_repository_suite_passes_on_every_engine() {
    for db in engines().await {
        let engine = db.engine();
        let root = org(None, OrgKind::Committee, "县委");
        let a = org(Some(&root), OrgKind::Branch, "甲支部");
        let b = org(Some(&root), OrgKind::Branch, "乙支部");
        let ms: Vec<Member> = (0..7)
            .map(|i| member(&a, &format!("甲{i}"), &format!("1390000000{i}")))
            .collect();
        let mb = member(&b, "乙0", "13800000009");
        let (o, m2, mb2) = (
            vec![root.clone(), a.clone(), b.clone()],
            ms.clone(),
            mb.clone(),
        );
        db.write(move |mut c| {
            async move {
                for x in &o {
                    db::orgs::insert(&mut c, x).await?;
                }
                db::members::insert_many(&mut c, &m2).await?;
                db::members::insert(&mut c, &mb2, None).await
            }
            .scope_boxed()
        })
        .await
        .expect("writes");

        // Values read back equal what was written, on both engines.
        let id = ms[3].id;
        let (back, path) = db
            .read(move |mut c| async move { db::members::get(&mut c, id).await }.scope_boxed())
            .await
            .expect("get")
            .expect("found");
        assert_eq!(back, ms[3], "{engine}");
        assert_eq!(path, a.path, "{engine}");
        let aid = a.id;
        assert_eq!(
            db.read(move |mut c| async move { db::orgs::get(&mut c, aid).await }.scope_boxed())
                .await
                .expect("org"),
            Some(a.clone()),
            "{engine}"
        );

        // Subtree lists, cursors, filters.
        let list = |within: String, after: Option<Uuid>, limit: i64| {
            let db = db.clone();
            async move {
                let f = MemberFilter {
                    within,
                    after,
                    limit,
                    ..Default::default()
                };
                db.read(move |mut c| {
                    async move { db::members::list(&mut c, &f).await }.scope_boxed()
                })
                .await
                .expect("list")
            }
        };
        assert_eq!(list(a.path.clone(), None, 100).await.len(), 7, "{engine}");
        assert_eq!(
            list(root.path.clone(), None, 100).await.len(),
            8,
            "{engine}"
        );
        let page1 = list(a.path.clone(), None, 4).await;
        let page2 = list(a.path.clone(), page1.last().map(|m| m.id), 4).await;
        let ids: Vec<Uuid> = page1.iter().chain(page2.iter()).map(|m| m.id).collect();
        assert_eq!(
            ids,
            ms.iter().map(|m| m.id).collect::<Vec<_>>(),
            "{engine}: id order across pages"
        );

        // A taken phone is a conflict, and the failed transaction leaves nothing behind.
        let dup = member(&b, "重复", "13900000001");
        let fresh = member(&b, "新人", "13700000000");
        let (d, f) = (dup.clone(), fresh.clone());
        let err = db
            .write(move |mut c| {
                async move {
                    db::members::insert(&mut c, &f, None).await?;
                    db::members::insert(&mut c, &d, None).await
                }
                .scope_boxed()
            })
            .await
            .expect_err("duplicate phone");
        assert!(
            matches!(err, Error::Conflict("phone_taken")),
            "{engine}: {err:?}"
        );
        assert_eq!(
            list(b.path.clone(), None, 100).await.len(),
            1,
            "{engine}: rolled back"
        );
        let taken = db
            .read(move |mut c| {
                async move {
                    db::members::taken_phones(&mut c, &["13900000001".into(), "13100000000".into()])
                        .await
                }
                .scope_boxed()
            })
            .await
            .expect("taken");
        assert_eq!(taken, vec!["13900000001".to_string()], "{engine}");

        // Grants with their org paths.
        let g = RoleGrant {
            id: Uuid::now_v7(),
            member_id: ms[0].id,
            org_id: a.id,
            role: Role::Secretary,
            granted_by: None,
            created_at: Utc::now(),
        };
        let g2 = g.clone();
        db.write(move |mut c| async move { db::roles::insert(&mut c, &g2).await }.scope_boxed())
            .await
            .expect("grant");
        let g3 = RoleGrant {
            id: Uuid::now_v7(),
            ..g.clone()
        };
        let err = db
            .write(move |mut c| async move { db::roles::insert(&mut c, &g3).await }.scope_boxed())
            .await
            .expect_err("dup grant");
        assert!(
            matches!(err, Error::Conflict("role_already_granted")),
            "{engine}"
        );
        let m0 = ms[0].id;
        let grants = db
            .read(move |mut c| async move { db::roles::grants_of(&mut c, m0).await }.scope_boxed())
            .await
            .expect("grants");
        assert_eq!(grants.len(), 1);
        assert_eq!(
            (grants[0].role, grants[0].org_path.as_str()),
            (Role::Secretary, a.path.as_str()),
            "{engine}"
        );

        // Refresh-token families: rotate, then a replay revokes the family.
        let sid = Uuid::now_v7();
        let now = yunlian_domain::truncate_micros(Utc::now());
        db.write(move |mut c| {
            async move {
                db::sessions::create(&mut c, sid, m0, "h1", now, now + TimeDelta::days(1)).await
            }
            .scope_boxed()
        })
        .await
        .expect("session");
        let rotate = |old: &'static str, new: &'static str| {
            let db = db.clone();
            async move {
                db.write(move |mut c| {
                    async move { db::sessions::rotate(&mut c, old, new, now).await }.scope_boxed()
                })
                .await
                .expect("rotate")
            }
        };
        assert_eq!(
            rotate("h1", "h2").await,
            Spent::Rotated {
                session_id: sid,
                member_id: m0
            },
            "{engine}"
        );
        assert_eq!(
            rotate("h2", "h3").await,
            Spent::Rotated {
                session_id: sid,
                member_id: m0
            },
            "{engine}"
        );
        assert_eq!(rotate("h1", "h4").await, Spent::Reused, "{engine}");
        assert_eq!(
            rotate("h3", "h5").await,
            Spent::Invalid,
            "{engine}: family revoked"
        );
        assert_eq!(rotate("nope", "h6").await, Spent::Invalid, "{engine}");
        let live = db
            .read(move |mut c| {
                async move { db::sessions::is_live(&mut c, sid, m0, now).await }.scope_boxed()
            })
            .await
            .expect("live");
        assert!(!live, "{engine}");
    }
}
