//! Experiments: create, get, rename, delete/restore, tags, search.

use crate::ErrorKind;
use crate::entities::*;
use crate::search::SearchKind;
use crate::testkit::support::*;
use crate::tracking::*;

/// Experiment `"0"` exists, is named `Default` and is active (MLflow creates it in every store).
pub async fn default_experiment_exists(store: &dyn TrackingStore) {
    let e = ok(store.get_experiment("0").await, "get_experiment(\"0\")");
    assert_eq!(e.experiment_id, "0", "the default experiment's id");
    assert_eq!(e.name, "Default", "the default experiment's name");
    assert_eq!(
        e.lifecycle_stage,
        LifecycleStage::Active,
        "the default experiment is active"
    );
    let by_name = ok(
        store.get_experiment_by_name("Default").await,
        "get_experiment_by_name(\"Default\")",
    )
    .expect("get_experiment_by_name(\"Default\") found nothing");
    assert_eq!(by_name.experiment_id, "0", "`Default` has id \"0\"");
}

/// A created experiment is returned by id and by name, active, with its tags ordered by key,
/// its creation and update times, and an artifact location `<root>/<id>` (or the one given).
pub async fn experiment_create_and_get_by_id_and_name(store: &dyn TrackingStore) {
    let name = unique_name("conf-exp");
    let id = ok(
        store
            .create_experiment(CreateExperiment {
                name: name.clone(),
                artifact_location: None,
                tags: vec![
                    ExperimentTag::new("zeta", "last"),
                    ExperimentTag::new("alpha", "first"),
                ],
            })
            .await,
        "create_experiment",
    );
    assert!(!id.is_empty(), "create_experiment returned an empty id");

    let e = ok(store.get_experiment(&id).await, "get_experiment");
    assert_eq!(e.experiment_id, id, "get_experiment: id");
    assert_eq!(e.name, name, "get_experiment: name");
    assert_eq!(
        e.lifecycle_stage,
        LifecycleStage::Active,
        "new experiment is active"
    );
    assert!(
        e.artifact_location.ends_with(&format!("/{id}")),
        "artifact_location {:?} should be <default artifact root>/{id}",
        e.artifact_location
    );
    assert_eq!(
        e.tags,
        vec![
            ExperimentTag::new("alpha", "first"),
            ExperimentTag::new("zeta", "last"),
        ],
        "experiment tags, ordered by key"
    );
    let created = e.creation_time.expect("creation_time is set");
    let updated = e.last_update_time.expect("last_update_time is set");
    assert!(created > 0, "creation_time {created} is ms since the epoch");
    assert!(
        updated >= created,
        "last_update_time {updated} precedes creation_time {created}"
    );

    let by_name = ok(
        store.get_experiment_by_name(&name).await,
        "get_experiment_by_name",
    )
    .unwrap_or_else(|| panic!("get_experiment_by_name({name}) found nothing"));
    assert_eq!(
        by_name, e,
        "get_experiment_by_name returns what get_experiment returns"
    );

    let missing = ok(
        store
            .get_experiment_by_name(&unique_name("conf-missing"))
            .await,
        "get_experiment_by_name(unknown)",
    );
    assert!(
        missing.is_none(),
        "an unknown name gives None, got {missing:?}"
    );

    let name2 = unique_name("conf-exp-loc");
    let location = format!("file:///tmp/cairn-conformance/{name2}");
    let id2 = ok(
        store
            .create_experiment(CreateExperiment {
                name: name2,
                artifact_location: Some(location.clone()),
                tags: vec![],
            })
            .await,
        "create_experiment with artifact_location",
    );
    let e2 = ok(store.get_experiment(&id2).await, "get_experiment");
    assert_eq!(
        e2.artifact_location, location,
        "an explicit artifact_location is kept"
    );
    assert_ne!(id, id2, "two experiments got the same id");
}

/// A name already used by an active or a deleted experiment is `AlreadyExists`.
pub async fn experiment_duplicate_name_is_already_exists(store: &dyn TrackingStore) {
    let name = unique_name("conf-dup");
    let req = CreateExperiment {
        name: name.clone(),
        ..Default::default()
    };
    let id = ok(
        store.create_experiment(req.clone()).await,
        "create_experiment",
    );
    let e = expect_err(
        store.create_experiment(req.clone()).await,
        ErrorKind::AlreadyExists,
        "create_experiment with an active experiment's name",
    );
    assert!(
        e.message.contains("already exists"),
        "message {:?} should say the experiment already exists",
        e.message
    );
    ok(store.delete_experiment(&id).await, "delete_experiment");
    expect_err(
        store.create_experiment(req).await,
        ErrorKind::AlreadyExists,
        "create_experiment with a deleted experiment's name",
    );
}

