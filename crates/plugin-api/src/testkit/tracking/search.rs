//! `search_runs`: every comparator of api.md §5.2, `OR` and parentheses, ordering, views, pages.

use crate::ErrorKind;
use crate::entities::*;
use crate::search::SearchKind;
use crate::testkit::support::*;
use crate::tracking::*;

/// What to log on a run made by [`run_with`].
#[derive(Default)]
struct Spec {
    start_time: Option<i64>,
    run_name: Option<String>,
    user_id: &'static str,
    metrics: Vec<(&'static str, f64)>,
    params: Vec<(&'static str, &'static str)>,
    tags: Vec<(&'static str, &'static str)>,
}

/// Creates a run in `exp_id` and logs `spec` on it; returns the run id.
async fn run_with(store: &dyn TrackingStore, exp_id: &str, spec: Spec) -> String {
    let run = new_run_with(
        store,
        CreateRun {
            experiment_id: exp_id.to_string(),
            user_id: spec.user_id.to_string(),
            start_time: spec.start_time.unwrap_or_else(now_ms),
            tags: vec![],
            run_name: spec.run_name,
        },
    )
    .await;
    let id = run.info.run_id;
    let t = now_ms();
    let metrics = spec
        .metrics
        .iter()
        .map(|(k, v)| Metric::new(*k, *v, t, 0))
        .collect();
    let params = spec
        .params
        .iter()
        .map(|(k, v)| Param::new(*k, *v))
        .collect();
    let tags = spec.tags.iter().map(|(k, v)| RunTag::new(*k, *v)).collect();
    ok(
        store.log_batch(&id, metrics, params, tags).await,
        "log_batch",
    );
    id
}

/// Checks that each filter finds exactly its expected runs (in any order) in `exp_id`.
async fn check_filters(
    store: &dyn TrackingStore,
    exp_id: &str,
    cases: Vec<(String, Vec<&String>)>,
) {
    for (f, expected) in cases {
        let got = run_ids_matching(store, exp_id, &f).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(sorted(got), sorted(expected), "search_runs filter {f:?}");
    }
}

/// Checks that each `order_by` list returns exactly `expected`, in that order.
async fn check_orders(
    store: &dyn TrackingStore,
    exp_id: &str,
    cases: Vec<(&[&str], Vec<&String>)>,
) {
    for (order, expected) in cases {
        let got = run_ids_ordered(store, exp_id, order).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(got, expected, "search_runs order_by {order:?}");
    }
}

/// `> >= = != < <=` on the latest metric value; a run without the metric never matches.
pub async fn search_runs_metric_comparators(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-metric").await;
    let r1 = run_with(store, &exp, Spec::default()).await;
    // r1's earlier value 10 at step 0 must not count: only the latest (1 at step 1) does.
    ok(
        store
            .log_metric(&r1, Metric::new("a", 10.0, now_ms(), 0))
            .await,
        "log_metric",
    );
    ok(
        store
            .log_metric(&r1, Metric::new("a", 1.0, now_ms(), 1))
            .await,
        "log_metric",
    );
    let r2 = run_with(
        store,
        &exp,
        Spec {
            metrics: vec![("a", 2.0)],
            ..Default::default()
        },
    )
    .await;
    let r3 = run_with(
        store,
        &exp,
        Spec {
            metrics: vec![("a", 3.0)],
            ..Default::default()
        },
    )
    .await;
    let r4 = run_with(
        store,
        &exp,
        Spec {
            metrics: vec![("b", 5.0)],
            ..Default::default()
        },
    )
    .await;
    check_filters(
        store,
        &exp,
        vec![
            ("metrics.a > 2".into(), vec![&r3]),
            ("metrics.a >= 2".into(), vec![&r2, &r3]),
            ("metrics.a = 2".into(), vec![&r2]),
            ("metrics.a != 2".into(), vec![&r1, &r3]),
            ("metrics.a < 2".into(), vec![&r1]),
            ("metrics.a <= 2".into(), vec![&r1, &r2]),
            ("metrics.a > 5".into(), vec![]),
            ("metric.a = 1.0".into(), vec![&r1]),
            ("metrics.`a` = 3".into(), vec![&r3]),
            ("metrics.a >= 1.5 AND metrics.a < 3".into(), vec![&r2]),
            ("metrics.b = 5".into(), vec![&r4]),
            ("metrics.a > -100 AND metrics.b > 0".into(), vec![]),
            ("metrics.a < 2.5 and metrics.a > 0.5".into(), vec![&r1, &r2]),
        ],
    )
    .await;
}

/// Params: `= != LIKE ILIKE IS NULL IS NOT NULL`; `LIKE` is case-sensitive.
pub async fn search_runs_param_comparators(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-param").await;
    let p = |v: &'static str| Spec {
        params: vec![("p", v)],
        ..Default::default()
    };
    let r1 = run_with(store, &exp, p("alpha")).await;
    let r2 = run_with(store, &exp, p("Alpha")).await;
    let r3 = run_with(store, &exp, p("beta")).await;
    let r4 = run_with(
        store,
        &exp,
        Spec {
            params: vec![("q", "1")],
            ..Default::default()
        },
    )
    .await;
    check_filters(
        store,
        &exp,
        vec![
            ("params.p = 'alpha'".into(), vec![&r1]),
            ("params.p != 'alpha'".into(), vec![&r2, &r3]),
            ("params.p LIKE 'al%'".into(), vec![&r1]),
            ("params.p LIKE 'Al%'".into(), vec![&r2]),
            ("params.p LIKE '%eta'".into(), vec![&r3]),
            ("params.p LIKE '_lpha'".into(), vec![&r1, &r2]),
            ("params.p ILIKE 'AL%'".into(), vec![&r1, &r2]),
            ("params.p IS NULL".into(), vec![&r4]),
            ("params.p IS NOT NULL".into(), vec![&r1, &r2, &r3]),
            ("param.p = \"beta\"".into(), vec![&r3]),
            ("parameters.`p` = 'gamma'".into(), vec![]),
            (
                "params.p != 'alpha' AND params.p != 'beta'".into(),
                vec![&r2],
            ),
        ],
    )
    .await;
}

