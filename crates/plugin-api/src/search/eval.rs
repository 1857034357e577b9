//! The reference evaluator: what a filter and an ordering mean, over plugin-api types.
//!
//! This module is the normative meaning of an [`Expr`] and of a list of [`OrderBy`] keys.
//! Simple stores may filter and sort with it; SQL stores translate the tree instead and are
//! property-tested against it row for row. The rules are chosen so a SQL translation can
//! follow them exactly:
//!
//! * **Missing values.** A comparison whose left-hand side is missing (a run without that
//!   metric, param or tag, a run without `end_time`, ...) is **false** for every comparator
//!   except `IS NULL`; `IS NOT NULL` is true iff the value is present. So `!=` and `NOT IN` are
//!   false on a missing value, as in SQL.
//! * **NaN** metric values never satisfy a comparison (as if missing); when ordering they sort
//!   after every number and before missing values, as MLflow orders them. ±Infinity are
//!   ordinary numbers.
//! * **Numbers** (metrics, timestamps, `version_number`) compare as `f64`.
//! * **Strings** compare by bytes (Rust's `str` order, SQLite's `BINARY` collation); `=` and `!=`
//!   are case-sensitive. `LIKE` is case-sensitive with `%` (any run of characters) and `_`
//!   (exactly one Unicode scalar) and no escape character; `ILIKE` folds ASCII letters only,
//!   as SQLite's `LIKE` does. See [`like`].
//! * **`IN` / `NOT IN`** test membership of the string value in the list.
//! * **Datasets** (`datasets.name|digest|context`, runs only): a run matches if **any** of its
//!   dataset inputs matches; `context` is the value of the input tag `mlflow.data.context`, and
//!   an input without that tag does not match.
//! * **Ordering.** Each key compares values in its direction; NaN and then missing values sort
//!   **last** in both directions. Numbers sort before strings when one key mixes them (only
//!   `experiment_id` can). Every search then appends fixed tie-breakers (see each `compare_*`),
//!   so the order is total.
//!
//! One mechanism serves every entity: the [`Searchable`] trait gives attribute, metric, param,
//! tag and dataset lookups, and [`matches()`] / [`compare`] work over it. The `matches_*` and
//! `compare_*` functions are those two plus each search's own tie-breakers and lookups.

use super::{Comparison, Entity, Expr, Key, Op, OrderBy, Value};
use crate::entities::{Experiment, LoggedModel, Metric, Run};
use crate::model_registry::{ModelVersion, RegisteredModel};
use crate::tracking::{DatasetRef, LoggedModelOrderBy};
use std::cmp::Ordering;

/// The input tag holding a dataset input's context (`training`, `evaluation`, ...).
pub const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

/// The registry tag that marks a registered model (or version) as a prompt. A model without
/// it reads as `'false'`, so `= 'false'` and `!= 'true'` match ordinary models (api.md §5.4).
pub const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// A value read from an entity for filtering or ordering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// A string (compared by bytes).
    Str(&'a str),
    /// A number (compared as `f64`; NaN counts as missing).
    Num(f64),
}

/// The lookups the evaluator needs from an entity. Implemented for the plugin-api entities;
/// a store with its own row type may implement it to reuse [`matches()`] and [`compare`].
pub trait Searchable {
    /// The attribute with canonical name `name` (as the parser produces it), or `None` when
    /// the entity has no such attribute or its value is unset.
    fn attribute_field(&self, name: &str) -> Option<Field<'_>>;

    /// The attribute as it sorts; differs from [`Searchable::attribute_field`] only where an
    /// attribute filters as a string but sorts as a number (`experiment_id`).
    fn sort_field(&self, name: &str) -> Option<Field<'_>> {
        self.attribute_field(name)
    }

    /// The latest value of metric `key`.
    fn metric_value(&self, key: &str) -> Option<f64> {
        let _ = key;
        None
    }

    /// The value of param `key`.
    fn param_value(&self, key: &str) -> Option<&str> {
        let _ = key;
        None
    }

    /// The value of tag `key`.
    fn tag_value(&self, key: &str) -> Option<&str> {
        let _ = key;
        None
    }

    /// A trace's request-metadata value.
    fn metadata_value(&self, key: &str) -> Option<&str> {
        let _ = key;
        None
    }
    /// Whether some span's `field` (`name`, `type`, `status`) satisfies `pred` (traces).
    fn any_span(&self, field: &str, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        let _ = (field, pred);
        false
    }

    /// Whether `pred` holds for the `field` (`name`, `digest` or `context`) of any dataset
    /// input; inputs lacking the field are skipped.
    fn any_dataset(&self, field: &str, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        let _ = (field, pred);
        false
    }
}

/// The value of `entity.name` in `item`, with NaN read as missing; `sort` selects the sort form of
/// attributes. Dataset keys have no single value and read as missing.
fn field<'a, T: Searchable + ?Sized>(
    item: &'a T,
    entity: Entity,
    name: &str,
    sort: bool,
) -> Option<Field<'a>> {
    let value = match entity {
        Entity::Attribute if sort => item.sort_field(name),
        Entity::Attribute => item.attribute_field(name),
        Entity::Metric => item.metric_value(name).map(Field::Num),
        Entity::Param => item.param_value(name).map(Field::Str),
        Entity::Tag => item.tag_value(name).map(Field::Str),
        Entity::Metadata => item.metadata_value(name).map(Field::Str),
        Entity::Dataset | Entity::Span | Entity::Feedback | Entity::Expectation | Entity::Issue => {
            None
        }
    };
    // NaN never satisfies a comparison, but it sorts (after every number, before missing).
    value.filter(|v| sort || !matches!(v, Field::Num(n) if n.is_nan()))
}

/// Whether `item` satisfies `expr`. An empty `And` holds and an empty `Or` does not (the
/// parser never produces either).
pub fn matches<T: Searchable + ?Sized>(expr: &Expr, item: &T) -> bool {
    match expr {
        Expr::And(items) => items.iter().all(|e| matches(e, item)),
        Expr::Or(items) => items.iter().any(|e| matches(e, item)),
        Expr::Compare(c) => comparison_holds(c, item),
    }
}

