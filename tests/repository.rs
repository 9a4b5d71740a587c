//! The same repository suite on each engine: SQLite always, PostgreSQL too when
//! `TEST_DATABASE_URL` is set. Migrations run on both from the embedded files.

use chrono::{TimeDelta, Utc};
use uuid::Uuid;
use yunlian_domain::auth::Role;
use yunlian_domain::member::{Member, MemberFields, MemberStatus, Phone, Residence};
use yunlian_domain::org::{self, Org, OrgKind};
use yunlian_domain::sync::{plan, Cursor, Entity, Plan, Scope};
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
                async move { db::members::of_live_session(&mut c, m0, sid, now).await }
                    .scope_boxed()
            })
            .await
            .expect("live");
        assert!(live.is_none(), "{engine}");
    }
}

/// Writers hold their transactions open (pg_sleep) while a reader pulls in a loop: every
/// committed change is seen, because versions of a scope commit in order.
#[tokio::test]
async fn concurrent_writers_never_hide_a_change_behind_a_cursor() {
    if crate::helpers::engine() != "postgres" {
        eprintln!("skipped: the commit-order race needs PostgreSQL (TEST_DATABASE_URL)");
        return;
    }
    let url = crate::helpers::fresh_database(&crate::helpers::temp_dir()).await;
    let db = Db::connect(&url, 16).await.expect("postgres");
    let scope = Scope::Org(Uuid::now_v7());
    let name = scope.to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let reader = {
        let (db, name, done) = (db.clone(), name.clone(), done.clone());
        tokio::spawn(async move {
            let mut cursor = 0i64;
            let mut seen = std::collections::HashSet::new();
            let mut rounds = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let n = name.clone();
                let (state, changes) = db
                    .snapshot(move |mut c| {
                        async move {
                            let st = db::sync::states(&mut c, std::slice::from_ref(&n)).await?;
                            let ch = db::sync::changes(&mut c, &n, cursor, false, 1000).await?;
                            Ok((st.get(&n).copied(), ch))
                        }
                        .scope_boxed()
                    })
                    .await
                    .expect("pull");
                // As the pull endpoint does: a drained scope's cursor jumps to its version.
                let drained = changes.len() < 1000;
                for ch in &changes {
                    seen.insert(ch.id);
                    cursor = ch.version;
                }
                if drained {
                    cursor = state.map_or(cursor, |s| s.version);
                }
                rounds += 1;
                if finished {
                    return (seen, rounds);
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };

    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (db, scope) = (db.clone(), scope.clone());
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..25u64 {
                let id = Uuid::now_v7();
                let scope = scope.clone();
                // Spread the sleeps so later versions often commit before earlier ones would.
                let ms = (w * 7 + i * 13) % 23;
                db.write(move |mut c| {
                    async move {
                        db::sync::record(&mut c, &[scope], Entity::Org, id, false, Utc::now())
                            .await?;
                        if let Some(pg) = c.pg() {
                            diesel_async::RunQueryDsl::execute(
                                diesel::sql_query(format!(
                                    "SELECT pg_sleep({})",
                                    ms as f64 / 1000.0
                                )),
                                &mut &*pg,
                            )
                            .await
                            .map_err(db::db_error)?;
                        }
                        Ok(())
                    }
                    .scope_boxed()
                })
                .await
                .expect("write");
                ids.push(id);
            }
            ids
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, rounds) = reader.await.expect("reader");
    assert!(
        rounds > 10,
        "the reader pulled while writers wrote ({rounds} rounds)"
    );
    let missing: Vec<_> = written.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} committed changes never reached the reader",
        missing.len(),
        written.len()
    );
}

