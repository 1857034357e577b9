//! MLflow 3 LoggedModels (capability `logged_models`) and the legacy `log-model` history.

use crate::ErrorKind;
use crate::entities::*;
use crate::search::{Key, OrderBy, SearchKind};
use crate::testkit::support::*;
use crate::tracking::*;

async fn new_model(store: &dyn TrackingStore, exp: &str, name: &str) -> LoggedModel {
    ok(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: exp.to_string(),
                name: Some(name.to_string()),
                ..Default::default()
            })
            .await,
        &format!("create_logged_model({name})"),
    )
}

fn unknown_model_id() -> String {
    format!("m-{}", random_hex(32))
}

fn models_request(
    exp: &str,
    filter_str: Option<&str>,
    order: Vec<LoggedModelOrderBy>,
) -> SearchLoggedModels {
    SearchLoggedModels {
        experiment_ids: vec![exp.to_string()],
        filter: filter_str.and_then(|f| filter(SearchKind::LoggedModels, f)),
        datasets: vec![],
        max_results: 100,
        order_by: order,
        page_token: None,
    }
}

fn by_attribute(name: &str, ascending: bool) -> LoggedModelOrderBy {
    LoggedModelOrderBy {
        order: OrderBy {
            key: Key::attribute(name),
            ascending,
        },
        dataset: None,
    }
}

async fn all_models(store: &dyn TrackingStore, req: SearchLoggedModels) -> Vec<LoggedModel> {
    let what = format!("search_logged_models({req:?})");
    let size = req.max_results;
    collect_pages(&what, size, |page_token| {
        store.search_logged_models(SearchLoggedModels {
            page_token,
            ..req.clone()
        })
    })
    .await
}

fn names(models: &[LoggedModel]) -> Vec<String> {
    models.iter().map(|m| m.info.name.clone()).collect()
}

/// A new model is `LOGGED_MODEL_PENDING`, has id `m-` + 32 hex, its artifact URI is
/// `<experiment artifact_location>/models/<id>/artifacts`, and keeps its name, type, source
/// run, params and tags (ordered by key); `get_logged_model` returns the same; without a name
/// the store generates one.
pub async fn logged_model_create_and_get(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_create_and_get",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm").await;
    let location = ok(store.get_experiment(&exp).await, "get_experiment").artifact_location;
    let run = new_run(store, &exp).await.info.run_id;
    let name = unique_name("model");
    let m = ok(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: exp.clone(),
                name: Some(name.clone()),
                model_type: Some("agent".into()),
                source_run_id: Some(run.clone()),
                params: vec![
                    LoggedModelParameter::new("lr", "0.1"),
                    LoggedModelParameter::new("batch", "32"),
                ],
                tags: vec![
                    LoggedModelTag::new("zz", "1"),
                    LoggedModelTag::new("aa", "2"),
                ],
            })
            .await,
        "create_logged_model",
    );
    let info = &m.info;
    let id = info.model_id.clone();
    assert!(
        id.starts_with("m-") && is_lower_hex(&id[2..], 32),
        "model_id {id:?} should be m- and 32 lowercase hex characters"
    );
    assert_eq!(info.experiment_id, exp, "experiment_id");
    assert_eq!(info.name, name, "name");
    assert_eq!(
        info.status,
        LoggedModelStatus::Pending,
        "a new model is PENDING"
    );
    assert_eq!(info.model_type.as_deref(), Some("agent"), "model_type");
    assert_eq!(
        info.source_run_id.as_deref(),
        Some(run.as_str()),
        "source_run_id"
    );
    let root = location.trim_end_matches('/');
    assert_eq!(
        info.artifact_uri,
        format!("{root}/models/{id}/artifacts"),
        "artifact_uri"
    );
    assert!(
        info.creation_timestamp_ms > 0,
        "creation_timestamp_ms is set"
    );
    assert!(
        info.last_updated_timestamp_ms >= info.creation_timestamp_ms,
        "last_updated_timestamp_ms precedes creation"
    );
    assert_eq!(
        info.tags,
        vec![
            LoggedModelTag::new("aa", "2"),
            LoggedModelTag::new("zz", "1")
        ],
        "tags, ordered by key"
    );
    assert_eq!(
        m.data.params,
        vec![
            LoggedModelParameter::new("batch", "32"),
            LoggedModelParameter::new("lr", "0.1"),
        ],
        "params, ordered by key"
    );
    let got = ok(store.get_logged_model(&id, false).await, "get_logged_model");
    assert_eq!(
        got, m,
        "get_logged_model returns what create_logged_model returned"
    );

    let unnamed = ok(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: exp,
                ..Default::default()
            })
            .await,
        "create_logged_model without a name",
    );
    assert!(
        !unnamed.info.name.is_empty(),
        "a model created without a name got an empty name"
    );
    assert_ne!(unnamed.info.model_id, id, "two models got the same id");
}

