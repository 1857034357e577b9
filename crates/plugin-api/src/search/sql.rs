//! The translation of search trees into SQL with bound parameters, and keyset page tokens,
//! shared by the built-in SQL stores (SQLite and PostgreSQL) through a [`Dialect`].
//!
//! This is a helper for SQL stores, not part of the plugin ABI: nothing here crosses a
//! shared-library boundary. Both stores use the same table and column names (`runs r`,
//! `latest_metrics`, `params`, `tags`, ...), so one translation serves both; the dialect
//! decides placeholders (`?1` or `$1::type`), how a text parameter is collated (PostgreSQL:
//! `COLLATE "C"`, byte order as SQLite's BINARY), `LIKE` without an escape character, and the
//! join that keeps a run search driven by the searched experiments.
//!
//! Semantics are those of the reference evaluator ([`crate::search::eval`]), which the stores'
//! property tests compare against:
//! - a comparison on a missing key (or a NaN metric, stored as `NULL`) is false for every
//!   operator except `IS NULL`; SQL's `NULL` does exactly that because the tree has `AND`,
//!   `OR` and no `NOT`;
//! - `LIKE` is case-sensitive, `ILIKE` compares `lower()` of both sides, which folds ASCII
//!   only (SQLite's `lower()`, PostgreSQL's under the "C" collation);
//! - `datasets.*` match when any dataset input of the run matches;
//! - ordering: each key `NULLS LAST` in both directions (missing and NaN last), strings in
//!   byte order, then the entity's tie-breakers, the last of which is unique.
//!
//! Pages are keyset pages: the token carries the sort-key values of the last row returned and
//! the next query continues strictly after that row in the total order, so a deep page costs
//! what the first does. A token also carries a fingerprint of the query it belongs to; it holds
//! no server state, so any replica of a server answers it.

use crate::search::eval::PROMPT_TAG;
use crate::search::validate::LINKED_PROMPTS_TAG;
use crate::search::{Comparison, Entity, Expr, Op, OrderBy, Value};
use crate::tracking::{DatasetRef, LoggedModelOrderBy};
use crate::{Error, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The SQL dialect a translation is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// SQLite: `?N` placeholders, `CROSS JOIN` to fix the join order.
    #[default]
    Sqlite,
    /// PostgreSQL: `$N::type` placeholders, text parameters `COLLATE "C"`, `LIKE ... ESCAPE ''`.
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// `NULL` (typed as text).
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Real(f64),
    /// A string.
    Text(String),
}

impl From<i64> for SqlParam {
    fn from(v: i64) -> Self {
        SqlParam::Int(v)
    }
}
impl From<f64> for SqlParam {
    fn from(v: f64) -> Self {
        SqlParam::Real(v)
    }
}
impl From<String> for SqlParam {
    fn from(v: String) -> Self {
        SqlParam::Text(v)
    }
}
impl From<&str> for SqlParam {
    fn from(v: &str) -> Self {
        SqlParam::Text(v.to_string())
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message)
}

/// SQL text being built and the values bound to its numbered parameters.
#[derive(Debug, Default)]
pub struct Sql {
    /// The dialect placeholders and expressions are written in.
    pub dialect: Dialect,
    /// The statement (set by [`page_query`], or by the caller).
    pub text: String,
    /// The bound values, in placeholder order.
    pub params: Vec<SqlParam>,
}

impl Sql {
    /// An empty statement in `dialect`.
    pub fn new(dialect: Dialect) -> Sql {
        Sql {
            dialect,
            ..Sql::default()
        }
    }

    /// Binds `v` and returns its placeholder (typed, for PostgreSQL).
    pub fn bind(&mut self, v: impl Into<SqlParam>) -> String {
        let v = v.into();
        let n = self.params.len() + 1;
        let p = match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => match &v {
                SqlParam::Null => format!("${n}::text"),
                SqlParam::Int(_) => format!("${n}::int8"),
                SqlParam::Real(_) => format!("${n}::float8"),
                SqlParam::Text(_) => format!("(${n}::text COLLATE \"C\")"),
            },
        };
        self.params.push(v);
        p
    }

    /// Binds every value of `vs` and returns `(?a, ?b, ...)`.
    pub fn bind_list<T: Into<SqlParam> + Clone>(&mut self, vs: &[T]) -> String {
        let ps: Vec<String> = vs.iter().map(|v| self.bind(v.clone())).collect();
        format!("({})", ps.join(", "))
    }

    fn like(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " ESCAPE ''",
        }
    }
}

/// SQL for "true" and "false" in both dialects.
const TRUE: &str = "(1 = 1)";
const FALSE: &str = "(1 = 0)";
/// One value of a sort key, as read from a result row and carried in a page token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SortVal {
    /// Missing (or NaN).
    N,
    /// An integer.
    I(i64),
    /// A real, by its bits so that every value (±Inf included) round-trips exactly.
    R(u64),
    /// A string.
    S(String),
}