#[tokio::test]
async fn purged_tombstones_raise_the_floor_so_old_cursors_reset() {
    for db in engines().await {
        let engine = db.engine();
        let scope = Scope::Committee(Uuid::now_v7());
        let (gone, kept) = (Uuid::now_v7(), Uuid::now_v7());
        let long_ago = Utc::now() - TimeDelta::days(200);
        // Three writes, each its own transaction (one transaction's changes of one row would
        // be one change).
        for (id, deleted) in [(gone, false), (kept, false), (gone, true)] {
            let s = scope.clone();
            db.write(move |mut c| {
                async move {
                    let scopes = std::slice::from_ref(&s);
                    db::sync::record(&mut c, scopes, Entity::Member, id, deleted, long_ago).await
                }
                .scope_boxed()
            })
            .await
            .expect("writes");
        }
        let purged = db
            .write(move |mut c| {
                async move {
                    db::sync::purge_tombstones(&mut c, Utc::now() - TimeDelta::days(180)).await
                }
                .scope_boxed()
            })
            .await
            .expect("purge");
        assert_eq!(purged, 1, "{engine}");
        let name = scope.to_string();
        let (state, changes) = db
            .read(move |mut c| {
                async move {
                    let st = db::sync::states(&mut c, std::slice::from_ref(&name)).await?;
                    let ch = db::sync::changes(&mut c, &name, 0, false, 100).await?;
                    Ok((st[&name], ch))
                }
                .scope_boxed()
            })
            .await
            .expect("read");
        assert_eq!((state.version, state.floor), (3, 3), "{engine}");
        assert_eq!(
            changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![kept],
            "{engine}"
        );
        // A phone that last synced at version 1 may have missed the deletion: it rebuilds.
        let old = Cursor {
            v: 1,
            epoch: state.epoch,
        };
        assert_eq!(plan(Some(&old), &state), Plan::Reset, "{engine}");
        assert_eq!(
            plan(
                Some(&Cursor {
                    v: 3,
                    epoch: state.epoch
                }),
                &state
            ),
            Plan::Unchanged,
            "{engine}"
        );
    }
}

#[tokio::test]
async fn pruned_outcomes_leave_the_ledger_position() {
    for db in engines().await {
        let engine = db.engine();
        let root = org(None, OrgKind::Committee, "县委");
        let m = member(&root, "甲", "13900000001");
        let (client, mid) = (Uuid::now_v7(), m.id);
        let long_ago = Utc::now() - TimeDelta::days(200);
        db.write(move |mut c| {
            async move {
                db::orgs::insert(&mut c, &root).await?;
                db::members::insert(&mut c, &m, None).await?;
                let ledger = db::sync::lock_ledger(&mut c, client, mid, long_ago)
                    .await?
                    .expect("the member's own ledger");
                assert_eq!(ledger.last_mutation_id, 0);
                let o = db::sync::Outcome {
                    mutation_id: 1,
                    name: "member.update_whereabouts.v1".into(),
                    status: "applied".into(),
                    code: None,
                    result: Some(serde_json::json!({"ok": true})),
                    event_time: long_ago,
                    time_source: "server".into(),
                    digest: None,
                };
                db::sync::settle(&mut c, client, &[o], long_ago).await
            }
            .scope_boxed()
        })
        .await
        .expect("ledger");
        let pruned = db
            .write(move |mut c| async move { db::sync::prune_outcomes(&mut c, Utc::now() - TimeDelta::days(180)).await }.scope_boxed())
            .await
            .expect("prune");
        assert_eq!(pruned, 1, "{engine}");
        let (outcome, ledger) = db
            .read(move |mut c| {
                async move {
                    Ok((
                        db::sync::outcome(&mut c, client, 1).await?,
                        db::sync::ledger(&mut c, client).await?,
                    ))
                }
                .scope_boxed()
            })
            .await
            .expect("read");
        assert_eq!(outcome, None, "{engine}");
        assert_eq!(
            ledger.map(|l| (l.member_id, l.last_mutation_id)),
            Some((mid, 1)),
            "{engine}"
        );
        // Another member naming this phone's client id gets no ledger, and leaves it as it was.
        let (other, now) = (Uuid::now_v7(), Utc::now());
        let theirs = db
            .write(move |mut c| {
                async move { db::sync::lock_ledger(&mut c, client, other, now).await }.scope_boxed()
            })
            .await
            .expect("other");
        assert_eq!(theirs, None, "{engine}");
        let touched: i64 = db
            .read(move |mut c| {
                async move {
                    use diesel::prelude::*;
                    use diesel_async::RunQueryDsl;
                    use yunlian_infra::db::schema::sync_clients;
                    let q = sync_clients::table
                        .filter(sync_clients::client_id.eq(client.to_string()))
                        .filter(sync_clients::updated_at.gt(long_ago.naive_utc()));
                    yunlian_infra::on!(&mut c, |c| q.count().get_result(c).await)
                        .map_err(|e| Error::Internal(e.to_string()))
                }
                .scope_boxed()
            })
            .await
            .expect("updated_at");
        assert_eq!(
            touched, 0,
            "{engine}: another member's push touched the ledger"
        );
    }
}