/// Tags: `= != LIKE ILIKE IS NULL IS NOT NULL`, including `mlflow.*` keys in backticks.
pub async fn search_runs_tag_comparators(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-tag").await;
    let t = |v: &'static str| Spec {
        tags: vec![("t", v)],
        ..Default::default()
    };
    let r1 = run_with(store, &exp, t("alpha")).await;
    let r2 = run_with(store, &exp, t("Alpha")).await;
    let r3 = run_with(store, &exp, t("beta")).await;
    let r4 = run_with(
        store,
        &exp,
        Spec {
            tags: vec![("u", "1")],
            ..Default::default()
        },
    )
    .await;
    let r3_name = get_run(store, &r3).await.info.run_name;
    check_filters(
        store,
        &exp,
        vec![
            ("tags.t = 'alpha'".into(), vec![&r1]),
            ("tags.t != 'alpha'".into(), vec![&r2, &r3]),
            ("tags.t LIKE 'al%'".into(), vec![&r1]),
            ("tags.t LIKE 'Al%'".into(), vec![&r2]),
            ("tags.t LIKE '%eta'".into(), vec![&r3]),
            ("tags.t ILIKE 'AL%'".into(), vec![&r1, &r2]),
            ("tags.t IS NULL".into(), vec![&r4]),
            ("tags.t IS NOT NULL".into(), vec![&r1, &r2, &r3]),
            ("tag.t = \"beta\"".into(), vec![&r3]),
            ("tags.u = '1'".into(), vec![&r4]),
            (format!("tags.`mlflow.runName` = '{r3_name}'"), vec![&r3]),
            (
                "tags.\"mlflow.runName\" IS NOT NULL".into(),
                vec![&r1, &r2, &r3, &r4],
            ),
        ],
    )
    .await;
}

