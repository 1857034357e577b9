//! Runs: random runs (metrics with NaN and infinities, params, tags, dataset inputs, statuses,
//! deletions) searched with random filters (AND and OR to depth 3) and orderings.

use super::check;
use crate::TrackingStore;
use crate::entities::{
    Dataset, DatasetInput, InputTag, Metric, Param, Run, RunStatus, RunTag, ViewType,
};
use crate::search::{
    Comparison, Entity, Expr, Key, Op, OrderBy, SearchKind, Value, eval, parse_filter,
    parse_order_by,
};
use crate::tracking::{CreateExperiment, CreateRun, SearchRuns, UpdateRun};
use futures_executor::block_on;
use proptest::prelude::*;

/// For random runs, filters, orderings, view types and page sizes, `search_runs` returns the
/// runs the reference evaluator ([`eval`]) selects, in its order, page by page to the end; each
/// of `cases` cases logs its runs into a store `open` returns.
pub fn runs_match_the_reference_evaluator<S: TrackingStore>(open: impl Fn() -> S, cases: u32) {
    check(
        cases,
        (
            prop::collection::vec(run_spec(), 0..10),
            prop::option::of(expr()),
            prop::collection::vec(order_key(), 0..3),
            pick(&[ViewType::ActiveOnly, ViewType::DeletedOnly, ViewType::All][..]),
            1usize..5,
        ),
        |(specs, filter, order, view, page_size)| {
            // Round-trip through the text form, so the tree is exactly what the parser produces.
            let filter_text = filter.as_ref().map(|f| f.to_string()).unwrap_or_default();
            let filter = parse_filter(SearchKind::Runs, &filter_text).unwrap();
            let order_by: Vec<OrderBy> = parse_order_by(SearchKind::Runs, &order).unwrap();

            block_on(async {
                let store = open();
                let exp = populate(&store, &specs).await;

                // Reference: every run, judged and sorted by the evaluator.
                let everything = store
                    .search_runs(SearchRuns {
                        experiment_ids: vec![exp.clone()],
                        filter: None,
                        view_type: ViewType::All,
                        max_results: 1000,
                        order_by: vec![],
                        page_token: None,
                    })
                    .await
                    .unwrap()
                    .items;
                prop_assert_eq!(everything.len(), specs.len());
                let mut expected: Vec<&Run> = everything
                    .iter()
                    .filter(|r| view.includes(r.info.lifecycle_stage))
                    .filter(|r| filter.as_ref().is_none_or(|f| eval::matches_run(f, r)))
                    .collect();
                expected.sort_by(|a, b| eval::compare_runs(&order_by, a, b));
                let expected: Vec<&str> = expected.iter().map(|r| r.info.run_id.as_str()).collect();

                // The store, page by page to the end.
                let mut got = Vec::new();
                let mut token = None;
                loop {
                    let page = store
                        .search_runs(SearchRuns {
                            experiment_ids: vec![exp.clone()],
                            filter: filter.clone(),
                            view_type: view,
                            max_results: page_size,
                            order_by: order_by.clone(),
                            page_token: token.take(),
                        })
                        .await
                        .unwrap();
                    prop_assert!(page.items.len() <= page_size);
                    got.extend(page.items.into_iter().map(|r| r.info.run_id));
                    match page.next_page_token {
                        Some(t) => token = Some(t),
                        None => break,
                    }
                    prop_assert!(got.len() <= specs.len(), "pagination does not end");
                }
                prop_assert_eq!(got, expected, "filter: {} order: {:?}", filter_text, order);
                Ok(())
            })
        },
    );
}

const METRICS: &[&str] = &["m1", "m2"];
const PARAMS: &[&str] = &["p1", "p2"];
const TAGS: &[&str] = &["t1", "t2"];
const STRINGS: &[&str] = &["a", "A", "ab", "b%", "a_c", "abc", ""];
const PATTERNS: &[&str] = &["a%", "%b%", "A%", "a_", "%", "_", "ab", "%c"];
const NUMBERS: &[f64] = &[-1.0, 0.0, 0.5, 1.0, 2.0];
const DATASETS: &[&str] = &["train", "eval", "Train"];
const CONTEXTS: &[&str] = &["training", "testing"];