/// A bus that is down until told otherwise, and remembers what it was given.
#[derive(Clone, Default)]
struct FlakyBus {
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Uuid>>>,
}

impl yunlian_domain::ports::EventBus for FlakyBus {
    async fn publish(&self, events: &[yunlian_domain::ports::OutboxEvent]) -> Result<(), Error> {
        if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable("bus down".into()));
        }
        // A slow bus, so that relays running at once overlap.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.seen
            .lock()
            .expect("seen")
            .extend(events.iter().map(|e| e.id));
        Ok(())
    }
}

/// Appends an event numbered `n` (its `reason`) in a transaction of its own, which commits when
/// `commit` and rolls back otherwise.
async fn append_event(db: &Db, n: usize, commit: bool) -> Result<Uuid, Error> {
    let now = Utc::now();
    let event = yunlian_domain::events::DomainEvent::RoleEnded(yunlian_domain::events::RoleEnded {
        grant_id: Uuid::now_v7(),
        member_id: Uuid::from_u128(n as u128 % 7),
        org_id: Uuid::now_v7(),
        role: Role::CommitteeMember,
        reason: n.to_string(),
    });
    db.write(move |mut c| {
        async move {
            let id = db::outbox::append(&mut c, &event, now).await?;
            if commit {
                Ok(id)
            } else {
                Err(Error::Conflict("rolled back"))
            }
        }
        .scope_boxed()
    })
    .await
}