impl SortVal {
    /// The value as a bound parameter.
    pub fn to_param(&self) -> SqlParam {
        match self {
            SortVal::N => SqlParam::Null,
            SortVal::I(v) => SqlParam::Int(*v),
            SortVal::R(b) => SqlParam::Real(f64::from_bits(*b)),
            SortVal::S(s) => SqlParam::Text(s.clone()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct TokenData {
    /// Fingerprint of the query, hex.
    q: String,
    /// Sort-key values of the last row returned.
    k: Vec<SortVal>,
}

/// A 64-bit FNV-1a fingerprint of the JSON form of `parts`.
pub fn fingerprint(parts: &impl Serialize) -> u64 {
    let bytes = serde_json::to_vec(parts).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// An opaque token for the page after the row whose sort keys are `keys`.
pub fn encode_token(query: u64, keys: Vec<SortVal>) -> String {
    let data = TokenData {
        q: format!("{query:016x}"),
        k: keys,
    };
    let json = serde_json::to_vec(&data).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The sort keys carried by `token`, checked against the query fingerprint and key count.
pub fn decode_token(token: &str, query: u64, n_keys: usize) -> Result<Vec<SortVal>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| invalid("Invalid page token, could not base64-decode"))?;
    let data: TokenData = serde_json::from_slice(&bytes).map_err(|_| {
        invalid(format!(
            "Invalid page token, decoded value={}",
            String::from_utf8_lossy(&bytes)
        ))
    })?;
    if data.q != format!("{query:016x}") || data.k.len() != n_keys {
        return Err(invalid(
            "Invalid page token: it belongs to a different query; repeat the request that \
             returned it with the same arguments",
        ));
    }
    Ok(data.k)
}

/// What a search runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `runs r`.
    Runs,
    /// `experiments e`.
    Experiments,
    /// `logged_models m`.
    LoggedModels,
    /// `registered_models rm`.
    RegisteredModels,
    /// `model_versions mv JOIN registered_models rm`.
    ModelVersions,
    /// `traces t`.
    Traces,
}

/// One ORDER BY key: a SQL expression (possibly `NULL`) and its direction.
#[derive(Debug, Clone)]
pub struct SortExpr {
    /// The expression.
    pub expr: String,
    /// Ascending (else descending).
    pub ascending: bool,
}

impl Target {
    /// Whether this is a model-registry search (prompt rules apply).
    fn is_registry(self) -> bool {
        matches!(self, Target::RegisteredModels | Target::ModelVersions)
    }

    /// `NOT EXISTS` a prompt tag set to `true`: MLflow hides prompts from registry searches
    /// whose filter does not mention the prompt tag.
    pub fn not_a_prompt(self) -> String {
        let (table, owner) = self.tags();
        format!(
            "NOT EXISTS (SELECT 1 FROM {table} x WHERE x.{owner} = {} AND x.key = '{PROMPT_TAG}' \
             AND lower(x.value) = 'true')",
            self.id()
        )
    }

    fn id(self) -> &'static str {
        match self {
            Target::Runs => "r.id",
            Target::Experiments => "e.experiment_id",
            Target::LoggedModels => "m.id",
            Target::RegisteredModels => "rm.id",
            Target::ModelVersions => "mv.id",
            Target::Traces => "t.id",
        }
    }

    /// The SQL expression of attribute `name` for filtering (`for_order` = false) or ordering.
    /// `experiment_id` filters as a string everywhere but sorts as a number only for
    /// experiments, as the reference evaluator does.
    fn attribute(self, name: &str, for_order: bool) -> Result<&'static str> {
        let col = match (self, name) {
            (Target::Runs, "run_id" | "run_uuid") => "r.run_uuid",
            (Target::Runs, "run_name") => "r.name",
            (Target::Runs, "user_id") => "r.user_id",
            (Target::Runs, "status") => "r.status",
            (Target::Runs, "artifact_uri") => "r.artifact_uri",
            (Target::Runs, "lifecycle_stage") => "r.lifecycle_stage",
            (Target::Runs, "start_time") => "r.start_time",
            (Target::Runs, "end_time") => "r.end_time",
            (Target::Runs, "experiment_id") => "CAST(r.experiment_id AS TEXT)",
            (Target::Experiments, "name") => "e.name",
            (Target::Experiments, "experiment_id") if for_order => "e.experiment_id",
            (Target::Experiments, "experiment_id") => "CAST(e.experiment_id AS TEXT)",
            (Target::Experiments, "creation_time") => "e.creation_time",
            (Target::Experiments, "last_update_time") => "e.last_update_time",
            (Target::Experiments, "lifecycle_stage") => "e.lifecycle_stage",
            (Target::Experiments, "artifact_location") => "e.artifact_location",
            (Target::LoggedModels, "name") => "m.name",
            (Target::LoggedModels, "model_id") => "m.model_id",
            (Target::LoggedModels, "model_type") => "m.model_type",
            (Target::LoggedModels, "status") => "m.status",
            (Target::LoggedModels, "source_run_id") => "m.source_run_id",
            (Target::LoggedModels, "experiment_id") => "CAST(m.experiment_id AS TEXT)",
            (Target::LoggedModels, "creation_timestamp" | "creation_time") => {
                "m.creation_timestamp_ms"
            }
            (Target::LoggedModels, "last_updated_timestamp" | "last_updated_time") => {
                "m.last_updated_timestamp_ms"
            }
            (Target::RegisteredModels, "name") => "rm.name",
            (Target::RegisteredModels, "user_id") => "rm.user_id",
            (Target::RegisteredModels, "description") => "rm.description",
            (Target::RegisteredModels, "creation_timestamp") => "rm.creation_timestamp",
            (Target::RegisteredModels, "last_updated_timestamp") => "rm.last_updated_timestamp",
            (Target::ModelVersions, "name") => "rm.name",
            (Target::ModelVersions, "run_id") => "mv.run_id",
            (Target::ModelVersions, "source_path") => "mv.source",
            (Target::ModelVersions, "user_id") => "mv.user_id",
            (Target::ModelVersions, "current_stage") => "mv.current_stage",
            (Target::ModelVersions, "status") => "mv.status",
            (Target::ModelVersions, "version_number") => "mv.version",
            (Target::ModelVersions, "creation_timestamp") => "mv.creation_timestamp",
            (Target::ModelVersions, "last_updated_timestamp") => "mv.last_updated_timestamp",
            (Target::Traces, "trace_id" | "request_id") => "t.trace_id",
            (Target::Traces, "timestamp_ms") => "t.request_time",
            (Target::Traces, "execution_time_ms") => "t.execution_time",
            (Target::Traces, "end_time_ms") => "(t.request_time + coalesce(t.execution_time, 0))",
            (Target::Traces, "status") => "t.state",
            (Target::Traces, "client_request_id") => "t.client_request_id",
            (Target::Traces, "experiment_id") => "CAST(t.experiment_id AS TEXT)",
            (Target::Traces, "name") => {
                "(SELECT x.value FROM trace_tags x WHERE x.trace = t.id AND x.key = 'mlflow.traceName')"
            }
            (Target::Traces, "run_id") => {
                "(SELECT x.value FROM trace_metadata x WHERE x.trace = t.id AND x.key = 'mlflow.sourceRun')"
            }
            _ => {
                return Err(invalid(format!(
                    "Invalid attribute key '{name}' specified for this search"
                )));
            }
        };
        Ok(col)
    }

    /// `(table, owner column)` of this target's tags.
    fn tags(self) -> (&'static str, &'static str) {
        match self {
            Target::Runs => ("tags", "run"),
            Target::Experiments => ("experiment_tags", "experiment_id"),
            Target::LoggedModels => ("logged_model_tags", "model"),
            Target::RegisteredModels => ("registered_model_tags", "model"),
            Target::ModelVersions => ("model_version_tags", "version"),
            Target::Traces => ("trace_tags", "trace"),
        }
    }

    /// The tie-breakers appended after the requested keys; the last is unique.
    pub fn tie_breakers(self) -> Vec<SortExpr> {
        let k = |expr: &str, ascending| SortExpr {
            expr: expr.into(),
            ascending,
        };
        match self {
            Target::Runs => vec![k("r.start_time", false), k("r.run_uuid", true)],
            Target::Experiments => vec![k("e.creation_time", false), k("e.experiment_id", true)],
            Target::LoggedModels => {
                vec![k("m.creation_timestamp_ms", false), k("m.model_id", true)]
            }
            Target::RegisteredModels => vec![k("rm.name", true)],
            Target::ModelVersions => vec![k("rm.name", true), k("mv.version", false)],
            Target::Traces => vec![k("t.request_time", false), k("t.trace_id", true)],
        }
    }
}

/// Restriction of LoggedModel metric filters to the request's datasets.
fn dataset_restriction(sql: &mut Sql, alias: &str, datasets: &[DatasetRef]) -> String {
    if datasets.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = datasets
        .iter()
        .map(|d| {
            let name = sql.bind(d.dataset_name.clone());
            match &d.dataset_digest {
                Some(digest) => {
                    let digest = sql.bind(digest.clone());
                    format!("({alias}.dataset_name = {name} AND {alias}.dataset_digest = {digest})")
                }
                None => format!("{alias}.dataset_name = {name}"),
            }
        })
        .collect();
    format!(" AND ({})", parts.join(" OR "))
}

/// `col <op> value` in SQL.
fn condition(sql: &mut Sql, col: &str, op: Op, value: &Value) -> Result<String> {
    let scalar = |sql: &mut Sql| -> Result<String> {
        match value {
            Value::String(s) => Ok(sql.bind(s.clone())),
            Value::Number(n) => Ok(sql.bind(*n)),
            other => Err(invalid(format!(
                "Invalid value {other:?} for comparison with '{}'",
                op_text(op)
            ))),
        }
    };
    Ok(match op {
        Op::Eq => format!("{col} = {}", scalar(sql)?),
        Op::Ne => format!("{col} != {}", scalar(sql)?),
        Op::Lt => format!("{col} < {}", scalar(sql)?),
        Op::Le => format!("{col} <= {}", scalar(sql)?),
        Op::Gt => format!("{col} > {}", scalar(sql)?),
        Op::Ge => format!("{col} >= {}", scalar(sql)?),
        Op::Like => {
            let p = scalar(sql)?;
            format!("{col} LIKE {p}{}", sql.like())
        }
        Op::ILike => {
            let p = scalar(sql)?;
            format!("lower({col}) LIKE lower({p}){}", sql.like())
        }
        Op::In | Op::NotIn => {
            let Value::List(items) = value else {
                return Err(invalid("IN and NOT IN need a list of quoted strings"));
            };
            let list = sql.bind_list(items);
            if op == Op::In {
                format!("{col} IN {list}")
            } else {
                format!("{col} NOT IN {list}")
            }
        }
        Op::IsNull => format!("{col} IS NULL"),
        Op::IsNotNull => format!("{col} IS NOT NULL"),
        // SQLite's REGEXP is the `regexp(pattern, text)` function the store registers.
        Op::RLike => {
            let p = scalar(sql)?;
            match sql.dialect {
                Dialect::Sqlite => format!("{col} REGEXP {p}"),
                Dialect::Postgres => format!("{col} ~ {p}"),
            }
        }
    })
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Like => "LIKE",
        Op::ILike => "ILIKE",
        Op::In => "IN",
        Op::NotIn => "NOT IN",
        Op::IsNull => "IS NULL",
        Op::IsNotNull => "IS NOT NULL",
        Op::RLike => "RLIKE",
    }
}