/// Creating a model in a deleted experiment is `InvalidArgument`; in an unknown one `NotFound`.
pub async fn logged_model_create_in_deleted_or_unknown_experiment_fails(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_create_in_deleted_or_unknown_experiment_fails",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm-del").await;
    ok(store.delete_experiment(&exp).await, "delete_experiment");
    expect_err(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: exp,
                ..Default::default()
            })
            .await,
        ErrorKind::InvalidArgument,
        "create_logged_model in a deleted experiment",
    );
    expect_err(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: unknown_experiment_id(),
                ..Default::default()
            })
            .await,
        ErrorKind::NotFound,
        "create_logged_model in an unknown experiment",
    );
}

/// An unknown model id is `NotFound` (`"Logged model with ID '<id>' not found."`) for get,
/// finalize, delete and tag writes.
pub async fn logged_model_get_unknown_is_not_found(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_get_unknown_is_not_found",
    ) {
        return;
    }
    let id = unknown_model_id();
    let e = expect_err(
        store.get_logged_model(&id, false).await,
        ErrorKind::NotFound,
        "get_logged_model(unknown)",
    );
    assert!(
        e.message.contains(&id),
        "message {:?} should name the id",
        e.message
    );
    expect_err(
        store.get_logged_model(&id, true).await,
        ErrorKind::NotFound,
        "get_logged_model(unknown, allow_deleted)",
    );
    expect_err(
        store
            .finalize_logged_model(&id, LoggedModelStatus::Ready)
            .await,
        ErrorKind::NotFound,
        "finalize_logged_model(unknown)",
    );
    expect_err(
        store.delete_logged_model(&id).await,
        ErrorKind::NotFound,
        "delete_logged_model(unknown)",
    );
    expect_err(
        store
            .set_logged_model_tags(&id, vec![LoggedModelTag::new("k", "v")])
            .await,
        ErrorKind::NotFound,
        "set_logged_model_tags(unknown)",
    );
}

/// Finalizing sets the status (READY, or UPLOAD_FAILED) and returns the updated model.
pub async fn logged_model_finalize_ready(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_finalize_ready",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm-fin").await;
    let m = new_model(store, &exp, &unique_name("model")).await;
    let id = m.info.model_id.clone();
    let done = ok(
        store
            .finalize_logged_model(&id, LoggedModelStatus::Ready)
            .await,
        "finalize_logged_model",
    );
    assert_eq!(
        done.info.status,
        LoggedModelStatus::Ready,
        "returned status"
    );
    assert_eq!(done.info.model_id, id);
    let got = ok(store.get_logged_model(&id, false).await, "get_logged_model");
    assert_eq!(got.info.status, LoggedModelStatus::Ready, "stored status");
    assert!(
        got.info.last_updated_timestamp_ms >= m.info.last_updated_timestamp_ms,
        "last_updated_timestamp_ms went backwards"
    );

    let failed = new_model(store, &exp, &unique_name("model")).await;
    let done = ok(
        store
            .finalize_logged_model(&failed.info.model_id, LoggedModelStatus::UploadFailed)
            .await,
        "finalize_logged_model(UPLOAD_FAILED)",
    );
    assert_eq!(done.info.status, LoggedModelStatus::UploadFailed);
}