/// Whether one comparison holds for `item`.
pub fn comparison_holds<T: Searchable + ?Sized>(c: &Comparison, item: &T) -> bool {
    if c.key.entity == Entity::Span {
        return item.any_span(&c.key.name, &mut |s| {
            test(c.op, &c.value, Some(Field::Str(s)))
        });
    }
    if c.key.entity == Entity::Dataset {
        return item.any_dataset(&c.key.name, &mut |s| {
            test(c.op, &c.value, Some(Field::Str(s)))
        });
    }
    test(
        c.op,
        &c.value,
        field(item, c.key.entity, &c.key.name, false),
    )
}

/// Applies `op` to a left-hand side (`None` when missing) and a right-hand side. Mismatched
/// types (a number against a string) are false.
fn test(op: Op, value: &Value, lhs: Option<Field<'_>>) -> bool {
    let Some(lhs) = lhs else {
        return op == Op::IsNull;
    };
    match (op, lhs, value) {
        (Op::IsNull, ..) => false,
        (Op::IsNotNull, ..) => true,
        (Op::In, Field::Str(s), Value::List(list)) => list.iter().any(|v| v == s),
        (Op::NotIn, Field::Str(s), Value::List(list)) => !list.iter().any(|v| v == s),
        (Op::Like, Field::Str(s), Value::String(p)) => like(p, s, false),
        (Op::ILike, Field::Str(s), Value::String(p)) => like(p, s, true),
        (op, Field::Num(x), Value::Number(y)) => x.partial_cmp(y).is_some_and(|o| holds(op, o)),
        (op, Field::Str(s), Value::String(v)) => holds(op, s.as_bytes().cmp(v.as_bytes())),
        _ => false,
    }
}

/// Whether an ordering satisfies a relational comparator.
fn holds(op: Op, o: Ordering) -> bool {
    match op {
        Op::Eq => o.is_eq(),
        Op::Ne => o.is_ne(),
        Op::Lt => o.is_lt(),
        Op::Le => o.is_le(),
        Op::Gt => o.is_gt(),
        Op::Ge => o.is_ge(),
        _ => false,
    }
}