/// The longest value, in bytes, that PostgreSQL's `(key, value, owner)` indexes of the text
/// key/value tables hold: they are partial (`WHERE octet_length(value) <= 1024`), as a B-tree
/// entry cannot exceed a third of a page and MLflow accepts values of thousands of characters.
pub const INDEXED_VALUE_BYTES: usize = 1024;

/// The tables with such an index.
pub const VALUE_INDEXED_TABLES: &[&str] = &[
    "experiment_tags",
    "params",
    "tags",
    "trace_tags",
    "trace_metadata",
];

/// The run-owned key/value tables whose PostgreSQL rows carry their run's experiment
/// (`experiment_id`, always the run's), indexed `(key, value, experiment_id, run)`: tied to the
/// searched run with `x.experiment_id = r.experiment_id`, a comparison reads the searched
/// experiment's entries of that index, not those of every experiment.
pub const EXPERIMENT_KEYED_TABLES: &[&str] = &["params", "tags"];

/// The condition that lets PostgreSQL answer `x.value <op> <value>` on `table` from its partial
/// `(key, value, owner)` index: for `=` and `IN` with every value at most
/// [`INDEXED_VALUE_BYTES`] long, a matching value is that short too (the "C" collation compares
/// bytes), so `octet_length(x.value) <= 1024` changes no result and matches the index's
/// predicate. Empty otherwise, and always in SQLite, whose indexes hold every value.
fn indexed_value(dialect: Dialect, table: &str, op: Op, value: &Value) -> &'static str {
    let short = |v: &String| v.len() <= INDEXED_VALUE_BYTES;
    let fits = match (op, value) {
        (Op::Eq, Value::String(v)) => short(v),
        (Op::In, Value::List(vs)) => vs.iter().all(short),
        _ => false,
    };
    if dialect == Dialect::Postgres && fits && VALUE_INDEXED_TABLES.contains(&table) {
        " AND octet_length(x.value) <= 1024"
    } else {
        ""
    }
}

/// A key/value table (params, tags, metrics) compared through `EXISTS`: a missing key never
/// matches, except `IS NULL`, which is exactly "the key is missing".
fn key_value_condition(
    sql: &mut Sql,
    table: &str,
    owner: &str,
    target_id: &str,
    key: &str,
    extra: &str,
    cmp: &Comparison,
) -> Result<String> {
    let k = sql.bind(key.to_string());
    let experiment = if sql.dialect == Dialect::Postgres
        && owner == "run"
        && EXPERIMENT_KEYED_TABLES.contains(&table)
    {
        " AND x.experiment_id = r.experiment_id"
    } else {
        ""
    };
    let base = format!(
        "SELECT 1 FROM {table} x WHERE x.{owner} = {target_id}{experiment} AND x.key = {k}{extra}"
    );
    Ok(match cmp.op {
        Op::IsNull => format!("NOT EXISTS ({base})"),
        Op::IsNotNull => format!("EXISTS ({base})"),
        op => {
            let c = condition(sql, "x.value", op, &cmp.value)?;
            let indexed = indexed_value(sql.dialect, table, op, &cmp.value);
            format!("EXISTS ({base} AND {c}{indexed})")
        }
    })
}

/// The latest value (NULL when missing or NaN) of a LoggedModel's metric `k` (a placeholder),
/// counting only values on `datasets` when non-empty: the greatest `(timestamp, step)`, ties
/// to the largest value with NaN lowest — the evaluator's `latest_logged_model_metric`.
fn logged_model_metric_value(sql: &mut Sql, id: &str, k: &str, datasets: &[DatasetRef]) -> String {
    let ds = dataset_restriction(sql, "x", datasets);
    format!(
        "(SELECT x.value FROM logged_model_metrics x WHERE x.model = {id} AND x.key = {k}{ds} \
         ORDER BY x.timestamp DESC, x.step DESC, x.is_nan ASC, x.value DESC LIMIT 1)"
    )
}

/// Whether a filter compares a metric.
fn has_metric_comparison(expr: &Expr) -> bool {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().any(has_metric_comparison),
        Expr::Compare(c) => c.key.entity == Entity::Metric,
    }
}

/// MLflow's rule for a LoggedModel search with `datasets` and no metric comparison: a model
/// must have at least one metric logged on one of the datasets. `None` when it does not apply.
pub fn logged_model_dataset_condition(
    sql: &mut Sql,
    filter: Option<&Expr>,
    datasets: &[DatasetRef],
) -> Option<String> {
    if datasets.is_empty() || filter.is_some_and(has_metric_comparison) {
        return None;
    }
    let ds = dataset_restriction(sql, "x", datasets);
    Some(format!(
        "EXISTS (SELECT 1 FROM logged_model_metrics x WHERE x.model = m.id{ds})"
    ))
}