/// `run_id IN (...)`, `NOT IN (...)`, `=` and `!=`.
pub async fn search_runs_run_id_in_and_not_in(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-id").await;
    let r1 = run_with(store, &exp, Spec::default()).await;
    let r2 = run_with(store, &exp, Spec::default()).await;
    let r3 = run_with(store, &exp, Spec::default()).await;
    let unknown = random_run_id();
    check_filters(
        store,
        &exp,
        vec![
            (format!("run_id IN ('{r1}', '{r3}')"), vec![&r1, &r3]),
            (
                format!("attributes.run_id IN ('{r2}', '{unknown}')"),
                vec![&r2],
            ),
            (format!("run_id NOT IN ('{r1}')"), vec![&r2, &r3]),
            (format!("run_id NOT IN ('{r1}', '{r2}', '{r3}')"), vec![]),
            (format!("run_id = '{r2}'"), vec![&r2]),
            (format!("attribute.run_id != '{r2}'"), vec![&r1, &r3]),
            (format!("run_id IN ('{unknown}')"), vec![]),
        ],
    )
    .await;
}

/// String attributes `run_name`, `status`, `user_id`, `artifact_uri` with `= != LIKE ILIKE`.
pub async fn search_runs_string_attributes(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-attr").await;
    let s = random_hex(8);
    let named = |name: String, user: &'static str| Spec {
        run_name: Some(name),
        user_id: user,
        ..Default::default()
    };
    let r1 = run_with(store, &exp, named(format!("alpha-{s}"), "alice")).await;
    let r2 = run_with(store, &exp, named(format!("Alpha-{s}"), "bob")).await;
    let r3 = run_with(store, &exp, named(format!("beta-{s}"), "alice")).await;
    for (id, status) in [(&r1, RunStatus::Finished), (&r3, RunStatus::Failed)] {
        ok(
            store
                .update_run_info(
                    id,
                    UpdateRun {
                        status: Some(status),
                        ..Default::default()
                    },
                )
                .await,
            "update_run_info",
        );
    }
    let uri1 = get_run(store, &r1).await.info.artifact_uri;
    check_filters(
        store,
        &exp,
        vec![
            (format!("run_name = 'alpha-{s}'"), vec![&r1]),
            (
                format!("attributes.run_name != 'alpha-{s}'"),
                vec![&r2, &r3],
            ),
            ("run_name LIKE 'alpha%'".into(), vec![&r1]),
            ("run_name ILIKE 'alpha%'".into(), vec![&r1, &r2]),
            (format!("attributes.`Run name` = 'beta-{s}'"), vec![&r3]),
            ("status = 'FINISHED'".into(), vec![&r1]),
            ("attributes.status != 'RUNNING'".into(), vec![&r1, &r3]),
            ("status LIKE 'F%'".into(), vec![&r1, &r3]),
            ("status = 'RUNNING'".into(), vec![&r2]),
            ("user_id = 'alice'".into(), vec![&r1, &r3]),
            ("user_id != 'alice'".into(), vec![&r2]),
            ("user_id LIKE 'b%'".into(), vec![&r2]),
            ("user_id ILIKE 'BO%'".into(), vec![&r2]),
            (format!("artifact_uri = '{uri1}'"), vec![&r1]),
            (format!("artifact_uri LIKE '%{r2}/artifacts'"), vec![&r2]),
            (format!("artifact_uri != '{uri1}'"), vec![&r2, &r3]),
        ],
    )
    .await;
}

