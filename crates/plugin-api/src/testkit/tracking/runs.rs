//! Runs: create, get, update, delete/restore, lifecycle rules.

use crate::ErrorKind;
use crate::entities::*;
use crate::testkit::support::*;
use crate::tracking::*;

use crate::validation::RUN_NAME_TAG;

/// A new run is `RUNNING` and active, has a 32-hex id, keeps the given name (also in tag
/// `mlflow.runName`), user, start time and tags, has no end time, and its artifact URI is
/// `<experiment artifact_location>/<run_id>/artifacts`; `get_run` returns the same run.
pub async fn run_create_defaults(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run").await;
    let exp = ok(store.get_experiment(&exp_id).await, "get_experiment");
    let name = unique_name("conf-run");
    let start = now_ms() - 1000;
    let run = new_run_with(
        store,
        CreateRun {
            experiment_id: exp_id.clone(),
            user_id: "alice@example.com".into(),
            start_time: start,
            tags: vec![RunTag::new("zz", "2"), RunTag::new("aa", "1")],
            run_name: Some(name.clone()),
        },
    )
    .await;
    let info = &run.info;
    let id = info.run_id.clone();
    assert!(
        is_lower_hex(&id, 32),
        "run_id {id:?} should be 32 lowercase hex characters"
    );
    assert_eq!(info.experiment_id, exp_id, "run experiment_id");
    assert_eq!(info.run_name, name, "run_name");
    assert_eq!(
        run.tag(RUN_NAME_TAG),
        Some(name.as_str()),
        "tag mlflow.runName"
    );
    assert_eq!(
        info.user_id, "alice@example.com",
        "user_id is stored verbatim"
    );
    assert_eq!(info.status, RunStatus::Running, "a new run is RUNNING");
    assert_eq!(info.start_time, start, "start_time is stored verbatim");
    assert_eq!(info.end_time, None, "a new run has no end_time");
    assert_eq!(
        info.lifecycle_stage,
        LifecycleStage::Active,
        "a new run is active"
    );
    let root = exp.artifact_location.trim_end_matches('/');
    assert!(
        info.artifact_uri.starts_with(root)
            && info.artifact_uri.ends_with(&format!("/{id}/artifacts")),
        "artifact_uri {:?} should be {root}/{id}/artifacts",
        info.artifact_uri
    );
    assert_eq!(
        user_tags(&run.data.tags),
        vec![("aa".into(), "1".into()), ("zz".into(), "2".into())],
        "the given tags"
    );
    assert_sorted_by_key(run.data.tags.iter().map(|t| t.key.as_str()), "run tags");
    assert!(run.data.metrics.is_empty(), "a new run has no metrics");
    assert!(run.data.params.is_empty(), "a new run has no params");
    assert_eq!(run.inputs, RunInputs::default(), "a new run has no inputs");
    assert_eq!(
        run.outputs,
        RunOutputs::default(),
        "a new run has no outputs"
    );

    let got = get_run(store, &id).await;
    assert_eq!(got, run, "get_run returns what create_run returned");

    let other = new_run(store, &exp_id).await;
    assert_ne!(other.info.run_id, id, "two runs got the same id");
}