/// Translates one comparison.
fn comparison(
    sql: &mut Sql,
    target: Target,
    cmp: &Comparison,
    model_datasets: &[DatasetRef],
) -> Result<String> {
    let id = target.id();
    let name = cmp.key.name.as_str();
    match cmp.key.entity {
        Entity::Attribute => {
            let col = target.attribute(name, false)?;
            condition(sql, col, cmp.op, &cmp.value)
        }
        Entity::Param => {
            let (table, owner) = match target {
                Target::Runs => ("params", "run"),
                Target::LoggedModels => ("logged_model_params", "model"),
                _ => {
                    return Err(invalid("Invalid entity type 'params' for this search"));
                }
            };
            key_value_condition(sql, table, owner, id, name, "", cmp)
        }
        Entity::Tag if name == PROMPT_TAG && target.is_registry() => {
            // A registry entity without the prompt tag reads as `'false'`.
            let (table, owner) = target.tags();
            let k = sql.bind(name.to_string());
            let col = format!(
                "coalesce((SELECT x.value FROM {table} x WHERE x.{owner} = {id} AND x.key = {k}), \
                 'false')"
            );
            condition(sql, &col, cmp.op, &cmp.value)
        }
        Entity::Tag if name == LINKED_PROMPTS_TAG && target == Target::Traces => {
            linked_prompt_condition(sql, id, cmp)
        }
        Entity::Tag => {
            let (table, owner) = target.tags();
            key_value_condition(sql, table, owner, id, name, "", cmp)
        }
        Entity::Issue => {
            if target != Target::Traces {
                return Err(invalid("Invalid entity type 'issue' for this search"));
            }
            // An `IssueReference` assessment: its name is the issue id, its body has `issue`.
            let Value::String(v) = &cmp.value else {
                return Err(invalid("Expected a quoted string value for an issue id"));
            };
            let v = sql.bind(v.clone());
            let is_issue = match sql.dialect {
                Dialect::Sqlite => "json_type(a.body, '$.issue') IS NOT NULL",
                Dialect::Postgres => "(a.body::jsonb) ? 'issue'",
            };
            Ok(format!(
                "EXISTS (SELECT 1 FROM assessments a WHERE a.trace = {id} AND a.name = {v} \
                 AND {is_issue})"
            ))
        }
        Entity::Metric => match target {
            // A NaN latest value is stored as NULL: for IS [NOT] NULL it reads as missing.
            Target::Runs => key_value_condition(
                sql,
                "latest_metrics",
                "run",
                id,
                name,
                if matches!(cmp.op, Op::IsNull | Op::IsNotNull) {
                    " AND x.value IS NOT NULL"
                } else {
                    ""
                },
                cmp,
            ),
            Target::LoggedModels => {
                // The latest value among the model's (dataset-restricted) values.
                let k = sql.bind(name.to_string());
                let col = logged_model_metric_value(sql, id, &k, model_datasets);
                condition(sql, &col, cmp.op, &cmp.value)
            }
            _ => Err(invalid("Invalid entity type 'metrics' for this search")),
        },
        Entity::Metadata => {
            if target != Target::Traces {
                return Err(invalid("Invalid entity type 'metadata' for this search"));
            }
            key_value_condition(sql, "trace_metadata", "trace", id, name, "", cmp)
        }
        Entity::Span => {
            if target != Target::Traces {
                return Err(invalid("Invalid entity type 'span' for this search"));
            }
            if let Some(attr) = name.strip_prefix("attributes.") {
                return span_attribute_condition(sql, id, attr, cmp);
            }
            let col = match name {
                "name" => "s.name",
                "type" => "s.type",
                "status" => "s.status",
                "content" => span_text(sql.dialect),
                other => return Err(invalid(format!("Invalid span key '{other}'"))),
            };
            let c = condition(sql, col, cmp.op, &cmp.value)?;
            Ok(format!(
                "EXISTS (SELECT 1 FROM spans s WHERE s.trace = {id} AND {c})"
            ))
        }
        Entity::Feedback | Entity::Expectation => {
            if target != Target::Traces {
                return Err(invalid("Invalid entity type 'assessment' for this search"));
            }
            assessment_condition(sql, id, cmp)
        }
        Entity::Dataset => {
            if target != Target::Runs {
                return Err(invalid("Invalid entity type 'datasets' for this search"));
            }
            match name {
                "name" | "digest" => {
                    let c = condition(sql, &format!("d.{name}"), cmp.op, &cmp.value)?;
                    Ok(format!(
                        "EXISTS (SELECT 1 FROM inputs i JOIN datasets d ON d.id = i.dataset \
                         WHERE i.run = {id} AND {c})"
                    ))
                }
                "context" => {
                    let c = condition(sql, "it.value", cmp.op, &cmp.value)?;
                    Ok(format!(
                        "EXISTS (SELECT 1 FROM inputs i JOIN input_tags it ON it.input = i.id \
                         AND it.key = 'mlflow.data.context' WHERE i.run = {id} AND {c})"
                    ))
                }
                other => Err(invalid(format!(
                    "Invalid dataset key '{other}'; expected name, digest or context"
                ))),
            }
        }
    }
}

/// The text `span.content` (and the trace attribute `text`) is matched against: the span's
/// name and its attributes as `key: value` (typed values as text), not the stored OTel JSON,
/// whose own field names (`value`, `string_value`, ...) would match everything.
fn span_text(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "(s.name || ' ' || coalesce((SELECT group_concat((a.value ->> '$.key') || ': ' || \
             coalesce(a.value ->> '$.value.string_value', \
               CAST(a.value ->> '$.value.int_value' AS TEXT), \
               CAST(a.value ->> '$.value.double_value' AS TEXT), \
               CASE a.value ->> '$.value.bool_value' WHEN 1 THEN 'true' WHEN 0 THEN 'false' END, \
               ''), ' ') FROM json_each(s.content, '$.attributes') a), ''))"
        }
        Dialect::Postgres => {
            "(s.name || ' ' || coalesce((SELECT string_agg((a.e ->> 'key') || ': ' || \
             coalesce(a.e -> 'value' ->> 'string_value', a.e -> 'value' ->> 'int_value', \
               a.e -> 'value' ->> 'double_value', a.e -> 'value' ->> 'bool_value', ''), ' ') \
             FROM jsonb_array_elements(s.content::jsonb -> 'attributes') a(e)), ''))"
        }
    }
}