/// Numeric attributes `start_time` (alias `created`) and `end_time`; a run without an end
/// time matches no `end_time` comparison.
pub async fn search_runs_time_attributes(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-time").await;
    let at = |t: i64| Spec {
        start_time: Some(t),
        ..Default::default()
    };
    let r1 = run_with(store, &exp, at(1000)).await;
    let r2 = run_with(store, &exp, at(2000)).await;
    let r3 = run_with(store, &exp, at(3000)).await;
    for (id, end) in [(&r1, 1500), (&r2, 2500)] {
        ok(
            store
                .update_run_info(
                    id,
                    UpdateRun {
                        end_time: Some(end),
                        ..Default::default()
                    },
                )
                .await,
            "update_run_info",
        );
    }
    check_filters(
        store,
        &exp,
        vec![
            ("start_time > 1500".into(), vec![&r2, &r3]),
            ("start_time >= 2000".into(), vec![&r2, &r3]),
            ("attributes.start_time = 2000".into(), vec![&r2]),
            ("start_time != 2000".into(), vec![&r1, &r3]),
            ("start_time < 2000".into(), vec![&r1]),
            ("start_time <= 2000".into(), vec![&r1, &r2]),
            ("created >= 3000".into(), vec![&r3]),
            ("end_time > 1000".into(), vec![&r1, &r2]),
            ("end_time <= 1500".into(), vec![&r1]),
            ("end_time != 1500".into(), vec![&r2]),
            ("end_time = 2500".into(), vec![&r2]),
            ("start_time >= 1000 AND end_time < 2000".into(), vec![&r1]),
        ],
    )
    .await;
}

/// Dataset filters on `name`, `digest` and `context` with `= != LIKE ILIKE IN NOT IN`; a run
/// matches when any of its dataset inputs does. Needs the `datasets` capability.
pub async fn search_runs_dataset_filters(store: &dyn TrackingStore) {
    if !supports(store, Capability::Datasets, "search_runs_dataset_filters") {
        return;
    }
    let exp = new_experiment(store, "conf-sr-ds").await;
    let s = random_hex(8);
    let ds = |name: String, digest: &str, context: Option<&str>| DatasetInput {
        tags: context
            .map(|c| vec![InputTag::new("mlflow.data.context", c)])
            .unwrap_or_default(),
        dataset: Dataset {
            name,
            digest: digest.into(),
            source_type: "local".into(),
            source: "{\"uri\": \"/data\"}".into(),
            schema: None,
            profile: None,
        },
    };
    let train = format!("train-{s}");
    let eval = format!("eval-{s}");
    let upper = format!("Train-{s}");
    let r1 = run_with(store, &exp, Spec::default()).await;
    let r2 = run_with(store, &exp, Spec::default()).await;
    let r3 = run_with(store, &exp, Spec::default()).await;
    let r4 = run_with(store, &exp, Spec::default()).await;
    let inputs = [
        (&r1, vec![ds(train.clone(), "d1a", Some("training"))]),
        (
            &r2,
            vec![
                ds(train.clone(), "d1a", Some("training")),
                ds(eval.clone(), "d2b", Some("eval")),
            ],
        ),
        (&r3, vec![ds(upper.clone(), "d3c", None)]),
    ];
    for (id, datasets) in inputs {
        ok(store.log_inputs(id, datasets, vec![]).await, "log_inputs");
    }
    let _ = &r4; // r4 has no dataset inputs and must match nothing.
    check_filters(
        store,
        &exp,
        vec![
            (format!("datasets.name = '{train}'"), vec![&r1, &r2]),
            (format!("datasets.name != '{train}'"), vec![&r2, &r3]),
            ("datasets.name LIKE 'train%'".into(), vec![&r1, &r2]),
            ("datasets.name ILIKE 'train%'".into(), vec![&r1, &r2, &r3]),
            (
                format!("datasets.name IN ('{eval}', '{upper}')"),
                vec![&r2, &r3],
            ),
            (format!("datasets.name NOT IN ('{train}')"), vec![&r2, &r3]),
            ("datasets.digest = 'd3c'".into(), vec![&r3]),
            ("datasets.digest != 'd1a'".into(), vec![&r2, &r3]),
            ("datasets.digest IN ('d1a')".into(), vec![&r1, &r2]),
            ("datasets.digest NOT IN ('d1a', 'd2b')".into(), vec![&r3]),
            ("datasets.digest LIKE 'd2%'".into(), vec![&r2]),
            ("datasets.digest ILIKE 'D3%'".into(), vec![&r3]),
            ("datasets.context = 'eval'".into(), vec![&r2]),
            ("datasets.context = 'training'".into(), vec![&r1, &r2]),
            ("datasets.context != 'training'".into(), vec![&r2]),
            ("datasets.context LIKE 'train%'".into(), vec![&r1, &r2]),
            ("datasets.context ILIKE 'EV%'".into(), vec![&r2]),
            ("datasets.context IN ('eval', 'test')".into(), vec![&r2]),
            ("datasets.context NOT IN ('eval')".into(), vec![&r1, &r2]),
            (
                format!("dataset.name = '{train}' AND datasets.context = 'eval'"),
                vec![&r2],
            ),
        ],
    )
    .await;
}