/// An empty name or one longer than 500 characters is `InvalidArgument` and creates nothing;
/// exactly 500 characters is fine.
pub async fn experiment_invalid_names_are_invalid_argument(store: &dyn TrackingStore) {
    expect_err(
        store
            .create_experiment(CreateExperiment {
                name: String::new(),
                ..Default::default()
            })
            .await,
        ErrorKind::InvalidArgument,
        "create_experiment with an empty name",
    );

    let base = unique_name("conf-long");
    let long = format!("{base}{}", "x".repeat(501 - base.len()));
    assert_eq!(long.chars().count(), 501);
    expect_err(
        store
            .create_experiment(CreateExperiment {
                name: long.clone(),
                ..Default::default()
            })
            .await,
        ErrorKind::InvalidArgument,
        "create_experiment with a 501-character name",
    );
    let found = ok(
        store.get_experiment_by_name(&long).await,
        "get_experiment_by_name",
    );
    assert!(found.is_none(), "a rejected experiment was created anyway");

    let max = long[..500].to_string();
    let id = ok(
        store
            .create_experiment(CreateExperiment {
                name: max.clone(),
                ..Default::default()
            })
            .await,
        "create_experiment with a 500-character name",
    );
    let e = ok(store.get_experiment(&id).await, "get_experiment");
    assert_eq!(e.name, max, "a 500-character name is stored whole");
}

/// Getting, deleting or restoring an experiment that does not exist is `NotFound`.
pub async fn experiment_get_unknown_is_not_found(store: &dyn TrackingStore) {
    let id = unknown_experiment_id();
    expect_err(
        store.get_experiment(&id).await,
        ErrorKind::NotFound,
        "get_experiment(unknown)",
    );
    expect_err(
        store.delete_experiment(&id).await,
        ErrorKind::NotFound,
        "delete_experiment(unknown)",
    );
    expect_err(
        store.restore_experiment(&id).await,
        ErrorKind::NotFound,
        "restore_experiment(unknown)",
    );
    expect_err(
        store.rename_experiment(&id, &unique_name("conf")).await,
        ErrorKind::NotFound,
        "rename_experiment(unknown)",
    );
}

/// Renaming changes the name seen by id and by name; the old name is free afterwards; an
/// invalid new name is `InvalidArgument`.
pub async fn experiment_rename(store: &dyn TrackingStore) {
    let old = unique_name("conf-ren");
    let id = ok(
        store
            .create_experiment(CreateExperiment {
                name: old.clone(),
                ..Default::default()
            })
            .await,
        "create_experiment",
    );
    let new = unique_name("conf-renamed");
    ok(
        store.rename_experiment(&id, &new).await,
        "rename_experiment",
    );
    let e = ok(store.get_experiment(&id).await, "get_experiment");
    assert_eq!(e.name, new, "name after rename");
    let by_new = ok(store.get_experiment_by_name(&new).await, "get by new name")
        .expect("the new name finds nothing");
    assert_eq!(
        by_new.experiment_id, id,
        "the new name finds the experiment"
    );
    let by_old = ok(store.get_experiment_by_name(&old).await, "get by old name");
    assert!(by_old.is_none(), "the old name still finds {by_old:?}");
    expect_err(
        store.rename_experiment(&id, "").await,
        ErrorKind::InvalidArgument,
        "rename_experiment to an empty name",
    );
    // The old name can be reused.
    ok(
        store
            .create_experiment(CreateExperiment {
                name: old,
                ..Default::default()
            })
            .await,
        "create_experiment with the name freed by a rename",
    );
}

/// Renaming to a name another experiment has is `AlreadyExists` and changes nothing.
pub async fn experiment_rename_to_taken_name_is_already_exists(store: &dyn TrackingStore) {
    let a = new_experiment(store, "conf-ren-a").await;
    let b = new_experiment(store, "conf-ren-b").await;
    let b_name = ok(store.get_experiment(&b).await, "get_experiment").name;
    let a_name = ok(store.get_experiment(&a).await, "get_experiment").name;
    expect_err(
        store.rename_experiment(&a, &b_name).await,
        ErrorKind::AlreadyExists,
        "rename_experiment to a taken name",
    );
    let after = ok(store.get_experiment(&a).await, "get_experiment");
    assert_eq!(after.name, a_name, "a failed rename changed the name");
}