#[tokio::test]
async fn outbox_events_wait_while_the_bus_is_down_and_go_out_once_when_it_is_back() {
    for db in engines().await {
        let now = Utc::now();
        let mut written = Vec::new();
        for i in 0..1_200 {
            let id = append_event(&db, i, true).await.expect("append");
            written.push(id);
        }
        // An event whose transaction rolls back is never published.
        let rolled_back = append_event(&db, 9_999, false).await;
        assert!(rolled_back.is_err());

        let bus = FlakyBus::default();
        let down = yunlian_infra::bus::relay(&db, &bus, now).await;
        assert!(matches!(down, Err(Error::Unavailable(_))), "{down:?}");
        let left = db
            .read(|mut c| {
                async move { db::outbox::unpublished(&mut c, 10_000).await }.scope_boxed()
            })
            .await
            .expect("unpublished");
        assert_eq!(left.len(), 1_200, "nothing marked while the bus is down");
        assert_eq!(left[0].payload["reason"], "0", "oldest first");

        bus.up.store(true, std::sync::atomic::Ordering::SeqCst);
        // Three relays at once (three replicas): on PostgreSQL they skip each other's locked
        // rows; on SQLite they take turns. Each runs until it finds nothing left.
        let mut relays = Vec::new();
        for _ in 0..3 {
            let (db, bus) = (db.clone(), bus.clone());
            relays.push(tokio::spawn(async move {
                let mut total = 0;
                loop {
                    match yunlian_infra::bus::relay(&db, &bus, now)
                        .await
                        .expect("relay")
                    {
                        0 => break total,
                        n => total += n,
                    }
                }
            }));
        }
        let mut total = 0;
        for r in relays {
            total += r.await.expect("relay task");
        }
        assert_eq!(total, 1_200);
        let mut seen = bus.seen.lock().expect("seen").clone();
        assert_eq!(seen.len(), 1_200, "each event published once");
        seen.sort();
        written.sort();
        assert_eq!(seen, written, "exactly the committed events");
        assert_eq!(
            yunlian_infra::bus::relay(&db, &bus, now)
                .await
                .expect("relay"),
            0
        );

        // The in-process bus (no Redis): a subscriber gets the next committed events in order.
        let memory = yunlian_infra::bus::Bus::memory(16);
        let mut rx = memory.subscribe().expect("in-process");
        let mut next = Vec::new();
        for i in 0..3 {
            let id = append_event(&db, 100 + i, true).await.expect("append");
            next.push(id);
        }
        assert_eq!(
            yunlian_infra::bus::relay(&db, &memory, now)
                .await
                .expect("relay"),
            3
        );
        for (i, id) in next.iter().enumerate() {
            let e = rx.recv().await.expect("event");
            assert_eq!(
                (e.id, e.payload["reason"].as_str()),
                (*id, Some((100 + i).to_string().as_str()))
            );
        }
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_or_is_given_back() {
    for db in engines().await {
        let t0 = Utc::now();
        let take = |holder: &'static str, at: chrono::DateTime<Utc>| {
            let db = db.clone();
            async move {
                db.write(move |mut c| {
                    async move {
                        db::leases::try_take(
                            &mut c,
                            "close_out",
                            holder,
                            at,
                            TimeDelta::minutes(10),
                        )
                        .await
                    }
                    .scope_boxed()
                })
                .await
                .expect("lease")
            }
        };
        // Two replicas at once: exactly one holds it.
        let (a, b) = tokio::join!(take("replica-a", t0), take("replica-b", t0));
        assert!(a ^ b, "{} one holder: a={a} b={b}", db.engine());
        let (holder, other) = if a {
            ("replica-a", "replica-b")
        } else {
            ("replica-b", "replica-a")
        };
        assert!(
            take(holder, t0 + TimeDelta::minutes(1)).await,
            "the holder renews"
        );
        assert!(
            !take(other, t0 + TimeDelta::minutes(5)).await,
            "not before it expires"
        );
        assert!(
            take(other, t0 + TimeDelta::minutes(12)).await,
            "taken over once expired"
        );
        db.write(move |mut c| {
            async move { db::leases::release(&mut c, "close_out", other).await }.scope_boxed()
        })
        .await
        .expect("release");
        assert!(
            take(holder, t0 + TimeDelta::minutes(13)).await,
            "free once given back"
        );
    }
}

#[tokio::test]
async fn a_consumer_handles_each_event_once_however_often_it_is_delivered() {
    for db in engines().await {
        let event = append_event(&db, 1, true).await.expect("append");
        let deliver = || {
            let db = db.clone();
            async move {
                db.write(move |mut c| {
                    async move {
                        db::outbox::consume_once(&mut c, "points", event, Utc::now()).await
                    }
                    .scope_boxed()
                })
                .await
                .expect("consume")
            }
        };
        // Delivered three times, two of them at once: handled once.
        let (a, b) = tokio::join!(deliver(), deliver());
        let c = deliver().await;
        assert_eq!(
            [a, b, c].iter().filter(|x| **x).count(),
            1,
            "{}",
            db.engine()
        );
        // Another consumer handles it on its own.
        let other = db
            .write(move |mut c| {
                async move { db::outbox::consume_once(&mut c, "warnings", event, Utc::now()).await }
                    .scope_boxed()
            })
            .await
            .expect("consume");
        assert!(other);
    }
}

/// The two migration folders say the same thing: the same migrations, the same statements, up
/// to the dialect differences listed here.
#[test]
fn the_postgres_and_sqlite_migrations_agree_up_to_dialect() {
    /// (PostgreSQL's spelling, SQLite's): `text_pattern_ops` lets a LIKE 'prefix%' use the
    /// index under any collation; SQLite's LIKE needs no operator class.
    const DIALECT: &[(&str, &str)] = &[("(path text_pattern_ops)", "(path)")];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/migrations");
    let names = |d: &str| {
        let mut v: Vec<String> = std::fs::read_dir(root.join(d))
            .expect("migrations")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("postgres"), names("sqlite"));
    for name in names("postgres") {
        for file in ["up.sql", "down.sql"] {
            let read = |d: &str| {
                std::fs::read_to_string(root.join(d).join(&name).join(file))
                    .unwrap_or_else(|e| panic!("{d}/{name}/{file}: {e}"))
            };
            let mut pg = read("postgres");
            for (p, s) in DIALECT {
                pg = pg.replace(p, s);
            }
            assert_eq!(pg, read("sqlite"), "{name}/{file}");
        }
    }
}

/// Every migration can be undone and done again on SQLite: down to nothing and up to the same
/// schema.
#[test]
fn the_sqlite_migrations_go_up_down_and_up_again() {
    use diesel::{Connection, SqliteConnection};
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    let path = crate::helpers::temp_dir().join("updown.db");
    let mut c = SqliteConnection::establish(&path.display().to_string()).expect("sqlite");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/migrations/sqlite");
    let migrations = FileBasedMigrations::from_path(&dir).expect("migrations");
    let schema = |c: &mut SqliteConnection| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Sql {
            #[diesel(sql_type = diesel::sql_types::Text)]
            sql: String,
        }
        let mut rows: Vec<String> = diesel::sql_query(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE '__diesel%' ORDER BY name",
        )
        .load::<Sql>(c)
        .expect("schema")
        .into_iter()
        .map(|r| r.sql)
        .collect();
        rows.sort();
        rows
    };
    c.run_pending_migrations(migrations.clone()).expect("up");
    let first = schema(&mut c);
    assert!(first.len() > 10);
    c.revert_all_migrations(migrations.clone()).expect("down");
    assert!(schema(&mut c).is_empty(), "{:?}", schema(&mut c));
    c.run_pending_migrations(migrations).expect("up again");
    assert_eq!(schema(&mut c), first);
}