/// SQL `LIKE`: `%` matches any run of characters (also none), `_` exactly one character
/// (Unicode scalar), everything else itself; there is no escape character. With
/// `case_insensitive`, ASCII letters match either case and other characters match exactly —
/// what SQLite's `LIKE` does without ICU.
pub fn like(pattern: &str, text: &str, case_insensitive: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let same = |a: char, b: char| {
        if case_insensitive {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Greedy match that backtracks to the last `%`: linear in practice, O(n·m) at worst.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && (p[pi] == '_' || same(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

/// Compares two present values; numbers sort before strings.
fn cmp_present(a: Field<'_>, b: Field<'_>) -> Ordering {
    match (a, b) {
        (Field::Num(x), Field::Num(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Field::Str(x), Field::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Field::Num(_), Field::Str(_)) => Ordering::Less,
        (Field::Str(_), Field::Num(_)) => Ordering::Greater,
    }
}

/// Where a value sorts regardless of direction: ordinary values, then NaN, then missing
/// (MLflow's order in both its SQL store and its in-memory sorter).
fn sort_rank(v: &Option<Field<'_>>) -> u8 {
    match v {
        Some(Field::Num(n)) if n.is_nan() => 1,
        Some(_) => 0,
        None => 2,
    }
}

/// Compares two values of one key in its direction; NaN and then missing values sort last
/// either way.
fn cmp_fields(a: Option<Field<'_>>, b: Option<Field<'_>>, ascending: bool) -> Ordering {
    match (sort_rank(&a), sort_rank(&b)) {
        (0, 0) => {
            let (a, b) = (a.expect("ranked present"), b.expect("ranked present"));
            if ascending {
                cmp_present(a, b)
            } else {
                cmp_present(a, b).reverse()
            }
        }
        (ra, rb) => ra.cmp(&rb),
    }
}

/// Compares `a` and `b` by one order key.
pub fn compare_key<T: Searchable + ?Sized>(order: &OrderBy, a: &T, b: &T) -> Ordering {
    let Key { entity, name } = &order.key;
    cmp_fields(
        field(a, *entity, name, true),
        field(b, *entity, name, true),
        order.ascending,
    )
}

/// Compares `a` and `b` by `order_by`, key after key, with no tie-breaker.
pub fn compare<T: Searchable + ?Sized>(order_by: &[OrderBy], a: &T, b: &T) -> Ordering {
    order_by
        .iter()
        .map(|o| compare_key(o, a, b))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Compares by attributes given as `(canonical name, ascending)` pairs: the tie-breakers.
fn compare_attributes<T: Searchable + ?Sized>(keys: &[(&str, bool)], a: &T, b: &T) -> Ordering {
    keys.iter()
        .map(|(name, asc)| {
            let attr = Entity::Attribute;
            cmp_fields(field(a, attr, name, true), field(b, attr, name, true), *asc)
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn opt_num(v: Option<i64>) -> Option<Field<'static>> {
    v.map(|n| Field::Num(n as f64))
}

fn opt_str(v: &Option<String>) -> Option<Field<'_>> {
    v.as_deref().map(Field::Str)
}

// ----- runs -----------------------------------------------------------------------------------

/// Runs: attributes `run_id`, `run_name`, `user_id`, `status` (its name, `FINISHED`),
/// `artifact_uri`, `experiment_id`, `lifecycle_stage` as strings; `start_time` and `end_time`
/// as numbers. Metrics are the latest values ([`Run::metric`]).
impl Searchable for Run {
    fn attribute_field(&self, name: &str) -> Option<Field<'_>> {
        let info = &self.info;
        Some(match name {
            "run_id" => Field::Str(&info.run_id),
            "run_name" => Field::Str(&info.run_name),
            "user_id" => Field::Str(&info.user_id),
            "status" => Field::Str(info.status.as_str()),
            "artifact_uri" => Field::Str(&info.artifact_uri),
            "experiment_id" => Field::Str(&info.experiment_id),
            "lifecycle_stage" => Field::Str(info.lifecycle_stage.as_str()),
            "start_time" => Field::Num(info.start_time as f64),
            "end_time" => return opt_num(info.end_time),
            _ => return None,
        })
    }

    fn metric_value(&self, key: &str) -> Option<f64> {
        Run::metric(self, key).map(|m| m.value)
    }

    fn param_value(&self, key: &str) -> Option<&str> {
        Run::param(self, key)
    }

    fn tag_value(&self, key: &str) -> Option<&str> {
        Run::tag(self, key)
    }

    fn any_dataset(&self, field: &str, pred: &mut dyn FnMut(&str) -> bool) -> bool {
        self.inputs.dataset_inputs.iter().any(|input| match field {
            "name" => pred(&input.dataset.name),
            "digest" => pred(&input.dataset.digest),
            "context" => input
                .tags
                .iter()
                .filter(|t| t.key == DATASET_CONTEXT_TAG)
                .any(|t| pred(&t.value)),
            _ => false,
        })
    }
}

/// Whether `run` satisfies `filter` (parsed for [`SearchKind::Runs`](super::SearchKind::Runs)).
pub fn matches_run(filter: &Expr, run: &Run) -> bool {
    matches(filter, run)
}

/// Orders runs by `order_by`, then by the tie-breakers `start_time DESC, run_id ASC`.
pub fn compare_runs(order_by: &[OrderBy], a: &Run, b: &Run) -> Ordering {
    compare(order_by, a, b)
        .then_with(|| compare_attributes(&[("start_time", false), ("run_id", true)], a, b))
}

// ----- experiments ----------------------------------------------------------------------------

/// Experiments: `name`, `experiment_id`, `artifact_location`, `lifecycle_stage` as strings,
/// `creation_time` and `last_update_time` as numbers. `experiment_id` filters as a string
/// but sorts as a number when it is a decimal integer (as the SQL stores' integer column does).
impl Searchable for Experiment {
    fn attribute_field(&self, name: &str) -> Option<Field<'_>> {
        Some(match name {
            "name" => Field::Str(&self.name),
            "experiment_id" => Field::Str(&self.experiment_id),
            "artifact_location" => Field::Str(&self.artifact_location),
            "lifecycle_stage" => Field::Str(self.lifecycle_stage.as_str()),
            "creation_time" => return opt_num(self.creation_time),
            "last_update_time" => return opt_num(self.last_update_time),
            _ => return None,
        })
    }

    fn sort_field(&self, name: &str) -> Option<Field<'_>> {
        if name == "experiment_id"
            && let Ok(n) = self.experiment_id.parse::<i64>()
        {
            return Some(Field::Num(n as f64));
        }
        self.attribute_field(name)
    }

    fn tag_value(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// Whether `experiment` satisfies `filter` (parsed for
/// [`SearchKind::Experiments`](super::SearchKind::Experiments)).
pub fn matches_experiment(filter: &Expr, experiment: &Experiment) -> bool {
    matches(filter, experiment)
}

/// Orders experiments by `order_by`, then by the tie-breakers `creation_time DESC,
/// experiment_id ASC` (numeric when both ids are integers).
pub fn compare_experiments(order_by: &[OrderBy], a: &Experiment, b: &Experiment) -> Ordering {
    compare(order_by, a, b).then_with(|| {
        compare_attributes(&[("creation_time", false), ("experiment_id", true)], a, b)
    })
}

// ----- registry -------------------------------------------------------------------------------

fn registry_tag<'a>(tags: &'a [crate::model_registry::RegistryTag], key: &str) -> Option<&'a str> {
    match tags.iter().find(|t| t.key == key) {
        Some(t) => Some(t.value.as_str()),
        None if key == PROMPT_TAG => Some("false"),
        None => None,
    }
}

/// Registered models: `name`, `user_id`, `description` as strings, `creation_timestamp` and
/// `last_updated_timestamp` as numbers. A missing [`PROMPT_TAG`] reads as `'false'`.
impl Searchable for RegisteredModel {
    fn attribute_field(&self, name: &str) -> Option<Field<'_>> {
        match name {
            "name" => Some(Field::Str(&self.name)),
            "user_id" => opt_str(&self.user_id),
            "description" => opt_str(&self.description),
            "creation_timestamp" => Some(Field::Num(self.creation_timestamp as f64)),
            "last_updated_timestamp" => opt_num(self.last_updated_timestamp),
            _ => None,
        }
    }

    fn tag_value(&self, key: &str) -> Option<&str> {
        registry_tag(&self.tags, key)
    }
}

/// Whether `model` satisfies `filter` (parsed for
/// [`SearchKind::RegisteredModels`](super::SearchKind::RegisteredModels)). Hiding prompts when
/// the filter does not mention [`PROMPT_TAG`] is the store's job, not this function's.
pub fn matches_registered_model(filter: &Expr, model: &RegisteredModel) -> bool {
    matches(filter, model)
}

/// Orders registered models by `order_by`, then by the tie-breaker `name ASC` (which is also
/// the whole order when `order_by` is empty).
pub fn compare_registered_models(
    order_by: &[OrderBy],
    a: &RegisteredModel,
    b: &RegisteredModel,
) -> Ordering {
    compare(order_by, a, b).then_with(|| compare_attributes(&[("name", true)], a, b))
}

/// Model versions: `name`, `run_id`, `source_path` (the `source` field), `user_id`,
/// `current_stage`, `status` as strings; `version_number` (the version as an integer),
/// `creation_timestamp` and `last_updated_timestamp` as numbers. A missing [`PROMPT_TAG`]
/// reads as `'false'`.
impl Searchable for ModelVersion {
    fn attribute_field(&self, name: &str) -> Option<Field<'_>> {
        match name {
            "name" => Some(Field::Str(&self.name)),
            "run_id" => opt_str(&self.run_id),
            "source_path" => Some(Field::Str(&self.source)),
            "user_id" => opt_str(&self.user_id),
            "current_stage" => Some(Field::Str(self.current_stage.as_str())),
            "status" => Some(Field::Str(self.status.as_str())),
            "version_number" => self
                .version
                .parse::<i64>()
                .ok()
                .map(|v| Field::Num(v as f64)),
            "creation_timestamp" => Some(Field::Num(self.creation_timestamp as f64)),
            "last_updated_timestamp" => Some(Field::Num(self.last_updated_timestamp as f64)),
            _ => None,
        }
    }

    fn tag_value(&self, key: &str) -> Option<&str> {
        registry_tag(&self.tags, key)
    }
}

/// Whether `version` satisfies `filter` (parsed for
/// [`SearchKind::ModelVersions`](super::SearchKind::ModelVersions)).
pub fn matches_model_version(filter: &Expr, version: &ModelVersion) -> bool {
    matches(filter, version)
}

/// Orders model versions by `order_by` (`last_updated_timestamp DESC` when empty), then by
/// the tie-breakers `name ASC, version_number DESC`.
pub fn compare_model_versions(
    order_by: &[OrderBy],
    a: &ModelVersion,
    b: &ModelVersion,
) -> Ordering {
    let first = if order_by.is_empty() {
        compare_attributes(&[("last_updated_timestamp", false)], a, b)
    } else {
        compare(order_by, a, b)
    };
    first.then_with(|| compare_attributes(&[("name", true), ("version_number", false)], a, b))
}

// ----- logged models --------------------------------------------------------------------------

/// Whether metric `m` was logged on `dataset` (any digest when the reference has none).
fn on_dataset(m: &Metric, dataset: &DatasetRef) -> bool {
    m.dataset_name.as_deref() == Some(dataset.dataset_name.as_str())
        && dataset
            .dataset_digest
            .as_ref()
            .is_none_or(|d| m.dataset_digest.as_deref() == Some(d.as_str()))
}

/// The latest value of metric `key` among `metrics`, by `(timestamp, step)`, counting only
/// values logged on one of `datasets` when that list is non-empty. Values with the same
/// `(timestamp, step)` resolve to the largest (NaN lowest).
pub fn latest_logged_model_metric(
    metrics: &[Metric],
    key: &str,
    datasets: &[DatasetRef],
) -> Option<f64> {
    metrics
        .iter()
        .filter(|m| {
            m.key == key && (datasets.is_empty() || datasets.iter().any(|d| on_dataset(m, d)))
        })
        .max_by(|a, b| {
            (a.timestamp, a.step)
                .cmp(&(b.timestamp, b.step))
                .then_with(|| {
                    a.value
                        .partial_cmp(&b.value)
                        .unwrap_or_else(|| b.value.is_nan().cmp(&a.value.is_nan()))
                })
        })
        .map(|m| m.value)
}

/// A LoggedModel whose metrics are restricted to some datasets.
struct LoggedModelView<'a> {
    model: &'a LoggedModel,
    datasets: &'a [DatasetRef],
}

/// A LoggedModel with its metrics restricted to `datasets`.
impl Searchable for LoggedModelView<'_> {
    fn attribute_field(&self, name: &str) -> Option<Field<'_>> {
        self.model.attribute_field(name)
    }

    fn metric_value(&self, key: &str) -> Option<f64> {
        latest_logged_model_metric(&self.model.data.metrics, key, self.datasets)
    }

    fn param_value(&self, key: &str) -> Option<&str> {
        self.model
            .data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    fn tag_value(&self, key: &str) -> Option<&str> {
        self.model
            .info
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// LoggedModels: `name`, `model_id`, `model_type`, `status` (its name,
/// `LOGGED_MODEL_READY`), `source_run_id`, `experiment_id` as strings; `creation_timestamp`
/// and `last_updated_timestamp` as numbers. Metrics: [`latest_logged_model_metric`] over all
/// datasets ([`matches_logged_model`] restricts them).
impl Searchable for LoggedModel {
    fn attribute_field(&self, name: &str) -> Option<Field<'_>> {
        let info = &self.info;
        match name {
            "name" => Some(Field::Str(&info.name)),
            "model_id" => Some(Field::Str(&info.model_id)),
            "model_type" => opt_str(&info.model_type),
            "status" => Some(Field::Str(info.status.as_str())),
            "source_run_id" => opt_str(&info.source_run_id),
            "experiment_id" => Some(Field::Str(&info.experiment_id)),
            "creation_timestamp" => Some(Field::Num(info.creation_timestamp_ms as f64)),
            "last_updated_timestamp" => Some(Field::Num(info.last_updated_timestamp_ms as f64)),
            _ => None,
        }
    }

    fn metric_value(&self, key: &str) -> Option<f64> {
        latest_logged_model_metric(&self.data.metrics, key, &[])
    }

    fn param_value(&self, key: &str) -> Option<&str> {
        self.data
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    fn tag_value(&self, key: &str) -> Option<&str> {
        self.info
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

fn has_metric_comparison(expr: &Expr) -> bool {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().any(has_metric_comparison),
        Expr::Compare(c) => c.key.entity == Entity::Metric,
    }
}

/// Whether `model` is in the result of a LoggedModel search with `filter` (parsed for
/// [`SearchKind::LoggedModels`](super::SearchKind::LoggedModels)) and the request's
/// `datasets`. Takes an `Option` because `datasets` matter without a filter too:
///
/// * metric comparisons see only values logged on one of `datasets` (all values when empty);
/// * when `datasets` is non-empty and the filter has no metric comparison, the model must have
///   at least one metric logged on one of them (MLflow's rule).
pub fn matches_logged_model(
    filter: Option<&Expr>,
    model: &LoggedModel,
    datasets: &[DatasetRef],
) -> bool {
    if !datasets.is_empty()
        && !filter.is_some_and(has_metric_comparison)
        && !model
            .data
            .metrics
            .iter()
            .any(|m| datasets.iter().any(|d| on_dataset(m, d)))
    {
        return false;
    }
    filter.is_none_or(|f| matches(f, &LoggedModelView { model, datasets }))
}

/// Orders LoggedModels by `order_by` (a metric key sees only the values on its own dataset,
/// when it names one), then by the tie-breakers `creation_timestamp DESC, model_id ASC`.
pub fn compare_logged_models(
    order_by: &[LoggedModelOrderBy],
    a: &LoggedModel,
    b: &LoggedModel,
) -> Ordering {
    for key in order_by {
        let datasets = key.dataset.as_slice();
        let o = compare_key(
            &key.order,
            &LoggedModelView { model: a, datasets },
            &LoggedModelView { model: b, datasets },
        );
        if o.is_ne() {
            return o;
        }
    }
    compare_attributes(&[("creation_timestamp", false), ("model_id", true)], a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::{
        Dataset, DatasetInput, ExperimentTag, InputTag, LifecycleStage, LoggedModelData,
        LoggedModelInfo, LoggedModelParameter, LoggedModelStatus, LoggedModelTag, Param, RunData,
        RunInfo, RunInputs, RunStatus, RunTag,
    };
    use crate::model_registry::{ModelVersionStatus, RegistryTag, Stage};
    use crate::search::{SearchKind, parse_filter, parse_order_by};

    fn run(id: &str, start_time: i64) -> Run {
        Run {
            info: RunInfo {
                run_id: id.into(),
                run_name: format!("name-{id}"),
                experiment_id: "0".into(),
                user_id: "alice".into(),
                status: RunStatus::Finished,
                start_time,
                end_time: None,
                artifact_uri: format!("file:///a/{id}"),
                lifecycle_stage: LifecycleStage::Active,
            },
            data: RunData::default(),
            inputs: RunInputs::default(),
            outputs: Default::default(),
        }
    }

    fn with_metric(mut r: Run, key: &str, value: f64) -> Run {
        r.data.metrics.push(Metric::new(key, value, 0, 0));
        r
    }

    fn with_param(mut r: Run, key: &str, value: &str) -> Run {
        r.data.params.push(Param::new(key, value));
        r
    }

    fn with_tag(mut r: Run, key: &str, value: &str) -> Run {
        r.data.tags.push(RunTag::new(key, value));
        r
    }

    fn with_dataset(mut r: Run, name: &str, context: Option<&str>) -> Run {
        r.inputs.dataset_inputs.push(DatasetInput {
            tags: context
                .map(|c| vec![InputTag::new(DATASET_CONTEXT_TAG, c)])
                .unwrap_or_default(),
            dataset: Dataset {
                name: name.into(),
                digest: format!("d-{name}"),
                source_type: "local".into(),
                source: "{}".into(),
                schema: None,
                profile: None,
            },
        });
        r
    }

    fn filter(kind: SearchKind, text: &str) -> Expr {
        parse_filter(kind, text).unwrap().unwrap()
    }

    fn run_matches(text: &str, r: &Run) -> bool {
        matches_run(&filter(SearchKind::Runs, text), r)
    }

    fn order(kind: SearchKind, clauses: &[&str]) -> Vec<OrderBy> {
        let owned: Vec<String> = clauses.iter().map(|c| c.to_string()).collect();
        parse_order_by(kind, &owned).unwrap()
    }

    fn sorted_runs(clauses: &[&str], runs: &[Run]) -> Vec<String> {
        let order_by = order(SearchKind::Runs, clauses);
        let mut runs: Vec<&Run> = runs.iter().collect();
        runs.sort_by(|a, b| compare_runs(&order_by, a, b));
        runs.iter().map(|r| r.info.run_id.clone()).collect()
    }

    #[test]
    fn like_wildcards_and_case() {
        assert!(like("a%", "abc", false));
        assert!(like("%", "", false));
        assert!(like("%%", "x", false));
        assert!(like("a_c", "abc", false));
        assert!(!like("a_c", "ac", false));
        assert!(!like("a_c", "abbc", false));
        assert!(like("%b%", "abc", false));
        assert!(like("%c", "abcabc", false));
        assert!(!like("%c", "abca", false));
        assert!(like("a%b%c", "aXbYbZc", false));
        assert!(!like("abc", "ABC", false));
        assert!(like("abc", "ABC", true));
        assert!(like("_", "é", false), "`_` is one character, not one byte");
        assert!(!like("__", "é", false));
        assert!(!like("É", "é", true), "ILIKE folds ASCII only");
        assert!(like(".*", ".*", false), "regex characters are literal");
        assert!(!like(".*", "ab", false));
        assert!(!like("", "a", false));
        assert!(like("", "", false));
    }

    #[test]
    fn metric_comparisons_use_latest_value_and_nan_or_missing_is_false() {
        let r = with_metric(run("r", 0), "m", 2.0);
        for (text, expected) in [
            ("metrics.m = 2", true),
            ("metrics.m != 2", false),
            ("metrics.m > 1", true),
            ("metrics.m >= 2", true),
            ("metrics.m < 2", false),
            ("metrics.m <= 2.0", true),
            ("metrics.other != 2", false),
            ("metrics.other < 100", false),
        ] {
            assert_eq!(run_matches(text, &r), expected, "{text}");
        }
        let nan = with_metric(run("r", 0), "m", f64::NAN);
        for op in ["=", "!=", "<", "<=", ">", ">="] {
            assert!(!run_matches(&format!("metrics.m {op} 0"), &nan), "NaN {op}");
        }
        let inf = with_metric(run("r", 0), "m", f64::INFINITY);
        assert!(run_matches("metrics.m > 1e300", &inf));
    }

    #[test]
    fn param_and_tag_comparisons() {
        let r = with_tag(with_param(run("r", 0), "p", "Hello"), "t", "");
        for (text, expected) in [
            ("params.p = 'Hello'", true),
            ("params.p = 'hello'", false),
            ("params.p != 'hello'", true),
            ("params.p LIKE 'H%'", true),
            ("params.p LIKE 'h%'", false),
            ("params.p ILIKE 'h%'", true),
            ("params.p ILIKE 'h_llo'", true),
            ("params.p IS NOT NULL", true),
            ("params.p IS NULL", false),
            ("params.missing IS NULL", true),
            ("params.missing IS NOT NULL", false),
            ("params.missing != 'x'", false),
            ("params.missing LIKE '%'", false),
            ("tags.t = ''", true),
            ("tags.t IS NOT NULL", true),
            ("tags.t LIKE '%'", true),
        ] {
            assert_eq!(run_matches(text, &r), expected, "{text}");
        }
    }

    #[test]
    fn run_attribute_comparisons() {
        let mut r = run("abc", 100);
        r.info.status = RunStatus::Failed;
        for (text, expected) in [
            ("status = 'FAILED'", true),
            ("status = 'failed'", false),
            ("status ILIKE 'failed'", true),
            ("run_id IN ('x', 'abc')", true),
            ("run_id NOT IN ('x', 'abc')", false),
            ("run_id NOT IN ('x')", true),
            ("run_name = 'name-abc'", true),
            ("user_id != 'bob'", true),
            ("artifact_uri LIKE 'file://%'", true),
            ("start_time = 100", true),
            ("created > 99.5", true),
            ("start_time < 100", false),
            ("end_time > 0", false),
            ("end_time < 0", false),
            ("end_time != 0", false),
        ] {
            assert_eq!(run_matches(text, &r), expected, "{text}");
        }
        r.info.end_time = Some(5);
        assert!(run_matches("end_time = 5", &r));
    }

    #[test]
    fn datasets_match_if_any_input_matches() {
        let r = with_dataset(
            with_dataset(run("r", 0), "train", Some("training")),
            "eval",
            None,
        );
        for (text, expected) in [
            ("datasets.name = 'eval'", true),
            ("datasets.name != 'eval'", true),
            ("datasets.name NOT IN ('eval', 'train')", false),
            ("datasets.name IN ('x', 'train')", true),
            ("datasets.digest = 'd-eval'", true),
            ("datasets.context = 'training'", true),
            ("datasets.context != 'training'", false),
            ("datasets.context LIKE 'TRAIN%'", false),
            ("datasets.context ILIKE 'TRAIN%'", true),
        ] {
            assert_eq!(run_matches(text, &r), expected, "{text}");
        }
        let bare = run("r", 0);
        for text in [
            "datasets.name != 'x'",
            "datasets.name NOT IN ('x')",
            "datasets.context LIKE '%'",
        ] {
            assert!(!run_matches(text, &bare), "{text} without inputs");
        }
    }

    #[test]
    fn and_or_combine() {
        let r = with_metric(with_param(run("r", 0), "p", "a"), "m", 1.0);
        assert!(run_matches("metrics.m > 5 OR params.p = 'a'", &r));
        assert!(!run_matches("metrics.m > 5 OR params.p = 'b'", &r));
        assert!(run_matches(
            "metrics.m > 0 AND (params.p = 'b' OR params.p = 'a')",
            &r
        ));
        assert!(!run_matches(
            "metrics.m > 0 AND params.p = 'b' OR metrics.m > 5",
            &r
        ));
        assert!(matches(&Expr::And(vec![]), &r));
        assert!(!matches(&Expr::Or(vec![]), &r));
    }

    #[test]
    fn mismatched_hand_built_trees_are_false_not_panics() {
        let r = with_param(run("r", 0), "p", "1");
        let c = |entity, name: &str, op, value| {
            Expr::Compare(Comparison {
                key: Key::new(entity, name),
                op,
                value,
            })
        };
        assert!(!matches_run(
            &c(Entity::Param, "p", Op::Eq, Value::Number(1.0)),
            &r
        ));
        assert!(!matches_run(
            &c(
                Entity::Attribute,
                "start_time",
                Op::Eq,
                Value::String("0".into())
            ),
            &r
        ));
        assert!(!matches_run(
            &c(Entity::Attribute, "nope", Op::Eq, Value::String("0".into())),
            &r
        ));
        assert!(matches_run(
            &c(Entity::Metric, "m", Op::IsNull, Value::None),
            &r
        ));
    }

    #[test]
    fn nan_then_missing_sort_last_in_both_directions() {
        let runs = [
            with_metric(run("a", 0), "m", 2.0),
            run("b", 0),
            with_metric(run("c", 0), "m", f64::NAN),
            with_metric(run("d", 0), "m", -1.0),
            with_metric(run("e", 0), "m", f64::INFINITY),
        ];
        assert_eq!(
            sorted_runs(&["metrics.m"], &runs),
            ["d", "a", "e", "c", "b"]
        );
        assert_eq!(
            sorted_runs(&["metrics.m DESC"], &runs),
            ["e", "a", "d", "c", "b"]
        );
        let runs = [
            with_param(run("a", 0), "p", "b"),
            run("b", 0),
            with_param(run("c", 0), "p", "B"),
            with_param(run("d", 0), "p", ""),
        ];
        assert_eq!(sorted_runs(&["params.p"], &runs), ["d", "c", "a", "b"]);
        assert_eq!(sorted_runs(&["params.p DESC"], &runs), ["a", "c", "d", "b"]);
        let mut ended = run("x", 0);
        ended.info.end_time = Some(1);
        let runs = [run("y", 0), ended];
        assert_eq!(sorted_runs(&["end_time DESC"], &runs), ["x", "y"]);
        assert_eq!(sorted_runs(&["end_time"], &runs), ["x", "y"]);
    }

    #[test]
    fn runs_break_ties_by_start_time_desc_then_run_id() {
        let runs = [
            run("b", 1),
            run("a", 1),
            run("c", 2),
            with_tag(run("d", 0), "t", "x"),
        ];
        assert_eq!(sorted_runs(&[], &runs), ["c", "a", "b", "d"]);
        assert_eq!(sorted_runs(&["tags.t"], &runs), ["d", "c", "a", "b"]);
        assert_eq!(
            sorted_runs(&["start_time", "run_id DESC"], &runs),
            ["d", "b", "a", "c"]
        );
        assert_eq!(sorted_runs(&["user_id"], &runs), ["c", "a", "b", "d"]);
    }

    fn experiment(id: &str, name: &str, created: Option<i64>) -> Experiment {
        Experiment {
            experiment_id: id.into(),
            name: name.into(),
            artifact_location: String::new(),
            lifecycle_stage: LifecycleStage::Active,
            last_update_time: created,
            creation_time: created,
            tags: vec![],
        }
    }

    #[test]
    fn experiments_filter_and_order() {
        let mut e = experiment("7", "Exp", Some(10));
        e.tags.push(ExperimentTag::new("team", "vision"));
        let m = |text: &str| matches_experiment(&filter(SearchKind::Experiments, text), &e);
        assert!(m("experiment_id IN ('7')"));
        assert!(m("experiment_id = '7' AND name LIKE 'E%'"));
        assert!(!m("name LIKE 'e%'"));
        assert!(m("creation_time >= 10 AND last_update_time < 11"));
        assert!(m("tags.team = 'vision' AND tags.other IS NULL"));
        assert!(!m("tags.other != 'x'"));

        let exps = [
            experiment("10", "b", Some(1)),
            experiment("9", "a", Some(1)),
            experiment("2", "c", None),
            experiment("3", "d", Some(5)),
        ];
        let sorted = |clauses: &[&str]| {
            let order_by = order(SearchKind::Experiments, clauses);
            let mut v: Vec<&Experiment> = exps.iter().collect();
            v.sort_by(|a, b| compare_experiments(&order_by, a, b));
            v.iter()
                .map(|e| e.experiment_id.as_str())
                .collect::<Vec<_>>()
        };
        // creation_time DESC (missing last), then experiment_id ASC numerically.
        assert_eq!(sorted(&[]), ["3", "9", "10", "2"]);
        assert_eq!(sorted(&["name DESC"]), ["3", "2", "10", "9"]);
        assert_eq!(sorted(&["experiment_id"]), ["2", "3", "9", "10"]);
        assert_eq!(sorted(&["creation_time"]), ["9", "10", "3", "2"]);
    }

    fn registered(name: &str, updated: Option<i64>) -> RegisteredModel {
        RegisteredModel {
            name: name.into(),
            creation_timestamp: 0,
            last_updated_timestamp: updated,
            user_id: None,
            description: None,
            latest_versions: vec![],
            tags: vec![],
            aliases: vec![],
        }
    }

    #[test]
    fn registered_models_filter_and_order() {
        let mut prompt = registered("p", Some(1));
        prompt.tags.push(RegistryTag {
            key: PROMPT_TAG.into(),
            value: "true".into(),
        });
        let plain = registered("m", Some(2));
        let m = |text: &str, model: &RegisteredModel| {
            matches_registered_model(&filter(SearchKind::RegisteredModels, text), model)
        };
        let is_false = "tags.`mlflow.prompt.is_prompt` = 'false'";
        let not_true = "tags.`mlflow.prompt.is_prompt` != 'true'";
        assert!(m(is_false, &plain) && m(not_true, &plain));
        assert!(!m(is_false, &prompt) && !m(not_true, &prompt));
        assert!(m("name IN ('m', 'x')", &plain));
        assert!(!m("tags.other = 'x'", &plain));

        let models = [
            registered("b", Some(1)),
            registered("a", None),
            registered("c", Some(1)),
        ];
        let sorted = |clauses: &[&str]| {
            let order_by = order(SearchKind::RegisteredModels, clauses);
            let mut v: Vec<&RegisteredModel> = models.iter().collect();
            v.sort_by(|a, b| compare_registered_models(&order_by, a, b));
            v.iter().map(|m| m.name.as_str()).collect::<Vec<_>>()
        };
        assert_eq!(sorted(&[]), ["a", "b", "c"]);
        assert_eq!(sorted(&["name DESC"]), ["c", "b", "a"]);
        assert_eq!(sorted(&["timestamp DESC"]), ["b", "c", "a"]);
        assert_eq!(sorted(&["last_updated_timestamp"]), ["b", "c", "a"]);
    }

    fn version(name: &str, version: &str, updated: i64) -> ModelVersion {
        ModelVersion {
            name: name.into(),
            version: version.into(),
            creation_timestamp: 0,
            last_updated_timestamp: updated,
            user_id: None,
            current_stage: Stage::None,
            description: None,
            source: format!("models:/{name}/{version}"),
            run_id: None,
            status: ModelVersionStatus::Ready,
            status_message: None,
            tags: vec![],
            run_link: None,
            aliases: vec![],
            model_id: None,
            model_params: vec![],
            model_metrics: vec![],
        }
    }

    #[test]
    fn model_versions_filter_and_order() {
        let mut v = version("m", "10", 0);
        v.run_id = Some("r1".into());
        let m = |text: &str| matches_model_version(&filter(SearchKind::ModelVersions, text), &v);
        assert!(m("version_number > 9"), "versions compare as numbers");
        assert!(m("run_id IN ('r1') AND source_path LIKE 'models:/m/%'"));
        assert!(m("tags.`mlflow.prompt.is_prompt` = 'false'"));
        assert!(!m("run_id != 'r1'"));
        let no_run = version("m", "1", 0);
        assert!(!matches_model_version(
            &filter(SearchKind::ModelVersions, "run_id != 'r1'"),
            &no_run
        ));

        let versions = [
            version("b", "1", 5),
            version("a", "9", 5),
            version("a", "10", 5),
            version("c", "1", 7),
        ];
        let sorted = |clauses: &[&str]| {
            let order_by = order(SearchKind::ModelVersions, clauses);
            let mut v: Vec<&ModelVersion> = versions.iter().collect();
            v.sort_by(|a, b| compare_model_versions(&order_by, a, b));
            v.iter()
                .map(|m| format!("{}{}", m.name, m.version))
                .collect::<Vec<_>>()
        };
        assert_eq!(sorted(&[]), ["c1", "a10", "a9", "b1"]);
        assert_eq!(sorted(&["version_number"]), ["b1", "c1", "a9", "a10"]);
        assert_eq!(sorted(&["name DESC"]), ["c1", "b1", "a10", "a9"]);
    }

    fn logged_model(id: &str, created: i64, metrics: Vec<Metric>) -> LoggedModel {
        LoggedModel {
            info: LoggedModelInfo {
                model_id: id.into(),
                experiment_id: "0".into(),
                name: format!("model-{id}"),
                creation_timestamp_ms: created,
                last_updated_timestamp_ms: created,
                artifact_uri: String::new(),
                status: LoggedModelStatus::Ready,
                creator_id: None,
                model_type: Some("agent".into()),
                source_run_id: None,
                status_message: None,
                tags: vec![LoggedModelTag::new("t", "v")],
                registrations: vec![],
            },
            data: LoggedModelData {
                params: vec![LoggedModelParameter::new("p", "1")],
                metrics,
            },
        }
    }

    fn metric_on(key: &str, value: f64, ts: i64, step: i64, dataset: Option<&str>) -> Metric {
        let mut m = Metric::new(key, value, ts, step);
        m.dataset_name = dataset.map(String::from);
        m.dataset_digest = dataset.map(|d| format!("d-{d}"));
        m
    }

    fn dataset(name: &str, digest: Option<&str>) -> DatasetRef {
        DatasetRef {
            dataset_name: name.into(),
            dataset_digest: digest.map(String::from),
        }
    }

    #[test]
    fn logged_model_metrics_use_latest_by_timestamp_then_step() {
        let m = logged_model(
            "m1",
            0,
            vec![
                metric_on("acc", 0.9, 2, 0, Some("train")),
                metric_on("acc", 0.5, 1, 9, Some("eval")),
                metric_on("acc", 0.7, 2, 1, Some("eval")),
                metric_on("acc", 0.1, 0, 0, Some("test")),
            ],
        );
        let ms = &m.data.metrics;
        assert_eq!(latest_logged_model_metric(ms, "acc", &[]), Some(0.7));
        assert_eq!(
            latest_logged_model_metric(ms, "acc", &[dataset("train", None)]),
            Some(0.9)
        );
        assert_eq!(
            latest_logged_model_metric(ms, "acc", &[dataset("test", Some("d-test"))]),
            Some(0.1)
        );
        assert_eq!(
            latest_logged_model_metric(ms, "acc", &[dataset("test", Some("other"))]),
            None
        );
        assert_eq!(latest_logged_model_metric(ms, "loss", &[]), None);

        let f = |text: &str| filter(SearchKind::LoggedModels, text);
        assert!(matches_logged_model(Some(&f("metrics.acc = 0.7")), &m, &[]));
        assert!(matches_logged_model(
            Some(&f("metrics.acc = 0.9")),
            &m,
            &[dataset("train", None)]
        ));
        assert!(matches_logged_model(
            Some(&f(
                "name = 'model-m1' AND status = 'LOGGED_MODEL_READY' AND model_type = 'agent' AND params.p = '1' AND tags.t = 'v' AND creation_time = 0"
            )),
            &m,
            &[]
        ));
        assert!(!matches_logged_model(
            Some(&f("source_run_id = 'x'")),
            &m,
            &[]
        ));
    }

    #[test]
    fn logged_model_dataset_restriction_applies_without_a_metric_filter() {
        let m = logged_model("m1", 0, vec![metric_on("acc", 0.9, 0, 0, Some("train"))]);
        let f = filter(SearchKind::LoggedModels, "name LIKE 'model-%'");
        assert!(matches_logged_model(None, &m, &[]));
        assert!(matches_logged_model(None, &m, &[dataset("train", None)]));
        assert!(!matches_logged_model(None, &m, &[dataset("eval", None)]));
        assert!(!matches_logged_model(
            Some(&f),
            &m,
            &[dataset("eval", None)]
        ));
        // With a metric comparison the comparison itself decides.
        let metric = filter(
            SearchKind::LoggedModels,
            "metrics.acc > 0 OR name = 'model-m1'",
        );
        assert!(matches_logged_model(
            Some(&metric),
            &m,
            &[dataset("eval", None)]
        ));
    }

    #[test]
    fn logged_models_order_by_dataset_metric_then_tie_breakers() {
        let models = [
            logged_model(
                "a",
                1,
                vec![
                    metric_on("acc", 0.5, 0, 0, Some("eval")),
                    metric_on("acc", 0.9, 0, 0, Some("train")),
                ],
            ),
            logged_model("b", 1, vec![metric_on("acc", 0.8, 0, 0, Some("eval"))]),
            logged_model("c", 2, vec![]),
            logged_model("d", 3, vec![metric_on("acc", f64::NAN, 0, 0, Some("eval"))]),
        ];
        let sorted = |key: &str, ascending: bool, ds: Option<DatasetRef>| {
            let order_by: Vec<LoggedModelOrderBy> = if key.is_empty() {
                vec![]
            } else {
                let mut o = order(SearchKind::LoggedModels, &[key]);
                o[0].ascending = ascending;
                vec![LoggedModelOrderBy {
                    order: o.remove(0),
                    dataset: ds,
                }]
            };
            let mut v: Vec<&LoggedModel> = models.iter().collect();
            v.sort_by(|a, b| compare_logged_models(&order_by, a, b));
            v.iter()
                .map(|m| m.info.model_id.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(sorted("", true, None), ["d", "c", "a", "b"]);
        assert_eq!(
            sorted("metrics.acc", false, Some(dataset("eval", None))),
            ["b", "a", "d", "c"]
        );
        assert_eq!(
            sorted("metrics.acc", true, Some(dataset("eval", None))),
            ["a", "b", "d", "c"]
        );
        assert_eq!(
            sorted("metrics.acc", true, Some(dataset("train", None))),
            ["a", "d", "c", "b"]
        );
        assert_eq!(sorted("name", false, None), ["d", "c", "b", "a"]);
    }
}