/// One generated run before it is logged.
#[derive(Debug, Clone)]
struct RunSpec {
    name: &'static str,
    start_time: i64,
    status: Option<RunStatus>,
    deleted: bool,
    metrics: Vec<(&'static str, f64, i64)>,
    params: Vec<(&'static str, &'static str)>,
    tags: Vec<(&'static str, &'static str)>,
    datasets: Vec<(&'static str, &'static str)>,
}

fn pick<T: Clone + std::fmt::Debug + 'static>(
    items: &'static [T],
) -> impl Strategy<Value = T> + Clone {
    prop::sample::select(items)
}

fn metric_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => pick(NUMBERS),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

fn run_spec() -> impl Strategy<Value = RunSpec> {
    (
        pick(&["alpha", "Alpha", "beta", "a_c"][..]),
        0i64..4,
        prop::option::of(pick(
            &[RunStatus::Finished, RunStatus::Failed, RunStatus::Killed][..],
        )),
        prop::bool::weighted(0.2),
        prop::collection::vec((pick(METRICS), metric_value(), 0i64..3), 0..4),
        prop::collection::btree_map(pick(PARAMS), pick(STRINGS), 0..3),
        prop::collection::btree_map(pick(TAGS), pick(STRINGS), 0..3),
        prop::collection::btree_map(pick(DATASETS), pick(CONTEXTS), 0..3),
    )
        .prop_map(
            |(name, start_time, status, deleted, metrics, params, tags, datasets)| RunSpec {
                name,
                start_time,
                status,
                deleted,
                metrics,
                params: params.into_iter().collect(),
                tags: tags.into_iter().collect(),
                datasets: datasets.into_iter().collect(),
            },
        )
}

fn string_value(op: Op) -> impl Strategy<Value = Value> {
    match op {
        Op::Like | Op::ILike => pick(PATTERNS).prop_map(|s| Value::String(s.into())).boxed(),
        _ => pick(STRINGS).prop_map(|s| Value::String(s.into())).boxed(),
    }
}

fn comparison() -> impl Strategy<Value = Comparison> {
    let numeric_ops = pick(&[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge][..]);
    let string_ops = pick(&[Op::Eq, Op::Ne, Op::Like, Op::ILike][..]);
    let kv_ops = pick(
        &[
            Op::Eq,
            Op::Ne,
            Op::Like,
            Op::ILike,
            Op::IsNull,
            Op::IsNotNull,
        ][..],
    );
    let metric =
        (pick(METRICS), numeric_ops.clone(), pick(NUMBERS)).prop_map(|(k, op, v)| Comparison {
            key: Key::new(Entity::Metric, k),
            op,
            value: Value::Number(v),
        });
    let kv = (prop::bool::ANY, kv_ops).prop_flat_map(|(is_param, op)| {
        let (entity, keys) = if is_param {
            (Entity::Param, PARAMS)
        } else {
            (Entity::Tag, TAGS)
        };
        let value = match op {
            Op::IsNull | Op::IsNotNull => Just(Value::None).boxed(),
            _ => string_value(op).boxed(),
        };
        (pick(keys), value).prop_map(move |(k, value)| Comparison {
            key: Key::new(entity, k),
            op,
            value,
        })
    });
    let name = string_ops
        .clone()
        .prop_flat_map(|op| {
            prop_oneof![
                string_value(op),
                pick(&["alpha", "Alpha", "beta"][..]).prop_map(|s| Value::String(s.into()))
            ]
            .prop_map(move |v| (op, v))
        })
        .prop_map(|(op, value)| Comparison {
            key: Key::attribute("run_name"),
            op,
            value,
        });
    let status = pick(&["RUNNING", "FINISHED", "FAILED"][..]).prop_map(|s| Comparison {
        key: Key::attribute("status"),
        op: Op::Eq,
        value: Value::String(s.into()),
    });
    let start = (numeric_ops, 0i64..4).prop_map(|(op, v)| Comparison {
        key: Key::attribute("start_time"),
        op,
        value: Value::Number(v as f64),
    });
    let dataset = (
        pick(&["name", "context"][..]),
        pick(&[Op::Eq, Op::Ne, Op::Like, Op::ILike, Op::In, Op::NotIn][..]),
    )
        .prop_flat_map(|(field, op)| {
            let vocab: &'static [&'static str] = if field == "name" { DATASETS } else { CONTEXTS };
            let value = match op {
                Op::In | Op::NotIn => prop::sample::subsequence(vocab, 1..=vocab.len())
                    .prop_map(|v| Value::List(v.into_iter().map(String::from).collect()))
                    .boxed(),
                Op::Like | Op::ILike => pick(&["t%", "%ing", "T%", "%a%"][..])
                    .prop_map(|s| Value::String(s.into()))
                    .boxed(),
                _ => pick(vocab).prop_map(|s| Value::String(s.into())).boxed(),
            };
            value.prop_map(move |value| Comparison {
                key: Key::new(Entity::Dataset, field),
                op,
                value,
            })
        });
    prop_oneof![3 => metric, 3 => kv, 1 => name, 1 => status, 1 => start, 2 => dataset]
}