/// A ranking's mark changes with every entry appended inside the org, even one whose id sorts
/// before every other (a replica whose clock runs behind), and not with one appended outside;
/// the members' totals are the sums of their posted entries (a pending one waits).
#[tokio::test]
async fn a_rankings_mark_moves_with_every_append_whatever_its_id() {
    use yunlian_domain::points::{Entry, RuleKind};
    for db in engines().await {
        let root = org(None, OrgKind::Committee, "县委");
        let (a, b) = (
            org(Some(&root), OrgKind::Branch, "甲支部"),
            org(Some(&root), OrgKind::Branch, "乙支部"),
        );
        let (ma, mb, mc) = (
            member(&a, "甲0", "13900000001"),
            member(&b, "乙0", "13900000002"),
            member(&b, "乙1", "13900000003"),
        );
        let entry = |id: Uuid, m: &Member, key: &str| Entry {
            id,
            member_id: m.id,
            org_id: m.org_id,
            delta: 1,
            rule: RuleKind::Volunteer,
            rule_version: "default".into(),
            source: key.into(),
            key: key.into(),
            period: "2026-12".into(),
            occurred_at: Utc::now(),
            pending: false,
            resolves: None,
            resolution: None,
            reason: None,
            created_by: None,
            created_at: Utc::now(),
        };
        let steps = vec![
            entry(Uuid::now_v7(), &ma, "a1"),
            entry(Uuid::from_u128(1), &ma, "a0-behind"),
            entry(Uuid::now_v7(), &mb, "b1"),
            entry(Uuid::now_v7(), &ma, "a1"), // the same key again: not appended
            Entry {
                pending: true,
                delta: -10,
                ..entry(Uuid::now_v7(), &ma, "a-pending")
            },
        ];
        let (o, ms, path, top) = (
            vec![root.clone(), a.clone(), b.clone()],
            vec![ma.clone(), mb.clone(), mc.clone()],
            a.path.clone(),
            root.path.clone(),
        );
        let (marks, (totals, first)) = db
            .write(move |mut c| {
                async move {
                    for x in &o {
                        db::orgs::insert(&mut c, x).await?;
                    }
                    db::members::insert_many(&mut c, &ms).await?;
                    let months = vec!["2026-12".to_string()];
                    let mut marks = vec![db::points::mark(&mut c, &path, &months).await?];
                    for e in &steps {
                        db::points::append(&mut c, e).await?;
                        marks.push(db::points::mark(&mut c, &path, &months).await?);
                    }
                    let totals = db::points::totals(&mut c, &top, &months).await?;
                    let first = db::points::top(&mut c, &top, &months, 2).await?;
                    Ok((marks, (totals, first)))
                }
                .scope_boxed()
            })
            .await
            .expect("writes");
        assert_eq!(marks, vec!["0", "1", "2", "2", "2", "3"], "{}", db.engine());
        let mut sums: Vec<(Uuid, i64)> = totals.into_iter().map(|(m, _, _, t)| (m, t)).collect();
        sums.sort();
        let mut want = vec![(ma.id, 2), (mb.id, 1), (mc.id, 0)];
        want.sort();
        assert_eq!(sums, want, "{}", db.engine());
        // Ranked and cut in the database: the most first, the member without entries at 0.
        let first: Vec<(Uuid, i64)> = first.into_iter().map(|(m, _, _, t)| (m, t)).collect();
        assert_eq!(first, vec![(ma.id, 2), (mb.id, 1)], "{}", db.engine());
    }
}