/// `OR` and parentheses (Cairn's extension of MLflow's grammar); `AND` binds tighter than `OR`.
pub async fn search_runs_or_and_parentheses(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-or").await;
    let spec = |a: Option<f64>, p: &'static str, t: &'static str| Spec {
        metrics: match a {
            Some(v) => vec![("a", v)],
            None => vec![],
        },
        params: vec![("p", p)],
        tags: vec![("t", t)],
        ..Default::default()
    };
    let r1 = run_with(store, &exp, spec(Some(2.0), "x", "y")).await;
    let r2 = run_with(store, &exp, spec(Some(0.0), "x", "y")).await;
    let r3 = run_with(store, &exp, spec(Some(2.0), "z", "n")).await;
    let r4 = run_with(store, &exp, spec(Some(0.0), "z", "y")).await;
    let r5 = run_with(store, &exp, spec(None, "x", "n")).await;
    check_filters(
        store,
        &exp,
        vec![
            (
                "(metrics.a > 1 OR params.p = 'x') AND tags.t = 'y'".into(),
                vec![&r1, &r2],
            ),
            (
                "metrics.a > 1 OR params.p = 'x'".into(),
                vec![&r1, &r2, &r3, &r5],
            ),
            (
                "metrics.a > 1 OR params.p = 'x' AND tags.t = 'n'".into(),
                vec![&r1, &r3, &r5],
            ),
            (
                "(metrics.a > 1 OR params.p = 'x') AND (tags.t = 'n' OR metrics.a < 1)".into(),
                vec![&r2, &r3, &r5],
            ),
            ("((params.p = 'z'))".into(), vec![&r3, &r4]),
            (
                "tags.t = 'y' or tags.t = 'n'".into(),
                vec![&r1, &r2, &r3, &r4, &r5],
            ),
            (
                "params.p = 'z' AND (metrics.a < 1 OR tags.t = 'n')".into(),
                vec![&r3, &r4],
            ),
        ],
    )
    .await;
}

/// Ordering by a metric, ASC and DESC: runs without the metric last in both directions; a NaN
/// value after every number (MLflow puts NaN just before missing values; the order between
/// NaN and missing is not checked).
pub async fn search_runs_order_by_metric_missing_last(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-ord-m").await;
    let m = |v: f64| Spec {
        metrics: vec![("m", v)],
        ..Default::default()
    };
    let r1 = run_with(store, &exp, m(3.0)).await;
    let r2 = run_with(store, &exp, m(-1.0)).await;
    let r3 = run_with(store, &exp, m(2.0)).await;
    let missing = run_with(store, &exp, Spec::default()).await;
    check_orders(
        store,
        &exp,
        vec![
            (&["metrics.m ASC"], vec![&r2, &r3, &r1, &missing]),
            (&["metrics.m"], vec![&r2, &r3, &r1, &missing]),
            (&["metrics.m DESC"], vec![&r1, &r3, &r2, &missing]),
            (&["metric.`m` desc"], vec![&r1, &r3, &r2, &missing]),
        ],
    )
    .await;

    let nan = run_with(store, &exp, m(f64::NAN)).await;
    for (order, numbers) in [
        ("metrics.m ASC", [&r2, &r3, &r1]),
        ("metrics.m DESC", [&r1, &r3, &r2]),
    ] {
        let got = run_ids_ordered(store, &exp, &[order]).await;
        let numbers: Vec<String> = numbers.into_iter().cloned().collect();
        assert_eq!(
            got[..3],
            numbers[..],
            "order_by {order}: numbers first, NaN and missing after them; got {got:?}"
        );
        assert_eq!(
            sorted(got[3..].to_vec()),
            sorted(vec![nan.clone(), missing.clone()]),
            "order_by {order}: NaN and missing last"
        );
    }
}