/// Model tags: set (upsert), overwrite, delete; deleting a missing tag is `NotFound`.
pub async fn logged_model_tags_set_overwrite_delete(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_tags_set_overwrite_delete",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm-tags").await;
    let id = new_model(store, &exp, &unique_name("model"))
        .await
        .info
        .model_id;
    let tags = |id: String| async move {
        ok(store.get_logged_model(&id, false).await, "get_logged_model")
            .info
            .tags
    };
    ok(
        store
            .set_logged_model_tags(
                &id,
                vec![LoggedModelTag::new("b", "2"), LoggedModelTag::new("a", "1")],
            )
            .await,
        "set_logged_model_tags",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![LoggedModelTag::new("a", "1"), LoggedModelTag::new("b", "2")],
        "tags after set"
    );
    ok(
        store
            .set_logged_model_tags(&id, vec![LoggedModelTag::new("a", "3")])
            .await,
        "set_logged_model_tags overwrite",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![LoggedModelTag::new("a", "3"), LoggedModelTag::new("b", "2")],
        "tags after overwrite"
    );
    ok(
        store.delete_logged_model_tag(&id, "b").await,
        "delete_logged_model_tag",
    );
    assert_eq!(
        tags(id.clone()).await,
        vec![LoggedModelTag::new("a", "3")],
        "tags after delete"
    );
    expect_err(
        store.delete_logged_model_tag(&id, "b").await,
        ErrorKind::NotFound,
        "delete_logged_model_tag of a missing tag",
    );
}

/// Model params are added to those given at creation; re-logging a value is a no-op, a
/// different value is `InvalidArgument`.
pub async fn logged_model_params(store: &dyn TrackingStore) {
    if !supports(store, Capability::LoggedModels, "logged_model_params") {
        return;
    }
    let exp = new_experiment(store, "conf-lm-params").await;
    let id = ok(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: exp,
                name: Some(unique_name("model")),
                params: vec![LoggedModelParameter::new("initial", "yes")],
                ..Default::default()
            })
            .await,
        "create_logged_model",
    )
    .info
    .model_id;
    ok(
        store
            .log_logged_model_params(
                &id,
                vec![
                    LoggedModelParameter::new("q", "2"),
                    LoggedModelParameter::new("p", "1"),
                ],
            )
            .await,
        "log_logged_model_params",
    );
    ok(
        store
            .log_logged_model_params(&id, vec![LoggedModelParameter::new("p", "1")])
            .await,
        "log_logged_model_params with the same value again",
    );
    expect_err(
        store
            .log_logged_model_params(&id, vec![LoggedModelParameter::new("p", "changed")])
            .await,
        ErrorKind::InvalidArgument,
        "log_logged_model_params with a different value",
    );
    let got = ok(store.get_logged_model(&id, false).await, "get_logged_model");
    assert_eq!(
        got.data.params,
        vec![
            LoggedModelParameter::new("initial", "yes"),
            LoggedModelParameter::new("p", "1"),
            LoggedModelParameter::new("q", "2"),
        ],
        "model params, ordered by key"
    );
}

/// Metrics logged on a run with a `model_id` appear in the model's `data.metrics` with their
/// step, dataset and run; metrics without the `model_id` do not.
pub async fn logged_model_metrics_come_from_runs(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_metrics_come_from_runs",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm-metrics").await;
    let id = new_model(store, &exp, &unique_name("model"))
        .await
        .info
        .model_id;
    let run = new_run(store, &exp).await.info.run_id;
    let t = now_ms();
    let acc = Metric {
        model_id: Some(id.clone()),
        dataset_name: Some("eval-set".into()),
        dataset_digest: Some("abc123".into()),
        ..Metric::new("acc", 0.9, t, 1)
    };
    let loss = Metric {
        model_id: Some(id.clone()),
        ..Metric::new("loss", 0.1, t, 1)
    };
    ok(
        store.log_metric(&run, acc).await,
        "log_metric with model_id",
    );
    ok(
        store.log_batch(&run, vec![loss], vec![], vec![]).await,
        "log_batch with model_id",
    );
    ok(
        store
            .log_metric(&run, Metric::new("unrelated", 5.0, t, 0))
            .await,
        "log_metric without model_id",
    );
    let got = ok(store.get_logged_model(&id, false).await, "get_logged_model")
        .data
        .metrics;
    let find = |k: &str| {
        got.iter()
            .find(|m| m.key == k)
            .unwrap_or_else(|| panic!("the model's metrics lack {k}: {got:?}"))
    };
    let a = find("acc");
    assert_eq!(
        (a.value, a.step, a.timestamp),
        (0.9, 1, t),
        "acc value, step, timestamp"
    );
    assert_eq!(
        a.dataset_name.as_deref(),
        Some("eval-set"),
        "acc dataset_name"
    );
    assert_eq!(
        a.dataset_digest.as_deref(),
        Some("abc123"),
        "acc dataset_digest"
    );
    assert_eq!(a.run_id.as_deref(), Some(run.as_str()), "acc run_id");
    let l = find("loss");
    assert_eq!((l.value, l.step), (0.1, 1), "loss value and step");
    assert!(
        got.iter().all(|m| m.key != "unrelated"),
        "a metric logged without model_id appears in the model: {got:?}"
    );
    let run_metrics = get_run(store, &run).await.data.metrics;
    assert!(
        run_metrics.iter().any(|m| m.key == "acc"),
        "a metric logged with model_id is still a run metric"
    );
}