/// `mxFrame` (frames in the log) and `nBackfill` (of them copied into the database file) from
/// SQLite's WAL index, the `-shm` file every connection maps (https://www.sqlite.org/walformat.html:
/// `mxFrame` at byte 16 of the header, `nBackfill` at byte 96; native byte order).
fn wal_index(db_file: &std::path::Path) -> (u32, u32) {
    let shm = std::fs::read(db_file.with_extension("db-shm")).expect("shm");
    let word = |at: usize| u32::from_ne_bytes(shm[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(96))
}

/// A SQLite database of its own in a fresh directory, and its file.
async fn sqlite_file(name: &str) -> (Db, std::path::PathBuf) {
    let file = crate::helpers::temp_dir().join(name);
    let db = Db::connect(&format!("sqlite://{}", file.display()), 4)
        .await
        .expect("sqlite");
    (db, file)
}

#[tokio::test]
async fn sqlites_log_is_copied_back_by_its_own_thread_not_by_a_writers_commit() {
    let (db, file) = sqlite_file("wal.db").await;
    // No pooled connection checkpoints in its commit.
    #[derive(diesel::QueryableByName)]
    struct Auto {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        wal_autocheckpoint: i64,
    }
    let auto = db
        .read(move |mut c| {
            async move {
                let db::Raw::Sqlite(c) = &mut c.raw else {
                    unreachable!("a SQLite pool")
                };
                diesel_async::RunQueryDsl::get_result::<Auto>(
                    diesel::sql_query("PRAGMA wal_autocheckpoint"),
                    &mut **c,
                )
                .await
                .map_err(db::db_error)
            }
            .scope_boxed()
        })
        .await
        .expect("pragma");
    assert_eq!(
        auto.wal_autocheckpoint, 0,
        "a pooled connection must not checkpoint in its commit"
    );

    // A few commits, far from the 1,000 frames that would have made a writer checkpoint.
    for i in 0..5 {
        let o = org(None, OrgKind::Committee, &format!("镇{i}"));
        db.write(move |mut c| async move { db::orgs::insert(&mut c, &o).await }.scope_boxed())
            .await
            .expect("insert");
    }
    let (frames, _) = wal_index(&file);
    assert!(frames > 0, "the commits are in the log");
    // The thread copies them into the file within a few of its periods.
    let deadline = std::time::Instant::now() + db::checkpoint::PERIOD * 30;
    loop {
        let (frames, copied) = wal_index(&file);
        if frames > 0 && copied == frames {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "log not copied back: {copied} of {frames} frames"
        );
        tokio::time::sleep(db::checkpoint::PERIOD / 2).await;
    }
}

#[tokio::test]
async fn sqlites_log_starts_over_under_writes_that_never_pause() {
    let (db, file) = sqlite_file("busy.db").await;
    // Pulls that never stop: a reader on the log most of the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = Uuid::now_v7();
                db.read(move |mut c| async move { db::orgs::get(&mut c, id).await }.scope_boxed())
                    .await
                    .expect("read");
            }
        })
    };
    // Writes back to back until the log has taken three times the restart length.
    let limit = db::checkpoint::RESTART_FRAMES as u32;
    let (mut grown, mut highest, mut restarts, mut last) = (0u32, 0u32, 0, 0u32);
    let mut n = 0;
    while grown < 3 * limit {
        let orgs: Vec<Org> = (0..20)
            .map(|i| org(None, OrgKind::Committee, &format!("镇{n}-{i}")))
            .collect();
        db.write(move |mut c| {
            async move {
                for o in &orgs {
                    db::orgs::insert(&mut c, o).await?;
                }
                Ok(())
            }
            .scope_boxed()
        })
        .await
        .expect("write");
        n += 1;
        let (frames, _) = wal_index(&file);
        if frames < last {
            restarts += 1;
            grown += frames;
        } else {
            grown += frames - last;
        }
        highest = highest.max(frames);
        last = frames;
        assert!(n < 100_000, "the log stopped growing without starting over");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.await.expect("reader");
    println!("{n} writes, {grown} frames, {restarts} restarts, longest log {highest} frames");
    assert!(
        restarts > 0,
        "the log never started over ({highest} frames)"
    );
    assert!(
        highest < 2 * limit,
        "the log reached {highest} frames, restart at {limit}"
    );
}