/// Renaming a deleted experiment is `InvalidState` ("Cannot rename a non-active experiment.").
pub async fn experiment_rename_deleted_is_invalid_state(store: &dyn TrackingStore) {
    let id = new_experiment(store, "conf-ren-del").await;
    ok(store.delete_experiment(&id).await, "delete_experiment");
    expect_err(
        store.rename_experiment(&id, &unique_name("conf")).await,
        ErrorKind::InvalidState,
        "rename_experiment of a deleted experiment",
    );
}

/// Delete marks the experiment deleted (get still returns it); deleting again is `NotFound`;
/// restore makes it active; restoring an active experiment is `NotFound`.
pub async fn experiment_delete_and_restore(store: &dyn TrackingStore) {
    let id = new_experiment(store, "conf-del").await;
    expect_err(
        store.restore_experiment(&id).await,
        ErrorKind::NotFound,
        "restore_experiment of an active experiment",
    );
    ok(store.delete_experiment(&id).await, "delete_experiment");
    let e = ok(
        store.get_experiment(&id).await,
        "get_experiment of a deleted experiment",
    );
    assert_eq!(e.lifecycle_stage, LifecycleStage::Deleted, "after delete");
    let by_name = ok(store.get_experiment_by_name(&e.name).await, "get by name")
        .expect("get_experiment_by_name finds a deleted experiment");
    assert_eq!(by_name.lifecycle_stage, LifecycleStage::Deleted);
    expect_err(
        store.delete_experiment(&id).await,
        ErrorKind::NotFound,
        "delete_experiment of a deleted experiment",
    );
    ok(store.restore_experiment(&id).await, "restore_experiment");
    let e = ok(store.get_experiment(&id).await, "get_experiment");
    assert_eq!(e.lifecycle_stage, LifecycleStage::Active, "after restore");
    expect_err(
        store.restore_experiment(&id).await,
        ErrorKind::NotFound,
        "restore_experiment twice",
    );
}

/// Deleting an experiment deletes its runs: they leave `ACTIVE_ONLY` searches, appear in
/// `DELETED_ONLY`, and come back when the experiment is restored.
pub async fn experiment_delete_hides_runs_until_restore(store: &dyn TrackingStore) {
    let id = new_experiment(store, "conf-del-runs").await;
    let r1 = new_run(store, &id).await.info.run_id;
    let r2 = new_run(store, &id).await.info.run_id;
    let both = sorted(vec![r1.clone(), r2.clone()]);
    let exp = id.as_str();
    let search = |view| async move {
        sorted(run_ids(
            &all_runs(store, runs_request(&[exp], None, vec![], view)).await,
        ))
    };
    assert_eq!(search(ViewType::ActiveOnly).await, both, "before delete");

    ok(store.delete_experiment(&id).await, "delete_experiment");
    assert_eq!(
        search(ViewType::ActiveOnly).await,
        Vec::<String>::new(),
        "ACTIVE_ONLY runs of a deleted experiment"
    );
    assert_eq!(
        search(ViewType::DeletedOnly).await,
        both,
        "DELETED_ONLY runs of a deleted experiment"
    );
    let run = get_run(store, &r1).await;
    assert_eq!(
        run.info.lifecycle_stage,
        LifecycleStage::Deleted,
        "a run of a deleted experiment is deleted"
    );

    ok(store.restore_experiment(&id).await, "restore_experiment");
    assert_eq!(search(ViewType::ActiveOnly).await, both, "after restore");
    let run = get_run(store, &r2).await;
    assert_eq!(
        run.info.lifecycle_stage,
        LifecycleStage::Active,
        "a run of a restored experiment is active"
    );
}