/// Search by name, status, tag, param and metric; order by name ASC/DESC; default order
/// newest first; pages of one give the same as one big page.
pub async fn logged_model_search_filter_order_pages(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_search_filter_order_pages",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm-search").await;
    let s = random_hex(8);
    let (na, nb, nc) = (format!("a-{s}"), format!("b-{s}"), format!("c-{s}"));
    let a = new_model(store, &exp, &na).await.info.model_id;
    let b = new_model(store, &exp, &nb).await.info.model_id;
    let c = new_model(store, &exp, &nc).await.info.model_id;
    for id in [&a, &c] {
        ok(
            store
                .finalize_logged_model(id, LoggedModelStatus::Ready)
                .await,
            "finalize_logged_model",
        );
    }
    ok(
        store
            .set_logged_model_tags(&a, vec![LoggedModelTag::new("k", "v")])
            .await,
        "set_logged_model_tags",
    );
    ok(
        store
            .set_logged_model_tags(&b, vec![LoggedModelTag::new("k", "w")])
            .await,
        "set_logged_model_tags",
    );
    ok(
        store
            .log_logged_model_params(&a, vec![LoggedModelParameter::new("p", "1")])
            .await,
        "log_logged_model_params",
    );
    let run = new_run(store, &exp).await.info.run_id;
    for (id, v) in [(&a, 0.9), (&c, 0.5)] {
        ok(
            store
                .log_metric(
                    &run,
                    Metric {
                        model_id: Some(id.clone()),
                        ..Metric::new("acc", v, now_ms(), 0)
                    },
                )
                .await,
            "log_metric with model_id",
        );
    }

    let find = |f: String| {
        let exp = exp.clone();
        async move {
            sorted(names(
                &all_models(store, models_request(&exp, Some(&f), vec![])).await,
            ))
        }
    };
    assert_eq!(
        find(format!("name = '{na}'")).await,
        vec![na.clone()],
        "name ="
    );
    assert_eq!(
        find("name LIKE 'b-%'".into()).await,
        vec![nb.clone()],
        "name LIKE"
    );
    assert_eq!(
        find("status = 'LOGGED_MODEL_READY'".into()).await,
        vec![na.clone(), nc.clone()],
        "status ="
    );
    assert_eq!(
        find("tags.k = 'v'".into()).await,
        vec![na.clone()],
        "tags.k ="
    );
    assert_eq!(
        find("tags.k != 'v'".into()).await,
        vec![nb.clone()],
        "tags.k !="
    );
    assert_eq!(
        find("params.p = '1'".into()).await,
        vec![na.clone()],
        "params.p ="
    );
    assert_eq!(
        find("metrics.acc > 0.6".into()).await,
        vec![na.clone()],
        "metrics.acc >"
    );
    assert_eq!(
        find("metrics.acc <= 0.9".into()).await,
        vec![na.clone(), nc.clone()],
        "metrics.acc <="
    );

    let asc = vec![na.clone(), nb.clone(), nc.clone()];
    let desc: Vec<String> = asc.iter().rev().cloned().collect();
    let ordered = |ascending: bool, size: usize| {
        let exp = exp.clone();
        async move {
            names(
                &all_models(
                    store,
                    SearchLoggedModels {
                        max_results: size,
                        ..models_request(&exp, None, vec![by_attribute("name", ascending)])
                    },
                )
                .await,
            )
        }
    };
    assert_eq!(ordered(true, 100).await, asc, "order by name ASC");
    assert_eq!(ordered(false, 100).await, desc, "order by name DESC");
    assert_eq!(
        ordered(true, 1).await,
        asc,
        "order by name ASC in pages of 1"
    );
    assert_eq!(
        ordered(false, 2).await,
        desc,
        "order by name DESC in pages of 2"
    );

    let default = all_models(store, models_request(&exp, None, vec![])).await;
    assert_eq!(
        sorted(names(&default)),
        asc,
        "the default order returns every model"
    );
    let times: Vec<i64> = default
        .iter()
        .map(|m| m.info.creation_timestamp_ms)
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "default order is creation_timestamp DESC, got {times:?}"
    );
    let paged = all_models(
        store,
        SearchLoggedModels {
            max_results: 1,
            ..models_request(&exp, None, vec![])
        },
    )
    .await;
    assert_eq!(
        names(&paged),
        names(&default),
        "default order in pages of 1"
    );
}