/// Runs `sql` on PostgreSQL, outside any transaction.
async fn pg_execute(db: &Db, sql: &'static str) {
    db.read(move |c| {
        async move {
            let pg = c.pg().expect("postgres");
            diesel_async::SimpleAsyncConnection::batch_execute(&mut &*pg, sql)
                .await
                .map_err(db::db_error)
        }
        .scope_boxed()
    })
    .await
    .expect(sql);
}

/// How many events the outbox holds.
async fn outbox_len(db: &Db) -> usize {
    db.read(|mut c| async move { db::outbox::all(&mut c).await }.scope_boxed())
        .await
        .expect("outbox")
        .len()
}

/// PostgreSQL's write transactions are begun and ended by hand (their `BEGIN` sent with the
/// first statement, their `COMMIT` with the last ones): a statement that fails beside the
/// `COMMIT` leaves nothing committed, and a body that panics leaves no connection in the pool
/// mid-transaction. One connection in the pool, so the reads after are on the same one.
#[tokio::test]
async fn a_postgres_transaction_ends_whole_however_its_body_ends() {
    if crate::helpers::engine() != "postgres" {
        eprintln!("skipped: hand-managed transactions are PostgreSQL's (TEST_DATABASE_URL)");
        return;
    }
    let url = crate::helpers::fresh_database(&crate::helpers::temp_dir()).await;
    let db = Db::connect(&url, 1).await.expect("postgres");
    let refused = Scope::Org(Uuid::now_v7());
    pg_execute(
        &db,
        "CREATE FUNCTION yl_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.entity_id = '00000000-0000-0000-0000-0000000000ff' THEN \
         RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER yl_refuse BEFORE INSERT ON sync_index \
         FOR EACH ROW EXECUTE FUNCTION yl_refuse();",
    )
    .await;
    let before = outbox_len(&db).await;

    // The index's statement fails in the closing pipeline: the COMMIT sent behind it rolls
    // back, so the event the body appended is not committed either.
    let failed = db
        .write(move |mut c| {
            async move {
                append_event_in(&mut c).await?;
                let id = Uuid::from_u128(0xff);
                db::sync::record(&mut c, &[refused], Entity::Org, id, false, Utc::now()).await
            }
            .scope_boxed()
        })
        .await;
    assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");
    assert_eq!(outbox_len(&db).await, before, "nothing of the failed write");

    // A body that panics after writing: its task ends, and the connection does not go back to
    // the pool inside that transaction (where the next read would see the uncommitted event).
    for _ in 0..3 {
        let panicked = db
            .write(move |mut c| {
                async move {
                    append_event_in(&mut c).await?;
                    if outbox_len_in(&mut c).await? > 0 {
                        panic!("the body fails half-way");
                    }
                    Ok(())
                }
                .scope_boxed()
            })
            .await;
        assert!(matches!(panicked, Err(Error::Internal(_))), "{panicked:?}");
        assert_eq!(
            outbox_len(&db).await,
            before,
            "nothing of the panicked write"
        );
    }

    // A write in more scopes than are bumped in order on every poll: its COMMIT waits for
    // them, and every scope has the row.
    let scopes: Vec<Scope> = (0..40).map(|_| Scope::Org(Uuid::now_v7())).collect();
    let (row, written) = (Uuid::now_v7(), scopes.clone());
    db.write(move |mut c| {
        async move { db::sync::record(&mut c, &written, Entity::Org, row, false, Utc::now()).await }
            .scope_boxed()
    })
    .await
    .expect("a write in 40 scopes");
    let names: Vec<String> = scopes.iter().map(Scope::to_string).collect();
    let found = db
        .snapshot(move |mut c| {
            async move {
                let mut found = 0;
                for n in &names {
                    let changes = db::sync::changes(&mut c, n, 0, false, 10).await?;
                    found += changes
                        .iter()
                        .filter(|ch| ch.id == row && ch.version == 1)
                        .count();
                }
                Ok(found)
            }
            .scope_boxed()
        })
        .await
        .expect("read the scopes");
    assert_eq!(found, 40, "the row at version 1 in every scope");

    // And the pool still works: a write commits, a snapshot reads it.
    let id = append_event(&db, 1, true).await.expect("append after");
    let seen = db
        .snapshot(|mut c| async move { db::outbox::all(&mut c).await }.scope_boxed())
        .await
        .expect("snapshot");
    assert!(seen.iter().any(|e| e.id == id));
}

async fn append_event_in(c: &mut db::Conn<'_>) -> Result<Uuid, Error> {
    let event = yunlian_domain::events::DomainEvent::RoleEnded(yunlian_domain::events::RoleEnded {
        grant_id: Uuid::now_v7(),
        member_id: Uuid::now_v7(),
        org_id: Uuid::now_v7(),
        role: Role::CommitteeMember,
        reason: "panicked".into(),
    });
    db::outbox::append(c, &event, Utc::now()).await
}

async fn outbox_len_in(c: &mut db::Conn<'_>) -> Result<usize, Error> {
    Ok(db::outbox::all(c).await?.len())
}