/// Without `run_name` and tag `mlflow.runName` the store generates a name and stores it in
/// both; with only the tag, the tag's value is the name; the same value in both is fine.
pub async fn run_create_generates_a_name(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run-name").await;
    let run = new_run(store, &exp_id).await;
    assert!(
        !run.info.run_name.is_empty(),
        "a run created without a name got an empty run_name"
    );
    assert_eq!(
        run.tag(RUN_NAME_TAG),
        Some(run.info.run_name.as_str()),
        "the generated name is also in tag mlflow.runName"
    );
    let got = get_run(store, &run.info.run_id).await;
    assert_eq!(
        got.info.run_name, run.info.run_name,
        "the generated name is stored"
    );

    let from_tag = new_run_with(
        store,
        CreateRun {
            experiment_id: exp_id.clone(),
            start_time: now_ms(),
            tags: vec![RunTag::new(RUN_NAME_TAG, "named-by-tag")],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        from_tag.info.run_name, "named-by-tag",
        "run_name from the tag"
    );

    let both = new_run_with(
        store,
        CreateRun {
            experiment_id: exp_id,
            start_time: now_ms(),
            tags: vec![RunTag::new(RUN_NAME_TAG, "same")],
            run_name: Some("same".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(both.info.run_name, "same");
    assert_eq!(both.tag(RUN_NAME_TAG), Some("same"));
}

/// `run_name` and a different tag `mlflow.runName` is `InvalidArgument` and creates no run.
pub async fn run_create_name_conflicting_with_tag_is_invalid_argument(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run-conflict").await;
    expect_err(
        store
            .create_run(CreateRun {
                experiment_id: exp_id.clone(),
                start_time: now_ms(),
                tags: vec![RunTag::new(RUN_NAME_TAG, "from-tag")],
                run_name: Some("from-arg".into()),
                ..Default::default()
            })
            .await,
        ErrorKind::InvalidArgument,
        "create_run with run_name != tag mlflow.runName",
    );
    let runs = all_runs(store, runs_request(&[&exp_id], None, vec![], ViewType::All)).await;
    assert!(
        runs.is_empty(),
        "a rejected create_run left {} run(s)",
        runs.len()
    );
}

/// An empty `experiment_id` creates the run in the default experiment `"0"`.
pub async fn run_create_in_default_experiment_when_none_given(store: &dyn TrackingStore) {
    let run = new_run_with(
        store,
        CreateRun {
            experiment_id: String::new(),
            start_time: now_ms(),
            run_name: Some(unique_name("conf-default")),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        run.info.experiment_id, "0",
        "empty experiment_id means \"0\""
    );
    ok(store.delete_run(&run.info.run_id).await, "delete_run");
}

/// Creating a run in a deleted experiment is `InvalidArgument`.
pub async fn run_create_in_deleted_experiment_is_invalid_argument(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run-del-exp").await;
    ok(store.delete_experiment(&exp_id).await, "delete_experiment");
    expect_err(
        store
            .create_run(CreateRun {
                experiment_id: exp_id,
                start_time: now_ms(),
                ..Default::default()
            })
            .await,
        ErrorKind::InvalidArgument,
        "create_run in a deleted experiment",
    );
}

/// Creating a run in an experiment that does not exist is `NotFound`.
pub async fn run_create_in_unknown_experiment_is_not_found(store: &dyn TrackingStore) {
    expect_err(
        store
            .create_run(CreateRun {
                experiment_id: unknown_experiment_id(),
                start_time: now_ms(),
                ..Default::default()
            })
            .await,
        ErrorKind::NotFound,
        "create_run in an unknown experiment",
    );
}

/// `update_run_info` changes only the fields given; a new `run_name` also updates tag
/// `mlflow.runName`; the returned info is what `get_run` shows.
pub async fn run_update_changes_only_given_fields(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run-upd").await;
    let run = new_run(store, &exp_id).await;
    let id = run.info.run_id.clone();
    let name = run.info.run_name.clone();

    let check = |expected: RunInfo, what: &'static str| async move {
        let got = get_run(store, &expected.run_id).await;
        assert_eq!(got.info, expected, "get_run after {what}");
        assert_eq!(
            got.tag(RUN_NAME_TAG),
            Some(expected.run_name.as_str()),
            "tag mlflow.runName after {what}"
        );
    };

    let info = ok(
        store
            .update_run_info(
                &id,
                UpdateRun {
                    status: Some(RunStatus::Finished),
                    ..Default::default()
                },
            )
            .await,
        "update_run_info(status)",
    );
    let mut expected = run.info.clone();
    expected.status = RunStatus::Finished;
    assert_eq!(info, expected, "update of status only");
    check(expected.clone(), "status update").await;

    let end = run.info.start_time + 5000;
    let info = ok(
        store
            .update_run_info(
                &id,
                UpdateRun {
                    end_time: Some(end),
                    ..Default::default()
                },
            )
            .await,
        "update_run_info(end_time)",
    );
    expected.end_time = Some(end);
    assert_eq!(info, expected, "update of end_time only");
    check(expected.clone(), "end_time update").await;

    let new_name = format!("{name}-renamed");
    let info = ok(
        store
            .update_run_info(
                &id,
                UpdateRun {
                    run_name: Some(new_name.clone()),
                    ..Default::default()
                },
            )
            .await,
        "update_run_info(run_name)",
    );
    expected.run_name = new_name;
    assert_eq!(info, expected, "update of run_name only");
    check(expected.clone(), "run_name update").await;

    let info = ok(
        store.update_run_info(&id, UpdateRun::default()).await,
        "update_run_info(nothing)",
    );
    assert_eq!(info, expected, "an empty update changes nothing");

    let info = ok(
        store
            .update_run_info(
                &id,
                UpdateRun {
                    status: Some(RunStatus::Killed),
                    end_time: Some(end + 1),
                    run_name: None,
                },
            )
            .await,
        "update_run_info(status, end_time)",
    );
    expected.status = RunStatus::Killed;
    expected.end_time = Some(end + 1);
    assert_eq!(info, expected, "update of status and end_time");
    check(expected, "status and end_time update").await;
}

/// Delete marks the run deleted (get still returns it, searches move it to `DELETED_ONLY`);
/// deleting again succeeds; restore makes it active again.
pub async fn run_delete_and_restore(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run-del").await;
    let keep = new_run(store, &exp_id).await.info.run_id;
    let id = new_run(store, &exp_id).await.info.run_id;
    let exp = exp_id.as_str();
    let search = |view| async move {
        sorted(run_ids(
            &all_runs(store, runs_request(&[exp], None, vec![], view)).await,
        ))
    };

    ok(store.delete_run(&id).await, "delete_run");
    let run = get_run(store, &id).await;
    assert_eq!(
        run.info.lifecycle_stage,
        LifecycleStage::Deleted,
        "after delete_run"
    );
    assert_eq!(
        search(ViewType::ActiveOnly).await,
        vec![keep.clone()],
        "ACTIVE_ONLY"
    );
    assert_eq!(
        search(ViewType::DeletedOnly).await,
        vec![id.clone()],
        "DELETED_ONLY"
    );
    assert_eq!(
        search(ViewType::All).await,
        sorted(vec![keep.clone(), id.clone()]),
        "ALL"
    );
    ok(store.delete_run(&id).await, "delete_run of a deleted run");

    ok(store.restore_run(&id).await, "restore_run");
    let run = get_run(store, &id).await;
    assert_eq!(
        run.info.lifecycle_stage,
        LifecycleStage::Active,
        "after restore_run"
    );
    assert_eq!(
        search(ViewType::ActiveOnly).await,
        sorted(vec![keep, id]),
        "ACTIVE_ONLY after restore"
    );
}

/// `get_run` of an unknown id is `NotFound`, naming the id.
pub async fn run_get_unknown_is_not_found(store: &dyn TrackingStore) {
    let id = random_run_id();
    let e = expect_err(
        store.get_run(&id).await,
        ErrorKind::NotFound,
        "get_run(unknown)",
    );
    assert!(
        e.message.contains(&id),
        "message {:?} should name the run id",
        e.message
    );
}

/// Every write to a deleted run is `InvalidArgument` (`"The run <id> must be in the 'active'
/// state. ..."`); after restore the same writes succeed.
pub async fn run_writes_to_deleted_run_are_invalid_argument(store: &dyn TrackingStore) {
    let exp_id = new_experiment(store, "conf-run-del-w").await;
    let id = new_run(store, &exp_id).await.info.run_id;
    ok(
        store.set_tag(&id, RunTag::new("existing", "v")).await,
        "set_tag",
    );
    ok(store.delete_run(&id).await, "delete_run");
    let now = now_ms();
    let check = |r: crate::Result<()>, what: &str| {
        let e = expect_err(r, ErrorKind::InvalidArgument, what);
        assert!(
            e.message.contains("must be in the 'active' state"),
            "{what}: message {:?} should say the run must be active",
            e.message
        );
    };
    check(
        store.log_metric(&id, Metric::new("m", 1.0, now, 0)).await,
        "log_metric on a deleted run",
    );
    check(
        store.log_param(&id, Param::new("p", "v")).await,
        "log_param on a deleted run",
    );
    check(
        store.set_tag(&id, RunTag::new("t", "v")).await,
        "set_tag on a deleted run",
    );
    check(
        store
            .log_batch(
                &id,
                vec![Metric::new("m", 1.0, now, 0)],
                vec![Param::new("p", "v")],
                vec![RunTag::new("t", "v")],
            )
            .await,
        "log_batch on a deleted run",
    );
    check(
        store.delete_tag(&id, "existing").await,
        "delete_tag on a deleted run",
    );
    let e = expect_err(
        store
            .update_run_info(
                &id,
                UpdateRun {
                    status: Some(RunStatus::Finished),
                    ..Default::default()
                },
            )
            .await,
        ErrorKind::InvalidArgument,
        "update_run_info on a deleted run",
    );
    assert!(
        e.message.contains("must be in the 'active' state"),
        "update_run_info: message {:?} should say the run must be active",
        e.message
    );

    let run = get_run(store, &id).await;
    assert!(
        run.data.metrics.is_empty(),
        "a rejected write logged metrics"
    );
    assert!(run.data.params.is_empty(), "a rejected write logged params");
    assert_eq!(
        run.tag("existing"),
        Some("v"),
        "a rejected delete_tag deleted"
    );
    assert_eq!(
        run.info.status,
        RunStatus::Running,
        "a rejected update changed status"
    );

    ok(store.restore_run(&id).await, "restore_run");
    ok(
        store.log_metric(&id, Metric::new("m", 1.0, now, 0)).await,
        "log_metric after restore",
    );
    ok(
        store.log_param(&id, Param::new("p", "v")).await,
        "log_param after restore",
    );
}

/// Every write to a run id that does not exist is `NotFound`.
pub async fn run_unknown_run_writes_are_not_found(store: &dyn TrackingStore) {
    let id = random_run_id();
    let now = now_ms();
    expect_err(
        store.log_metric(&id, Metric::new("m", 1.0, now, 0)).await,
        ErrorKind::NotFound,
        "log_metric on an unknown run",
    );
    expect_err(
        store.log_param(&id, Param::new("p", "v")).await,
        ErrorKind::NotFound,
        "log_param on an unknown run",
    );
    expect_err(
        store.set_tag(&id, RunTag::new("t", "v")).await,
        ErrorKind::NotFound,
        "set_tag on an unknown run",
    );
    expect_err(
        store
            .log_batch(&id, vec![Metric::new("m", 1.0, now, 0)], vec![], vec![])
            .await,
        ErrorKind::NotFound,
        "log_batch on an unknown run",
    );
    expect_err(
        store.delete_tag(&id, "t").await,
        ErrorKind::NotFound,
        "delete_tag on an unknown run",
    );
    expect_err(
        store.update_run_info(&id, UpdateRun::default()).await,
        ErrorKind::NotFound,
        "update_run_info on an unknown run",
    );
    expect_err(
        store.delete_run(&id).await,
        ErrorKind::NotFound,
        "delete_run of an unknown run",
    );
    expect_err(
        store.restore_run(&id).await,
        ErrorKind::NotFound,
        "restore_run of an unknown run",
    );
}