/// Experiment tags: set, overwrite, delete; deleting a missing tag is `NotFound`; tagging a
/// deleted experiment or using an invalid key is `InvalidArgument`; a create with an invalid
/// tag creates nothing.
pub async fn experiment_tags_set_overwrite_delete(store: &dyn TrackingStore) {
    let id = new_experiment(store, "conf-etag").await;
    let tags =
        |id: String| async move { ok(store.get_experiment(&id).await, "get_experiment").tags };

    ok(
        store
            .set_experiment_tag(&id, ExperimentTag::new("k", "v1"))
            .await,
        "set_experiment_tag",
    );
    ok(
        store
            .set_experiment_tag(&id, ExperimentTag::new("empty", ""))
            .await,
        "set_experiment_tag with an empty value",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![
            ExperimentTag::new("empty", ""),
            ExperimentTag::new("k", "v1")
        ],
        "tags after set"
    );
    ok(
        store
            .set_experiment_tag(&id, ExperimentTag::new("k", "v2"))
            .await,
        "set_experiment_tag overwrite",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![
            ExperimentTag::new("empty", ""),
            ExperimentTag::new("k", "v2")
        ],
        "tags after overwrite"
    );
    ok(
        store.delete_experiment_tag(&id, "k").await,
        "delete_experiment_tag",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![ExperimentTag::new("empty", "")],
        "tags after delete"
    );
    // MLflow's longest experiment tag value.
    let long = incompressible(crate::validation::MAX_EXPERIMENT_TAG_VAL_LENGTH);
    ok(
        store
            .set_experiment_tag(&id, ExperimentTag::new("long", long.clone()))
            .await,
        "set_experiment_tag with the longest value",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![
            ExperimentTag::new("empty", ""),
            ExperimentTag::new("long", long)
        ],
        "tags after setting the longest value"
    );
    ok(
        store.delete_experiment_tag(&id, "long").await,
        "delete_experiment_tag of the longest value",
    );
    expect_err(
        store.delete_experiment_tag(&id, "k").await,
        ErrorKind::NotFound,
        "delete_experiment_tag of a missing tag",
    );
    expect_err(
        store
            .set_experiment_tag(&id, ExperimentTag::new("bad!key", "v"))
            .await,
        ErrorKind::InvalidArgument,
        "set_experiment_tag with key 'bad!key'",
    );
    expect_err(
        store
            .set_experiment_tag(&id, ExperimentTag::new("k".repeat(251), "v"))
            .await,
        ErrorKind::InvalidArgument,
        "set_experiment_tag with a 251-character key",
    );

    let name = unique_name("conf-etag-bad");
    expect_err(
        store
            .create_experiment(CreateExperiment {
                name: name.clone(),
                artifact_location: None,
                tags: vec![
                    ExperimentTag::new("good", "v"),
                    ExperimentTag::new("a//b", "v"),
                ],
            })
            .await,
        ErrorKind::InvalidArgument,
        "create_experiment with tag key 'a//b'",
    );
    let found = ok(store.get_experiment_by_name(&name).await, "get by name");
    assert!(
        found.is_none(),
        "create_experiment with an invalid tag still created {found:?}"
    );

    ok(store.delete_experiment(&id).await, "delete_experiment");
    expect_err(
        store
            .set_experiment_tag(&id, ExperimentTag::new("k", "v"))
            .await,
        ErrorKind::InvalidArgument,
        "set_experiment_tag on a deleted experiment",
    );
}

/// Creates `names` (suffixes after a fresh prefix) and returns the prefix and the ids.
async fn experiments_with_prefix(
    store: &dyn TrackingStore,
    suffixes: &[&str],
) -> (String, Vec<String>) {
    let prefix = unique_name("conf-sx");
    let mut ids = Vec::new();
    for s in suffixes {
        ids.push(ok(
            store
                .create_experiment(CreateExperiment {
                    name: format!("{prefix}-{s}"),
                    ..Default::default()
                })
                .await,
            "create_experiment",
        ));
    }
    (prefix, ids)
}

/// `name =`, `!=`, `LIKE` (case-sensitive, `%` and `_`), `ILIKE` filters.
pub async fn search_experiments_filter_by_name(store: &dyn TrackingStore) {
    let (p, ids) = experiments_with_prefix(store, &["alpha", "Alpha", "beta"]).await;
    let (alpha, alpha_cap, beta) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    let cases: Vec<(String, Vec<String>)> = vec![
        (format!("name = '{p}-alpha'"), vec![alpha.clone()]),
        (
            format!("name LIKE '{p}-%' AND name != '{p}-beta'"),
            vec![alpha.clone(), alpha_cap.clone()],
        ),
        (
            format!("name LIKE '{p}-%'"),
            vec![alpha.clone(), alpha_cap.clone(), beta.clone()],
        ),
        (format!("name LIKE '{p}-a%'"), vec![alpha.clone()]),
        (format!("name LIKE '{p}-_eta'"), vec![beta.clone()]),
        (
            format!("name ILIKE '{p}-A%'"),
            vec![alpha.clone(), alpha_cap.clone()],
        ),
        (
            format!("attributes.name ILIKE '{}-%'", p.to_uppercase()),
            vec![alpha.clone(), alpha_cap.clone(), beta.clone()],
        ),
        (format!("name = '{p}-ALPHA'"), vec![]),
    ];
    for (f, expected) in cases {
        let got = experiment_ids_matching(store, &f, ViewType::ActiveOnly).await;
        assert_eq!(
            sorted(got),
            sorted(expected),
            "search_experiments filter {f:?}"
        );
    }
}