fn expr() -> impl Strategy<Value = Expr> {
    comparison()
        .prop_map(Expr::Compare)
        .prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                prop::collection::vec(inner, 2..4).prop_map(Expr::Or),
            ]
        })
}

fn order_key() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        pick(METRICS).prop_map(|k| format!("metrics.{k}")),
        pick(PARAMS).prop_map(|k| format!("params.{k}")),
        pick(TAGS).prop_map(|k| format!("tags.{k}")),
        pick(&["run_name", "start_time", "status", "end_time"][..]).prop_map(String::from),
    ];
    (key, pick(&["", " ASC", " DESC"][..])).prop_map(|(k, d)| format!("{k}{d}"))
}

/// Logs `specs` into `store`, in a new experiment whose id it returns.
async fn populate(store: &dyn TrackingStore, specs: &[RunSpec]) -> String {
    let exp = store
        .create_experiment(CreateExperiment {
            name: "prop".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for spec in specs {
        let run = store
            .create_run(CreateRun {
                experiment_id: exp.clone(),
                user_id: "u".into(),
                start_time: spec.start_time,
                tags: vec![],
                run_name: Some(spec.name.into()),
            })
            .await
            .unwrap();
        let id = run.info.run_id;
        let metrics = spec
            .metrics
            .iter()
            .enumerate()
            .map(|(i, (k, v, step))| Metric::new(*k, *v, i as i64, *step))
            .collect();
        let params = spec
            .params
            .iter()
            .map(|(k, v)| Param::new(*k, *v))
            .collect();
        let tags = spec.tags.iter().map(|(k, v)| RunTag::new(*k, *v)).collect();
        store.log_batch(&id, metrics, params, tags).await.unwrap();
        let inputs = spec
            .datasets
            .iter()
            .map(|(name, context)| DatasetInput {
                tags: vec![InputTag::new("mlflow.data.context", *context)],
                dataset: Dataset {
                    name: (*name).into(),
                    digest: format!("d-{name}"),
                    source_type: "local".into(),
                    source: "{}".into(),
                    schema: None,
                    profile: None,
                },
            })
            .collect();
        store.log_inputs(&id, inputs, vec![]).await.unwrap();
        if let Some(status) = spec.status {
            store
                .update_run_info(
                    &id,
                    UpdateRun {
                        status: Some(status),
                        end_time: Some(10 + spec.start_time),
                        run_name: None,
                    },
                )
                .await
                .unwrap();
        }
        if spec.deleted {
            store.delete_run(&id).await.unwrap();
        }
    }
    exp
}