/// `span.attributes.<attr> <op> value`: some span of the trace has the attribute, and its
/// value satisfies the comparison. Spans are stored as OTel protobuf JSON (`attributes` a list
/// of `{key, value: {string_value | int_value | double_value | bool_value}}`); MLflow writes
/// its attribute values JSON-encoded, so a string value that is a JSON string is compared
/// decoded (`"LLM"` as `LLM`), anything else as written.
fn span_attribute_condition(
    sql: &mut Sql,
    id: &str,
    attr: &str,
    cmp: &Comparison,
) -> Result<String> {
    let k = sql.bind(attr.to_string());
    let (from, key, value) = match sql.dialect {
        Dialect::Sqlite => (
            "spans s, json_each(s.content, '$.attributes') a",
            "(a.value ->> '$.key')",
            "(CASE WHEN json_valid(a.value ->> '$.value.string_value') \
               AND json_type(a.value ->> '$.value.string_value') = 'text' \
             THEN (a.value ->> '$.value.string_value') ->> '$' \
             ELSE coalesce(a.value ->> '$.value.string_value', \
               CAST(a.value ->> '$.value.int_value' AS TEXT), \
               CAST(a.value ->> '$.value.double_value' AS TEXT), \
               CASE a.value ->> '$.value.bool_value' WHEN 1 THEN 'true' WHEN 0 THEN 'false' END) \
             END)",
        ),
        Dialect::Postgres => (
            "spans s, jsonb_array_elements(s.content::jsonb -> 'attributes') a(e)",
            "(a.e ->> 'key')",
            // A JSON string literal (checked by pattern: PostgreSQL 15 has no `IS JSON`, and a
            // failed cast would abort the statement) is compared decoded.
            "(CASE WHEN (a.e -> 'value' ->> 'string_value') ~ \
               '^\"([^\"\\\\[:cntrl:]]|\\\\([\"\\\\/bfnrt]|u[0-9a-fA-F]{4}))*\"$' \
             THEN (a.e -> 'value' ->> 'string_value')::jsonb #>> '{}' \
             ELSE coalesce(a.e -> 'value' ->> 'string_value', a.e -> 'value' ->> 'int_value', \
               a.e -> 'value' ->> 'double_value', a.e -> 'value' ->> 'bool_value') \
             END)",
        ),
    };
    let c = condition(sql, value, cmp.op, &cmp.value)?;
    Ok(format!(
        "EXISTS (SELECT 1 FROM {from} WHERE s.trace = {id} AND {key} = {k} AND {c})"
    ))
}

/// `prompt = "<name>/<version>"` (the tag `mlflow.linkedPrompts`, `=` only, checked by the
/// parser): the trace is linked to that prompt version, that is, the tag's JSON list (written
/// by `link-prompts` and by the client) holds `{"name": <name>, "version": <version>}`. A tag
/// that is not such a list links nothing (and never fails the search: PostgreSQL casts only
/// text a pattern has shown to be a list of flat objects of strings and integers).
fn linked_prompt_condition(sql: &mut Sql, id: &str, cmp: &Comparison) -> Result<String> {
    let Value::String(v) = &cmp.value else {
        return Err(invalid(
            "Invalid prompts filter value. Expected format: prompt = \"name/version\"",
        ));
    };
    let (name, version) = v.split_once('/').ok_or_else(|| {
        invalid(format!(
            "Invalid prompts filter value '{v}'. Expected format: prompt = \"name/version\""
        ))
    })?;
    let k = sql.bind(LINKED_PROMPTS_TAG.to_string());
    let (n, ver) = (sql.bind(name.to_string()), sql.bind(version.to_string()));
    Ok(match sql.dialect {
        Dialect::Sqlite => format!(
            "EXISTS (SELECT 1 FROM trace_tags x, json_each(CASE WHEN json_valid(x.value) AND \
             json_type(x.value) = 'array' THEN x.value ELSE '[]' END) p \
             WHERE x.trace = {id} AND x.key = {k} AND json_type(p.value) = 'object' \
             AND json_extract(p.value, '$.name') = {n} \
             AND CAST(json_extract(p.value, '$.version') AS TEXT) = {ver})"
        ),
        Dialect::Postgres => {
            const STR: &str = r#""([^"\\[:cntrl:]]|\\(["\\/bfnrt]|u[0-9a-fA-F]{4}))*""#;
            let scalar = format!("({STR}|-?[0-9]+)");
            let pair = format!(r"\s*{STR}\s*:\s*{scalar}\s*");
            let obj = format!(r"\{{({pair}(,{pair})*)?\}}");
            let list = format!(r"^\s*\[\s*({obj}\s*(,\s*{obj}\s*)*)?\]\s*$");
            let re = sql.bind(list);
            format!(
                "EXISTS (SELECT 1 FROM trace_tags x CROSS JOIN LATERAL jsonb_array_elements(\
                 CASE WHEN x.value ~ {re} THEN x.value::jsonb ELSE '[]'::jsonb END) p(e) \
                 WHERE x.trace = {id} AND x.key = {k} AND p.e ->> 'name' = {n} \
                 AND p.e ->> 'version' = {ver})"
            )
        }
    })
}

/// `feedback.<name>` / `expectation.<name>`: some valid assessment of that kind and name. Its
/// value is compared as MLflow does: `=`/`!=` against the JSON value or the JSON of a string
/// (`'yes'` matches `"yes"`, `'true'` matches `true`), `LIKE`/`ILIKE`/`RLIKE` against the JSON
/// text, `<`, `<=`, `>`, `>=` numerically (numbers only, booleans excluded); `IS NULL` is "no
/// such assessment".
fn assessment_condition(sql: &mut Sql, id: &str, cmp: &Comparison) -> Result<String> {
    let kind = if cmp.key.entity == Entity::Feedback {
        "feedback"
    } else {
        "expectation"
    };
    let n = sql.bind(cmp.key.name.clone());
    let (present, valid, json, number) = match sql.dialect {
        Dialect::Sqlite => (
            format!("json_type(a.body, '$.{kind}') IS NOT NULL"),
            "coalesce(json_extract(a.body, '$.valid'), 1) != 0".to_string(),
            format!(
                "coalesce(a.body -> '$.{kind}.value', a.body ->> '$.{kind}.serialized_value.value')"
            ),
            format!(
                "(CASE WHEN json_type(a.body, '$.{kind}.value') IN ('integer', 'real') \
                 THEN json_extract(a.body, '$.{kind}.value') END)"
            ),
        ),
        Dialect::Postgres => (
            format!("(a.body::jsonb) ? '{kind}'"),
            "coalesce((a.body::jsonb ->> 'valid')::boolean, true)".to_string(),
            format!(
                "coalesce((a.body::jsonb -> '{kind}' -> 'value')::text, \
                 a.body::jsonb -> '{kind}' -> 'serialized_value' ->> 'value')"
            ),
            format!(
                "(CASE WHEN jsonb_typeof(a.body::jsonb -> '{kind}' -> 'value') = 'number' \
                 THEN (a.body::jsonb -> '{kind}' ->> 'value')::float8 END)"
            ),
        ),
    };
    let base = format!(
        "SELECT 1 FROM assessments a WHERE a.trace = {id} AND a.name = {n} AND {present} AND {valid}"
    );
    Ok(match cmp.op {
        Op::IsNull => format!("NOT EXISTS ({base})"),
        Op::IsNotNull => format!("EXISTS ({base})"),
        Op::Eq | Op::Ne => {
            let Value::String(v) = &cmp.value else {
                return Err(invalid("Expected a quoted string value for an assessment"));
            };
            let raw = sql.bind(v.clone());
            let quoted = sql.bind(serde_json::Value::String(v.clone()).to_string());
            let eq = format!("({json} = {raw} OR {json} = {quoted})");
            if cmp.op == Op::Eq {
                format!("EXISTS ({base} AND {eq})")
            } else {
                format!("EXISTS ({base} AND NOT {eq})")
            }
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let c = condition(sql, &number, cmp.op, &cmp.value)?;
            format!("EXISTS ({base} AND {c})")
        }
        op => {
            let c = condition(sql, &json, op, &cmp.value)?;
            format!("EXISTS ({base} AND {c})")
        }
    })
}