/// Tag filters: `=`, `!=`, `LIKE`, `ILIKE`, `IS NULL`, `IS NOT NULL`, combined with `AND`.
pub async fn search_experiments_filter_by_tags(store: &dyn TrackingStore) {
    let (p, ids) = experiments_with_prefix(store, &["a", "b", "c"]).await;
    ok(
        store
            .set_experiment_tag(&ids[0], ExperimentTag::new("team", "Vision"))
            .await,
        "set_experiment_tag",
    );
    ok(
        store
            .set_experiment_tag(&ids[1], ExperimentTag::new("team", "nlp"))
            .await,
        "set_experiment_tag",
    );
    let scope = format!("name LIKE '{p}-%'");
    let cases: Vec<(String, Vec<String>)> = vec![
        (
            format!("{scope} AND tags.team = 'Vision'"),
            vec![ids[0].clone()],
        ),
        (
            format!("{scope} AND tags.team != 'Vision'"),
            vec![ids[1].clone()],
        ),
        (
            format!("{scope} AND tags.team LIKE 'V%'"),
            vec![ids[0].clone()],
        ),
        (format!("{scope} AND tags.team LIKE 'v%'"), vec![]),
        (
            format!("{scope} AND tags.team ILIKE 'v%'"),
            vec![ids[0].clone()],
        ),
        (
            format!("{scope} AND tags.team IS NOT NULL"),
            vec![ids[0].clone(), ids[1].clone()],
        ),
        (
            format!("{scope} AND tags.team IS NULL"),
            vec![ids[2].clone()],
        ),
        (
            format!("{scope} AND tag.`team` = 'nlp'"),
            vec![ids[1].clone()],
        ),
    ];
    for (f, expected) in cases {
        let got = experiment_ids_matching(store, &f, ViewType::ActiveOnly).await;
        assert_eq!(
            sorted(got),
            sorted(expected),
            "search_experiments filter {f:?}"
        );
    }
}

/// `creation_time` comparisons use the stored creation times.
pub async fn search_experiments_filter_by_creation_time(store: &dyn TrackingStore) {
    let (p, ids) = experiments_with_prefix(store, &["one", "two", "three"]).await;
    let mut times = Vec::new();
    for id in &ids {
        let e = ok(store.get_experiment(id).await, "get_experiment");
        times.push(e.creation_time.expect("creation_time is set"));
    }
    let min = *times.iter().min().unwrap();
    let max = *times.iter().max().unwrap();
    let scope = format!("name LIKE '{p}-%'");
    let expect = |pred: &dyn Fn(i64) -> bool| -> Vec<String> {
        ids.iter()
            .zip(&times)
            .filter(|(_, t)| pred(**t))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (format!("{scope} AND creation_time >= {min}"), ids.clone()),
        (format!("{scope} AND creation_time <= {max}"), ids.clone()),
        (format!("{scope} AND creation_time < {min}"), vec![]),
        (format!("{scope} AND creation_time > {max}"), vec![]),
        (
            format!("{scope} AND creation_time = {}", times[0]),
            expect(&|t| t == times[0]),
        ),
        (
            format!("{scope} AND creation_time != {}", times[0]),
            expect(&|t| t != times[0]),
        ),
        (
            format!("{scope} AND creation_time > {min}"),
            expect(&|t| t > min),
        ),
    ];
    for (f, expected) in cases {
        let got = experiment_ids_matching(store, &f, ViewType::ActiveOnly).await;
        assert_eq!(
            sorted(got),
            sorted(expected),
            "search_experiments filter {f:?}"
        );
    }
}