/// Ordering by a param, a tag and the attributes `start_time`, `end_time`, `run_name`,
/// `user_id`, ASC and DESC, with missing values last in both directions.
pub async fn search_runs_order_by_param_tag_attribute(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-ord").await;
    let s = random_hex(8);
    let r1 = run_with(
        store,
        &exp,
        Spec {
            start_time: Some(1000),
            run_name: Some(format!("c-{s}")),
            user_id: "u2",
            params: vec![("g", "b")],
            tags: vec![("h", "z")],
            ..Default::default()
        },
    )
    .await;
    let r2 = run_with(
        store,
        &exp,
        Spec {
            start_time: Some(3000),
            run_name: Some(format!("a-{s}")),
            user_id: "u1",
            params: vec![("g", "a")],
            ..Default::default()
        },
    )
    .await;
    let r3 = run_with(
        store,
        &exp,
        Spec {
            start_time: Some(2000),
            run_name: Some(format!("b-{s}")),
            user_id: "u3",
            tags: vec![("h", "y")],
            ..Default::default()
        },
    )
    .await;
    for (id, end) in [(&r1, 5000), (&r2, 4000)] {
        ok(
            store
                .update_run_info(
                    id,
                    UpdateRun {
                        end_time: Some(end),
                        ..Default::default()
                    },
                )
                .await,
            "update_run_info",
        );
    }
    check_orders(
        store,
        &exp,
        vec![
            (&["params.g ASC"], vec![&r2, &r1, &r3]),
            (&["params.g DESC"], vec![&r1, &r2, &r3]),
            (&["tags.h ASC"], vec![&r3, &r1, &r2]),
            (&["tags.h DESC"], vec![&r1, &r3, &r2]),
            (&["attributes.start_time ASC"], vec![&r1, &r3, &r2]),
            (&["start_time DESC"], vec![&r2, &r3, &r1]),
            (&["created ASC"], vec![&r1, &r3, &r2]),
            (&["end_time ASC"], vec![&r2, &r1, &r3]),
            (&["end_time DESC"], vec![&r1, &r2, &r3]),
            (&["run_name ASC"], vec![&r2, &r3, &r1]),
            (&["attributes.run_name DESC"], vec![&r1, &r3, &r2]),
            (&["user_id ASC"], vec![&r2, &r1, &r3]),
            (&["user_id DESC"], vec![&r3, &r1, &r2]),
        ],
    )
    .await;
}

/// Several order keys apply in turn; ties on all of them fall back to `start_time DESC`,
/// then `run_id ASC`.
pub async fn search_runs_order_by_multiple_keys(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-ord-multi").await;
    let spec = |g: Option<&'static str>, m: Option<f64>, start: i64| Spec {
        start_time: Some(start),
        params: match g {
            Some(g) => vec![("g", g)],
            None => vec![],
        },
        metrics: match m {
            Some(m) => vec![("m", m)],
            None => vec![],
        },
        ..Default::default()
    };
    let r1 = run_with(store, &exp, spec(Some("a"), Some(1.0), 1000)).await;
    let r2 = run_with(store, &exp, spec(Some("a"), Some(3.0), 1000)).await;
    let r3 = run_with(store, &exp, spec(Some("b"), Some(2.0), 1000)).await;
    let r4 = run_with(store, &exp, spec(Some("b"), None, 1000)).await;
    let r5 = run_with(store, &exp, spec(None, Some(5.0), 1000)).await;
    let r6 = run_with(store, &exp, spec(Some("c"), None, 500)).await;
    let r7 = run_with(store, &exp, spec(Some("c"), None, 2000)).await;
    let r8 = run_with(store, &exp, spec(Some("c"), None, 2000)).await;
    let (c_first, c_second) = if r7 < r8 { (&r7, &r8) } else { (&r8, &r7) };
    check_orders(
        store,
        &exp,
        vec![
            (
                &["params.g ASC", "metrics.m DESC"],
                vec![&r2, &r1, &r3, &r4, c_first, c_second, &r6, &r5],
            ),
            (
                &["params.g DESC", "metrics.m ASC"],
                vec![c_first, c_second, &r6, &r3, &r4, &r1, &r2, &r5],
            ),
        ],
    )
    .await;
}