/// A deleted model is `NotFound` for get (unless `allow_deleted`) and for a second delete,
/// and search no longer finds it.
pub async fn logged_model_delete(store: &dyn TrackingStore) {
    if !supports(store, Capability::LoggedModels, "logged_model_delete") {
        return;
    }
    let exp = new_experiment(store, "conf-lm-delete").await;
    let keep = new_model(store, &exp, &unique_name("keep"))
        .await
        .info
        .model_id;
    let gone = new_model(store, &exp, &unique_name("gone"))
        .await
        .info
        .model_id;
    ok(
        store.delete_logged_model(&gone).await,
        "delete_logged_model",
    );
    expect_err(
        store.get_logged_model(&gone, false).await,
        ErrorKind::NotFound,
        "get_logged_model of a deleted model",
    );
    let got = ok(
        store.get_logged_model(&gone, true).await,
        "get_logged_model(allow_deleted) of a deleted model",
    );
    assert_eq!(got.info.model_id, gone);
    expect_err(
        store.delete_logged_model(&gone).await,
        ErrorKind::NotFound,
        "delete_logged_model twice",
    );
    let found: Vec<String> = all_models(store, models_request(&exp, None, vec![]))
        .await
        .into_iter()
        .map(|m| m.info.model_id)
        .collect();
    assert_eq!(found, vec![keep], "search after delete");
}

/// `log_outputs` links a model to a run at a step (`run.outputs.model_outputs`).
pub async fn logged_model_log_outputs_links_run(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::LoggedModels,
        "logged_model_log_outputs_links_run",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-lm-out").await;
    let id = new_model(store, &exp, &unique_name("model"))
        .await
        .info
        .model_id;
    let run = new_run(store, &exp).await.info.run_id;
    let out = ModelOutput {
        model_id: id,
        step: 3,
    };
    ok(
        store.log_outputs(&run, vec![out.clone()]).await,
        "log_outputs",
    );
    let got = get_run(store, &run).await;
    assert_eq!(
        got.outputs.model_outputs,
        vec![out],
        "model outputs of the run"
    );
}

/// The legacy `record_logged_model` appends each model JSON, in order, to the JSON list in
/// tag `mlflow.log-model.history`.
pub async fn record_logged_model_appends_history(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-log-model").await;
    let run = new_run(store, &exp).await.info.run_id;
    let model = |path: &str| {
        serde_json::json!({
            "run_id": run,
            "artifact_path": path,
            "utc_time_created": "2024-01-01 00:00:00.000000",
            "flavors": {"python_function": {"loader_module": "mlflow.sklearn"}},
        })
    };
    let (first, second) = (model("model"), model("model2"));
    ok(
        store.record_logged_model(&run, first.clone()).await,
        "record_logged_model",
    );
    ok(
        store.record_logged_model(&run, second.clone()).await,
        "record_logged_model again",
    );
    let tag = get_run(store, &run)
        .await
        .tag("mlflow.log-model.history")
        .map(str::to_string)
        .expect("tag mlflow.log-model.history is set");
    let history: Vec<serde_json::Value> = serde_json::from_str(&tag)
        .unwrap_or_else(|e| panic!("mlflow.log-model.history {tag:?} is not a JSON list: {e}"));
    assert_eq!(
        history,
        vec![first, second],
        "the model history, in logging order"
    );
}