/// Translates a filter tree.
pub fn filter(
    sql: &mut Sql,
    target: Target,
    expr: &Expr,
    model_datasets: &[DatasetRef],
) -> Result<String> {
    Ok(match expr {
        Expr::Compare(c) => comparison(sql, target, c, model_datasets)?,
        Expr::And(items) | Expr::Or(items) => {
            if items.is_empty() {
                return Ok(if matches!(expr, Expr::And(_)) {
                    TRUE
                } else {
                    FALSE
                }
                .into());
            }
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts = items
                .iter()
                .map(|e| filter(sql, target, e, model_datasets))
                .collect::<Result<Vec<_>>>()?;
            format!("({})", parts.join(joiner))
        }
    })
}

/// The SQL expression of one order key (a scalar subquery for metrics, params and tags).
fn order_expr(
    sql: &mut Sql,
    target: Target,
    order: &OrderBy,
    dataset: Option<&DatasetRef>,
) -> Result<Vec<SortExpr>> {
    let id = target.id();
    let name = order.key.name.as_str();
    let one = |expr: String| {
        Ok(vec![SortExpr {
            expr,
            ascending: order.ascending,
        }])
    };
    match order.key.entity {
        Entity::Attribute => one(target.attribute(name, true)?.to_string()),
        Entity::Param => {
            let (table, owner) = match target {
                Target::Runs => ("params", "run"),
                Target::LoggedModels => ("logged_model_params", "model"),
                _ => {
                    return Err(invalid("only runs and logged models are ordered by params"));
                }
            };
            let k = sql.bind(name.to_string());
            one(format!(
                "(SELECT x.value FROM {table} x WHERE x.{owner} = {id} AND x.key = {k})"
            ))
        }
        Entity::Tag => {
            let (table, owner) = target.tags();
            let k = sql.bind(name.to_string());
            one(format!(
                "(SELECT x.value FROM {table} x WHERE x.{owner} = {id} AND x.key = {k})"
            ))
        }
        Entity::Metric => {
            // As MLflow: numbers first (in the requested direction), then NaN, then missing,
            // in both directions. Two keys: the class (0 number, 1 NaN, NULL missing), always
            // ascending, then the value (NULL for NaN).
            let k = sql.bind(name.to_string());
            let source = match target {
                // Runs are ordered by metrics through `RunJoins` (`run_order_keys`).
                Target::LoggedModels => {
                    let ds = dataset_restriction(
                        sql,
                        "x",
                        dataset.map(std::slice::from_ref).unwrap_or(&[]),
                    );
                    format!(
                        "FROM logged_model_metrics x WHERE x.model = {id} AND x.key = {k}{ds} \
                         ORDER BY x.timestamp DESC, x.step DESC, x.is_nan ASC, x.value DESC \
                         LIMIT 1"
                    )
                }
                _ => {
                    return Err(invalid(
                        "only runs and logged models are ordered by metrics",
                    ));
                }
            };
            Ok(vec![
                SortExpr {
                    expr: format!("(SELECT x.is_nan {source})"),
                    ascending: true,
                },
                SortExpr {
                    expr: format!("(SELECT x.value {source})"),
                    ascending: order.ascending,
                },
            ])
        }
        Entity::Metadata if target == Target::Traces => {
            let k = sql.bind(name.to_string());
            one(format!(
                "(SELECT x.value FROM trace_metadata x WHERE x.trace = {id} AND x.key = {k})"
            ))
        }
        Entity::Metadata => Err(invalid("only traces are ordered by metadata")),
        Entity::Dataset => Err(invalid("cannot order by datasets")),
        Entity::Span => Err(invalid("cannot order by spans")),
        Entity::Feedback | Entity::Expectation | Entity::Issue => {
            Err(invalid("cannot order by assessments"))
        }
    }
}

/// The order keys of a run or experiment search, tie-breakers appended.
pub fn order_keys(sql: &mut Sql, target: Target, order: &[OrderBy]) -> Result<Vec<SortExpr>> {
    let mut keys = Vec::new();
    for o in order {
        keys.extend(order_expr(sql, target, o, None)?);
    }
    keys.extend(target.tie_breakers());
    Ok(keys)
}

/// The `latest_metrics` rows a run search joins, at most one per metric key, each 1:1 with the
/// run (the table is unique on `(run, key)`): one join per key replaces the correlated
/// subqueries that the filter and the order key would otherwise each evaluate per run.
///
/// A metric compared in a top-level conjunct of the filter is an inner join carrying the
/// comparisons, written `CROSS JOIN`, which SQLite never reorders: the query stays driven by
/// `runs_by_experiment_stage_start`, so its cost follows the size of the searched experiments.
/// (Left to itself the planner drives such a join from `latest_metrics_by_key_value`, which
/// reads that key's rows in every experiment: about 20 times slower on an experiment of 2000
/// runs once others hold 20 000 more.) A metric only ordered by is a `LEFT JOIN`, so runs
/// without it stay in the result, last.
#[derive(Debug, Default)]
pub struct RunJoins {
    metrics: Vec<MetricJoin>,
}

#[derive(Debug)]
struct MetricJoin {
    /// The metric key.
    key: String,
    /// The table alias, `lm1`, `lm2`, ...
    alias: String,
    /// The key's placeholder.
    key_param: String,
    /// Comparisons on `<alias>.value`; none: a `LEFT JOIN`.
    conditions: Vec<String>,
}

impl RunJoins {
    /// The join of metric `key`, added when missing.
    fn metric(&mut self, sql: &mut Sql, key: &str) -> &mut MetricJoin {
        let i = match self.metrics.iter().position(|j| j.key == key) {
            Some(i) => i,
            None => {
                self.metrics.push(MetricJoin {
                    key: key.to_string(),
                    alias: format!("lm{}", self.metrics.len() + 1),
                    key_param: sql.bind(key.to_string()),
                    conditions: Vec::new(),
                });
                self.metrics.len() - 1
            }
        };
        &mut self.metrics[i]
    }

    /// `runs r` and the joins, for the `FROM` clause.
    pub fn tables(&self, dialect: Dialect) -> String {
        // SQLite never reorders a CROSS JOIN; PostgreSQL has no `CROSS JOIN ... ON` and plans
        // the join order itself.
        let inner = match dialect {
            Dialect::Sqlite => "CROSS JOIN",
            Dialect::Postgres => "JOIN",
        };
        let mut from = String::from("runs r");
        for j in &self.metrics {
            let (a, k) = (&j.alias, &j.key_param);
            let on = format!("{a}.run = r.id AND {a}.key = {k}");
            if j.conditions.is_empty() {
                from.push_str(&format!(" LEFT JOIN latest_metrics {a} ON {on}"));
            } else {
                let conditions = j.conditions.join(" AND ");
                from.push_str(&format!(
                    " {inner} latest_metrics {a} ON {on} AND {conditions}"
                ));
            }
        }
        from
    }
}

/// The top-level conjuncts of a filter (nested `AND`s flattened).
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::And(items) => items.iter().flat_map(conjuncts).collect(),
        other => vec![other],
    }
}