/// Without `order_by`, runs come newest first (`start_time DESC`), ties by `run_id ASC`.
pub async fn search_runs_default_order(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-default").await;
    let at = |t: i64| Spec {
        start_time: Some(t),
        ..Default::default()
    };
    let a = run_with(store, &exp, at(5000)).await;
    let b = run_with(store, &exp, at(5000)).await;
    let c = run_with(store, &exp, at(5000)).await;
    let old = run_with(store, &exp, at(3000)).await;
    let new = run_with(store, &exp, at(7000)).await;
    let mut ties = vec![a, b, c];
    ties.sort();
    let expected: Vec<String> = std::iter::once(new)
        .chain(ties)
        .chain(std::iter::once(old))
        .collect();
    let got = run_ids_ordered(store, &exp, &[]).await;
    assert_eq!(
        got, expected,
        "default order: start_time DESC, then run_id ASC"
    );
    let again = run_ids_ordered(store, &exp, &[]).await;
    assert_eq!(again, got, "the default order is stable between calls");
}

/// `ACTIVE_ONLY` (the default), `DELETED_ONLY` and `ALL`.
pub async fn search_runs_view_types(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-view").await;
    let live = run_with(store, &exp, Spec::default()).await;
    let gone = run_with(store, &exp, Spec::default()).await;
    ok(store.delete_run(&gone).await, "delete_run");
    for (view, expected) in [
        (ViewType::ActiveOnly, vec![live.clone()]),
        (ViewType::DeletedOnly, vec![gone.clone()]),
        (ViewType::All, vec![live.clone(), gone.clone()]),
    ] {
        let got = run_ids(&all_runs(store, runs_request(&[&exp], None, vec![], view)).await);
        assert_eq!(sorted(got), sorted(expected), "search_runs {view:?}");
    }
}

/// Pages of 1, 2 and 3 runs over two experiments, for several orders and a filter, together
/// are exactly the one big page: same runs, same order, no duplicates, and they end.
pub async fn search_runs_pages_are_complete_and_stable(store: &dyn TrackingStore) {
    let e1 = new_experiment(store, "conf-sr-pages").await;
    let e2 = new_experiment(store, "conf-sr-pages").await;
    let mut all = Vec::new();
    for i in 0..11i64 {
        let exp = if i % 3 == 0 { &e2 } else { &e1 };
        let metrics = match i % 4 {
            0 => vec![],
            1 => vec![("m", 1.0)],
            2 => vec![("m", 2.0)],
            _ => vec![("m", 1.0), ("n", 0.5)],
        };
        let params = vec![("g", if i % 2 == 0 { "x" } else { "y" })];
        all.push(
            run_with(
                store,
                exp,
                Spec {
                    start_time: Some(1000 + (i % 3) * 10),
                    metrics,
                    params,
                    ..Default::default()
                },
            )
            .await,
        );
    }
    let filters = [
        None,
        Some("metrics.m >= 1 OR params.g = 'x'"),
        Some("params.g = 'y'"),
    ];
    let orders: [&[&str]; 4] = [
        &[],
        &["metrics.m DESC"],
        &["params.g ASC", "start_time ASC"],
        &["metrics.n ASC", "params.g DESC"],
    ];
    for f in filters {
        for order in orders {
            let req = runs_request(
                &[&e1, &e2],
                f.map(|f| filter(SearchKind::Runs, f)).unwrap_or(None),
                order_by(SearchKind::Runs, order),
                ViewType::ActiveOnly,
            );
            let whole = run_ids(&all_runs(store, req.clone()).await);
            if f.is_none() {
                assert_eq!(
                    sorted(whole.clone()),
                    sorted(all.clone()),
                    "one big page (order {order:?}) holds every run of both experiments"
                );
            }
            for size in 1..=3 {
                let paged = run_ids(
                    &all_runs(
                        store,
                        SearchRuns {
                            max_results: size,
                            ..req.clone()
                        },
                    )
                    .await,
                );
                let what = format!("pages of {size}, filter {f:?}, order {order:?}");
                assert_no_duplicates(&paged, &what);
                assert_eq!(paged, whole, "{what} differ from one big page");
            }
        }
    }
}