/// `order_by name ASC/DESC`; without order_by, newest first (`creation_time DESC`).
pub async fn search_experiments_order_by(store: &dyn TrackingStore) {
    let (p, ids) = experiments_with_prefix(store, &["b", "c", "a", "d"]).await;
    let f = filter(SearchKind::Experiments, &format!("name LIKE '{p}-%'"));
    let names_in = |order: &'static [&'static str]| {
        let f = f.clone();
        async move {
            let req = experiments_request(
                f,
                order_by(SearchKind::Experiments, order),
                ViewType::ActiveOnly,
            );
            all_experiments(store, req)
                .await
                .into_iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
        }
    };
    let asc: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| format!("{p}-{s}"))
        .collect();
    let mut desc = asc.clone();
    desc.reverse();
    assert_eq!(names_in(&["name ASC"]).await, asc, "order_by name ASC");
    assert_eq!(
        names_in(&["name"]).await,
        asc,
        "order_by name (ASC default)"
    );
    assert_eq!(names_in(&["name DESC"]).await, desc, "order_by name DESC");

    let req = experiments_request(f.clone(), vec![], ViewType::ActiveOnly);
    let default = all_experiments(store, req.clone()).await;
    assert_eq!(
        sorted(default.iter().map(|e| e.experiment_id.clone()).collect()),
        sorted(ids.clone()),
        "default order returns every experiment"
    );
    let times: Vec<i64> = default
        .iter()
        .map(|e| e.creation_time.expect("creation_time is set"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "default order is creation_time DESC, got creation times {times:?}"
    );
    let again = all_experiments(store, req).await;
    assert_eq!(again, default, "the default order is stable between calls");
}

/// `ACTIVE_ONLY`, `DELETED_ONLY` and `ALL`.
pub async fn search_experiments_view_types(store: &dyn TrackingStore) {
    let (p, ids) = experiments_with_prefix(store, &["live", "gone"]).await;
    ok(store.delete_experiment(&ids[1]).await, "delete_experiment");
    let f = format!("name LIKE '{p}-%'");
    for (view, expected) in [
        (ViewType::ActiveOnly, vec![ids[0].clone()]),
        (ViewType::DeletedOnly, vec![ids[1].clone()]),
        (ViewType::All, ids.clone()),
    ] {
        let got = experiment_ids_matching(store, &f, view).await;
        assert_eq!(sorted(got), sorted(expected), "search_experiments {view:?}");
    }
}

/// Pages of 1, 2 and 3 together give exactly the one big page, in the same order, with no
/// duplicates, for the default order and for `name DESC`.
pub async fn search_experiments_pages_are_complete_and_stable(store: &dyn TrackingStore) {
    let (p, ids) =
        experiments_with_prefix(store, &["e1", "e2", "e3", "e4", "e5", "e6", "e7"]).await;
    let f = filter(SearchKind::Experiments, &format!("name LIKE '{p}-%'"));
    for order in [vec![], order_by(SearchKind::Experiments, &["name DESC"])] {
        let whole = all_experiments(
            store,
            experiments_request(f.clone(), order.clone(), ViewType::ActiveOnly),
        )
        .await;
        let whole_ids: Vec<String> = whole.iter().map(|e| e.experiment_id.clone()).collect();
        assert_eq!(
            sorted(whole_ids.clone()),
            sorted(ids.clone()),
            "one big page holds every experiment"
        );
        for size in 1..=3 {
            let paged = all_experiments(
                store,
                SearchExperiments {
                    max_results: size,
                    ..experiments_request(f.clone(), order.clone(), ViewType::ActiveOnly)
                },
            )
            .await;
            let paged_ids: Vec<String> = paged.iter().map(|e| e.experiment_id.clone()).collect();
            assert_no_duplicates(&paged_ids, &format!("pages of {size}, order {order:?}"));
            assert_eq!(
                paged_ids, whole_ids,
                "pages of {size} (order {order:?}) differ from one big page"
            );
        }
    }
}

/// A page token the store never issued is `InvalidArgument`.
pub async fn search_experiments_malformed_page_token_is_invalid_argument(
    store: &dyn TrackingStore,
) {
    for token in ["%%% not a token %%%", "Z2FyYmFnZQ=="] {
        expect_err(
            store
                .search_experiments(SearchExperiments {
                    page_token: Some(token.into()),
                    ..experiments_request(None, vec![], ViewType::ActiveOnly)
                })
                .await,
            ErrorKind::InvalidArgument,
            &format!("search_experiments with page token {token:?}"),
        );
    }
}