/// Translates a run search's filter: the metric comparisons among its top-level conjuncts
/// become conditions of `joins` (all but `IS NULL`, which asks for the key's absence); the
/// returned conditions, all to hold, are the rest.
pub fn run_filter(sql: &mut Sql, joins: &mut RunJoins, expr: &Expr) -> Result<Vec<String>> {
    let mut wheres = Vec::new();
    for c in conjuncts(expr) {
        match c {
            Expr::Compare(cmp) if cmp.key.entity == Entity::Metric && cmp.op != Op::IsNull => {
                let join = joins.metric(sql, &cmp.key.name);
                // A NaN latest value is stored as NULL: it fails every comparison and, for
                // IS NOT NULL, reads as missing.
                let condition =
                    condition(sql, &format!("{}.value", join.alias), cmp.op, &cmp.value)?;
                join.conditions.push(condition);
            }
            other => wheres.push(filter(sql, Target::Runs, other, &[])?),
        }
    }
    Ok(wheres)
}

/// The order keys of a run search, tie-breakers appended; metrics through `joins` (call
/// [`run_filter`] first, so that a metric the filter joins is not joined twice).
pub fn run_order_keys(
    sql: &mut Sql,
    joins: &mut RunJoins,
    order: &[OrderBy],
) -> Result<Vec<SortExpr>> {
    let mut keys = Vec::new();
    for o in order {
        if o.key.entity == Entity::Metric {
            // As MLflow: numbers first (in the requested direction), then NaN, then missing,
            // in both directions. Two keys: the class (0 number, 1 NaN, NULL missing), always
            // ascending, then the value (NULL for NaN).
            let alias = &joins.metric(sql, &o.key.name).alias;
            keys.push(SortExpr {
                expr: format!("{alias}.is_nan"),
                ascending: true,
            });
            keys.push(SortExpr {
                expr: format!("{alias}.value"),
                ascending: o.ascending,
            });
        } else {
            keys.extend(order_expr(sql, Target::Runs, o, None)?);
        }
    }
    keys.extend(Target::Runs.tie_breakers());
    Ok(keys)
}

/// The order keys of a LoggedModel search, tie-breakers appended.
pub fn logged_model_order_keys(
    sql: &mut Sql,
    order: &[LoggedModelOrderBy],
) -> Result<Vec<SortExpr>> {
    let mut keys = Vec::new();
    for o in order {
        keys.extend(order_expr(
            sql,
            Target::LoggedModels,
            &o.order,
            o.dataset.as_ref(),
        )?);
    }
    keys.extend(Target::LoggedModels.tie_breakers());
    Ok(keys)
}

/// "This row comes strictly after the row whose keys were `last`" in the order `keys`
/// (each key NULLS LAST).
fn after(sql: &mut Sql, keys: &[SortExpr], last: &[SortVal]) -> String {
    let mut acc: Option<String> = None;
    for (k, v) in keys.iter().zip(last).rev() {
        let e = &k.expr;
        let (gt, eq) = match v {
            SortVal::N => (None, format!("{e} IS NULL")),
            v => {
                let p = sql.bind(v.to_param());
                let op = if k.ascending { ">" } else { "<" };
                (
                    Some(format!("({e} {op} {p} OR {e} IS NULL)")),
                    format!("{e} = {p}"),
                )
            }
        };
        acc = Some(match (acc, gt) {
            (None, Some(gt)) => gt,
            (None, None) => FALSE.into(),
            (Some(rest), Some(gt)) => format!("({gt} OR ({eq} AND {rest}))"),
            (Some(rest), None) => format!("({eq} AND {rest})"),
        });
    }
    acc.unwrap_or_else(|| TRUE.into())
}

/// The page query of a trace search over experiments `exps` (their ids, already parsed) in
/// `sql`'s dialect, the fingerprint its page tokens carry, and its number of sort keys.
pub fn traces_page_query(
    mut sql: Sql,
    req: &crate::traces::SearchTraces,
    exps: &[i64],
) -> Result<(Sql, u64, usize)> {
    // By display text: the trace-only entities are outside serde (see `Entity`).
    let order: Vec<String> = req.order_by.iter().map(|o| o.to_string()).collect();
    let query = fingerprint(&(
        "traces",
        &req.experiment_ids,
        req.filter.as_ref().map(|f| f.to_string()),
        order,
    ));
    let list = sql.bind_list(exps);
    let mut wheres = vec![format!("t.experiment_id IN {list}")];
    if let Some(f) = &req.filter {
        wheres.push(filter(&mut sql, Target::Traces, f, &[])?);
    }
    let mut keys = order_keys(&mut sql, Target::Traces, &req.order_by)?;
    let mut from = "traces t";
    // SQLite (schema 8): a newest-first search of one experiment with a top-level
    // `tags.k = 'v'` reads its page from the tag index, which holds each tag's trace
    // experiment, time and id in that order, instead of walking every trace of the experiment
    // and probing its tags. The filter still applies in full.
    let newest_first = keys.iter().all(|k| {
        (k.expr == "t.request_time" && !k.ascending) || (k.expr == "t.trace_id" && k.ascending)
    });
    if let (Dialect::Sqlite, [exp], true, Some((name, value))) = (
        sql.dialect,
        exps,
        newest_first,
        req.filter.as_ref().and_then(tag_equality),
    ) {
        let (name, value, exp) = (
            sql.bind(name.to_string()),
            sql.bind(value.to_string()),
            sql.bind(*exp),
        );
        wheres.push(format!(
            "w.key = {name} AND w.value = {value} AND w.experiment_id = {exp}"
        ));
        for k in &mut keys {
            k.expr = k.expr.replacen("t.", "w.", 1);
        }
        from = "trace_tags w CROSS JOIN traces t ON t.id = w.trace";
    }
    let last = match &req.page_token {
        Some(t) => Some(decode_token(t, query, keys.len())?),
        None => None,
    };
    page_query(
        &mut sql,
        Target::Traces,
        from,
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    Ok((sql, query, keys.len()))
}

/// A trace filter's top-level `tags.k = 'v'` (the filter itself or one operand of its AND):
/// `(k, v)`.
fn tag_equality(expr: &Expr) -> Option<(&str, &str)> {
    fn one(e: &Expr) -> Option<(&str, &str)> {
        let Expr::Compare(c) = e else { return None };
        match (&c.key.entity, c.op, &c.value) {
            (Entity::Tag, Op::Eq, Value::String(v)) if c.key.name != LINKED_PROMPTS_TAG => {
                Some((c.key.name.as_str(), v.as_str()))
            }
            _ => None,
        }
    }
    match expr {
        Expr::And(items) => items.iter().find_map(one),
        e => one(e),
    }
}

/// Finishes a page query: `SELECT <id>, <keys...> FROM <from> WHERE <wheres> [AND after]
/// ORDER BY <keys> LIMIT <limit>`. The last of `keys` is unique and never NULL (the
/// target's last tie-breaker, which every key list here ends with).
pub fn page_query(
    sql: &mut Sql,
    target: Target,
    from: &str,
    mut wheres: Vec<String>,
    keys: &[SortExpr],
    last: Option<&[SortVal]>,
    limit: usize,
) {
    if let Some(last) = last {
        let a = after(sql, keys, last);
        wheres.push(a);
    }
    let select: Vec<&str> = keys.iter().map(|k| k.expr.as_str()).collect();
    // Each key `NULLS LAST` (missing values last in both directions), except:
    // - a key whose expression an earlier key already orders by (a tie-breaker repeating a
    //   requested key, as `timestamp_ms DESC` does for traces): it can never decide, and
    //   SQLite sorts again for a repeated term instead of reading the rows in index order;
    // - the last key, a unique tie-breaker that is never NULL: written plainly, so an index in
    //   its order still serves the whole ORDER BY (SQLite's indexes hold NULLs first in
    //   ascending order, so `ASC NULLS LAST` would need a sort).
    let mut seen = std::collections::HashSet::new();
    let order: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| seen.insert(k.expr.as_str()))
        .map(|(i, k)| {
            let direction = if k.ascending { "ASC" } else { "DESC" };
            if i + 1 == keys.len() {
                format!("{} {direction}", k.expr)
            } else {
                format!("{} {direction} NULLS LAST", k.expr)
            }
        })
        .collect();
    let where_clause = if wheres.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", wheres.join(" AND "))
    };
    // Written into the text, not bound: SQLite marks a statement with a bound LIMIT to be
    // compiled again whenever that value is rebound, and a statement cache that clears the
    // bindings of the statements it takes back (rusqlite's) then compiles every search anew.
    let lim = limit.min(i64::MAX as usize);
    sql.text = format!(
        "SELECT {}, {} FROM {from}{where_clause} ORDER BY {} LIMIT {lim}",
        target.id(),
        select.join(", "),
        order.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let keys = vec![
            SortVal::N,
            SortVal::I(-5),
            SortVal::R(f64::INFINITY.to_bits()),
            SortVal::S("é'\"".into()),
        ];
        let t = encode_token(42, keys.clone());
        assert_eq!(decode_token(&t, 42, 4).unwrap(), keys);
        assert!(decode_token(&t, 43, 4).is_err());
        assert!(decode_token(&t, 42, 3).is_err());
        for bad in ["", "!!!", "e30", "bm90IGpzb24"] {
            let e = decode_token(bad, 42, 4).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::InvalidArgument, "{bad}");
        }
    }
}