/// A page token the store never issued is `InvalidArgument`.
pub async fn search_runs_malformed_page_token_is_invalid_argument(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-token").await;
    run_with(store, &exp, Spec::default()).await;
    for token in ["%%% not a token %%%", "Z2FyYmFnZQ=="] {
        expect_err(
            store
                .search_runs(SearchRuns {
                    page_token: Some(token.into()),
                    ..runs_request(&[&exp], None, vec![], ViewType::ActiveOnly)
                })
                .await,
            ErrorKind::InvalidArgument,
            &format!("search_runs with page token {token:?}"),
        );
    }
}

/// An empty experiment list finds no runs (an empty last page).
pub async fn search_runs_empty_experiment_list_finds_nothing(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-empty").await;
    run_with(store, &exp, Spec::default()).await;
    let page = ok(
        store
            .search_runs(runs_request(&[], None, vec![], ViewType::All))
            .await,
        "search_runs with no experiment ids",
    );
    assert!(
        page.items.is_empty(),
        "found {} runs in no experiments",
        page.items.len()
    );
    assert_eq!(
        page.next_page_token, None,
        "an empty page has no next token"
    );
}

/// Search results carry the same info, latest metrics, params, tags (and dataset inputs) as
/// `get_run`.
pub async fn search_runs_returns_what_get_run_returns(store: &dyn TrackingStore) {
    let exp = new_experiment(store, "conf-sr-full").await;
    let id = run_with(
        store,
        &exp,
        Spec {
            metrics: vec![("loss", 0.25), ("acc", 0.75)],
            params: vec![("lr", "0.01"), ("batch", "32")],
            tags: vec![("team", "core")],
            ..Default::default()
        },
    )
    .await;
    ok(
        store
            .log_metric(&id, Metric::new("loss", 0.125, now_ms(), 5))
            .await,
        "log_metric",
    );
    if store.capabilities().datasets {
        ok(
            store
                .log_inputs(
                    &id,
                    vec![DatasetInput {
                        tags: vec![InputTag::new("mlflow.data.context", "training")],
                        dataset: Dataset {
                            name: "ds".into(),
                            digest: "abc123".into(),
                            source_type: "local".into(),
                            source: "{}".into(),
                            schema: Some("{\"cols\": 2}".into()),
                            profile: None,
                        },
                    }],
                    vec![],
                )
                .await,
            "log_inputs",
        );
    }
    ok(
        store
            .update_run_info(
                &id,
                UpdateRun {
                    status: Some(RunStatus::Finished),
                    end_time: Some(now_ms()),
                    run_name: None,
                },
            )
            .await,
        "update_run_info",
    );
    let expected = get_run(store, &id).await;
    let found = all_runs(
        store,
        runs_request(&[&exp], None, vec![], ViewType::ActiveOnly),
    )
    .await;
    assert_eq!(
        found.len(),
        1,
        "search found {} runs, expected 1",
        found.len()
    );
    let got = &found[0];
    assert_eq!(got.info, expected.info, "search_runs info vs get_run");
    assert_eq!(got.data, expected.data, "search_runs data vs get_run");
    assert_eq!(
        got.inputs.dataset_inputs, expected.inputs.dataset_inputs,
        "search_runs dataset inputs vs get_run"
    );
}