#[cfg(test)]
mod dialect_tests {
    use super::*;

    #[test]
    fn after_predicate_honours_nulls_last() {
        let keys = vec![
            SortExpr {
                expr: "a".into(),
                ascending: true,
            },
            SortExpr {
                expr: "b".into(),
                ascending: false,
            },
        ];
        let mut sql = Sql::new(Dialect::Sqlite);
        let p = after(&mut sql, &keys, &[SortVal::N, SortVal::I(3)]);
        assert_eq!(p, "(a IS NULL AND (b < ?1 OR b IS NULL))");
        let mut sql = Sql::new(Dialect::Sqlite);
        let p = after(&mut sql, &keys, &[SortVal::I(1), SortVal::I(3)]);
        assert_eq!(
            p,
            "((a > ?2 OR a IS NULL) OR (a = ?2 AND (b < ?1 OR b IS NULL)))"
        );
        let mut sql = Sql::new(Dialect::Postgres);
        let p = after(
            &mut sql,
            &keys,
            &[SortVal::S("x".into()), SortVal::R(1f64.to_bits())],
        );
        assert_eq!(
            p,
            "((a > ($2::text COLLATE \"C\") OR a IS NULL) OR (a = ($2::text COLLATE \"C\") AND \
             (b < $1::float8 OR b IS NULL)))"
        );
        assert_eq!(
            sql.params,
            vec![SqlParam::Real(1.0), SqlParam::Text("x".into())]
        );
    }

    /// PostgreSQL's value indexes hold values of at most 1 KiB: an `=` or `IN` on a text
    /// key/value table carries the index's predicate when its values fit, and only then (a
    /// longer value, other operators, metrics, SQLite: none).
    #[test]
    fn short_equalities_carry_the_value_index_predicate() {
        use crate::search::{Comparison, Entity, Key};
        let translate = |dialect, f: &str| {
            let expr = crate::search::parse_filter(crate::search::SearchKind::Runs, f)
                .unwrap()
                .unwrap();
            filter(&mut Sql::new(dialect), Target::Runs, &expr, &[]).unwrap()
        };
        // `IN` on a tag, built by hand: the run parser refuses it, the translation serves all.
        let tag_in = |dialect, values: &[&str]| {
            let cmp = Comparison {
                key: Key::new(Entity::Tag, "t"),
                op: Op::In,
                value: Value::List(values.iter().map(|v| v.to_string()).collect()),
            };
            filter(
                &mut Sql::new(dialect),
                Target::Runs,
                &Expr::Compare(cmp),
                &[],
            )
            .unwrap()
        };
        let predicate = format!("octet_length(x.value) <= {INDEXED_VALUE_BYTES}");
        let fits = "é".repeat(INDEXED_VALUE_BYTES / 2);
        let too_long = format!("{fits}x");
        for f in [
            "params.opt = 'adam'".to_string(),
            "tags.t = 'a'".to_string(),
            format!("params.p = '{fits}'"),
        ] {
            assert!(translate(Dialect::Postgres, &f).contains(&predicate), "{f}");
            assert!(
                !translate(Dialect::Sqlite, &f).contains("octet_length"),
                "{f}"
            );
        }
        assert!(tag_in(Dialect::Postgres, &["a", &fits]).contains(&predicate));
        assert!(!tag_in(Dialect::Postgres, &["a", &too_long]).contains("octet_length"));
        assert!(!tag_in(Dialect::Sqlite, &["a"]).contains("octet_length"));
        for f in [
            format!("params.p = '{too_long}'"),
            "params.opt != 'adam'".to_string(),
            "params.opt LIKE 'ad%'".to_string(),
            "metrics.loss = 1".to_string(),
        ] {
            assert!(
                !translate(Dialect::Postgres, &f).contains("octet_length"),
                "{f}"
            );
        }
    }

    /// In PostgreSQL a run's params and tags are tied to the searched run's experiment, for
    /// every operator, so their `(key, value, experiment_id, run)` indexes read the searched
    /// experiment's entries only; metrics, LoggedModel params, other targets and SQLite (whose
    /// tables have no such column) are not.
    #[test]
    fn run_params_and_tags_are_tied_to_the_run_experiment_in_postgres() {
        let translate = |dialect, kind, target, f: &str| {
            let expr = crate::search::parse_filter(kind, f).unwrap().unwrap();
            filter(&mut Sql::new(dialect), target, &expr, &[]).unwrap()
        };
        let tie = "x.experiment_id = r.experiment_id";
        let runs = crate::search::SearchKind::Runs;
        for f in [
            "params.opt = 'adam'",
            "params.opt LIKE 'ad%'",
            "tags.t != 'a'",
            "tags.t IS NULL",
        ] {
            assert!(
                translate(Dialect::Postgres, runs, Target::Runs, f).contains(tie),
                "{f}"
            );
            assert!(
                !translate(Dialect::Sqlite, runs, Target::Runs, f).contains("x.experiment_id"),
                "{f}"
            );
        }
        assert!(
            !translate(Dialect::Postgres, runs, Target::Runs, "metrics.loss < 1")
                .contains("x.experiment_id")
        );
        let models = crate::search::SearchKind::LoggedModels;
        assert!(
            !translate(
                Dialect::Postgres,
                models,
                Target::LoggedModels,
                "params.p = 'a'"
            )
            .contains("x.experiment_id")
        );
    }
}
