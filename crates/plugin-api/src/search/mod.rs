//! MLflow's search language as a typed expression tree, plus `OR` and parentheses.
//!
//! The host parses every `filter` and `order_by` string before it reaches a store, so stores
//! receive an [`Expr`] and a list of [`OrderBy`] keys whose entities, keys and comparators are
//! already validated for the kind of search ([`SearchKind`]). A store translates the tree to its
//! query language; a simple store may use the reference evaluator in [`eval`] instead. The
//! evaluator is also the normative meaning of a tree: SQL translations are property-tested
//! against it.
//!
//! Grammar (api.md §5, extended):
//!
//! ```text
//! filter     := or_expr
//! or_expr    := and_expr ( OR and_expr )*
//! and_expr   := primary ( AND primary )*
//! primary    := '(' or_expr ')' | comparison
//! comparison := identifier comparator value
//!             | identifier IS [NOT] NULL
//!             | identifier [NOT] IN '(' string ( ',' string )* ')'
//! identifier := [ entity '.' ] key
//! entity     := word | `quoted` | "quoted"
//! key        := word ( '.' word )* | `quoted` | "quoted"   (tags.mlflow.user = tags.`mlflow.user`)
//! comparator := = | != | < | <= | > | >= | LIKE | ILIKE
//! value      := string | number
//! string     := 'single' | "double"       (a quote inside is doubled or backslash-escaped)
//! number     := [+-] ( digits [ . [digits] ] | . digits ) [ (e|E) [+-] digits ]
//! order_by   := identifier [ ASC | DESC ]
//! ```
//!
//! `AND` binds tighter than `OR`; nested `AND`s (and nested `OR`s) are flattened, so the tree
//! of `a AND (b AND c)` is `And([a, b, c])` and a parenthesised comparison is just the
//! comparison. Parentheses nest at most [`MAX_NESTING`] deep; a filter holds at most
//! [`MAX_COMPARISONS`] comparisons and a list at most [`MAX_LIST_ITEMS`] values; a search takes
//! at most [`MAX_ORDER_BY_KEYS`] `order_by` keys. The limits are checked while parsing, so an
//! over-limit input is refused with `InvalidArgument` in bounded time and memory. Keywords and comparators are
//! case-insensitive, and so are entity prefixes (`metrics`, `TAGS`); attribute keys are
//! matched exactly, with MLflow's aliases (`created`, `Run name`, ...) mapped to their
//! canonical names. A bare key (no entity) is an attribute.
//!
//! Parse errors are [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) in
//! MLflow's wording and always name the 0-based character position and the offending token:
//! `Invalid filter 'metrics.a >> 1': unexpected token '>' at position 11, expected a quoted
//! string or a number`.
//!
//! [`Expr`], [`Comparison`], [`Key`], [`Op`], [`Value`] and [`OrderBy`] implement `Display`
//! as valid filter (or `order_by`) text that parses back to the same tree.

mod display;
pub mod eval;
pub mod metrics_sql;
mod parser;
pub mod sql;
mod validate;

pub use parser::{
    MAX_COMPARISONS, MAX_LIST_ITEMS, MAX_NESTING, MAX_ORDER_BY_KEYS, parse_filter, parse_order_by,
};

use serde::{Deserialize, Serialize};

/// Most `experiment_ids` in one search.
pub const MAX_EXPERIMENT_IDS: usize = 10_000;

/// Refuses a search over more than [`MAX_EXPERIMENT_IDS`] experiments with `InvalidArgument`.
pub fn check_experiment_ids(ids: &[String]) -> crate::Result<()> {
    if ids.len() > MAX_EXPERIMENT_IDS {
        return Err(crate::Error::invalid(format!(
            "Invalid experiment_ids: {} given, at most {MAX_EXPERIMENT_IDS} are allowed",
            ids.len()
        )));
    }
    Ok(())
}

/// Which search a filter belongs to; decides the entities, keys and comparators allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SearchKind {
    /// `search_runs` (api.md §5.2).
    Runs,
    /// `search_experiments` (api.md §5.3).
    Experiments,
    /// `search_registered_models` (api.md §5.4).
    RegisteredModels,
    /// `search_model_versions` (api.md §5.5).
    ModelVersions,
    /// `search_logged_models` (api.md §5.6).
    LoggedModels,
    /// `traces/search` (api.md §5, MLflow's `SearchTraceUtils`): attributes `trace_id`,
    /// `timestamp_ms`, `execution_time_ms`, `status`, `name`, `client_request_id`, `run_id`;
    /// `tags.*`, `metadata.*` and `span.name|type|status`.
    ///
    /// Host-side only, like the trace contract: outside the plugin ABI's wire form (so the
    /// schema hash, and every plugin built before it, are unchanged); serialising it fails.
    #[serde(skip)]
    Traces,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// Every operand holds (never empty).
    And(Vec<Expr>),
    /// At least one operand holds (never empty) — Cairn's extension.
    Or(Vec<Expr>),
    /// One comparison.
    Compare(Comparison),
}

/// What a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Entity {
    /// A built-in field of the searched entity (`run_id`, `name`, `start_time`, ...).
    Attribute,
    /// A metric's latest value (`metrics.<key>`).
    Metric,
    /// A parameter (`params.<key>`).
    Param,
    /// A tag (`tags.<key>`).
    Tag,
    /// A dataset input of a run (`datasets.name|digest|context`).
    Dataset,
    /// A trace's request metadata (`metadata.<key>`, `request_metadata.<key>`). Host-side
    /// only (trace searches do not cross the plugin ABI): serialising it fails.
    #[serde(skip)]
    Metadata,
    /// Any span of a trace (`span.name|type|status`, `span.attributes.<key>`): holds when
    /// some span satisfies it. Host-side only, as [`Entity::Metadata`].
    #[serde(skip)]
    Span,
    /// A valid feedback assessment of a trace named `<key>` (`feedback.<name>`), compared by
    /// its value. Host-side only, as [`Entity::Metadata`].
    #[serde(skip)]
    Feedback,
    /// A valid expectation assessment of a trace (`expectation.<name>`), as
    /// [`Entity::Feedback`].
    #[serde(skip)]
    Expectation,
    /// An issue a trace is linked to (`issue.id = '<issue id>'`): some assessment of the trace
    /// that references that issue (an `IssueReference`: its name is the issue id). Host-side
    /// only, as [`Entity::Metadata`].
    #[serde(skip)]
    Issue,
}

/// An identifier: an entity and a key. Attribute keys are canonical (`created` is `start_time`,
/// `run name` is `run_name`, `creation_time` of logged models is `creation_timestamp`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    /// What the key names.
    pub entity: Entity,
    /// The key, unquoted.
    pub name: String,
}

impl Key {
    /// A key of `entity` named `name`.
    pub fn new(entity: Entity, name: impl Into<String>) -> Self {
        Key {
            entity,
            name: name.into(),
        }
    }
    /// An attribute key.
    pub fn attribute(name: impl Into<String>) -> Self {
        Key::new(Entity::Attribute, name)
    }
}

/// A comparator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`, case-sensitive, `%` and `_` wildcards.
    Like,
    /// `ILIKE`, case-insensitive.
    ILike,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
    /// `RLIKE`: the value matches a regular expression somewhere (Python `re.search`, SQL
    /// `REGEXP`/`~`). Trace searches only, so host-side only, as [`Entity::Metadata`].
    #[serde(skip)]
    RLike,
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A quoted string.
    String(String),
    /// An unquoted number.
    Number(f64),
    /// A parenthesised list of quoted strings (non-empty).
    List(Vec<String>),
    /// No value (`IS NULL`, `IS NOT NULL`).
    None,
}

/// `<key> <op> <value>`. The parser guarantees the value's type fits the key and operator:
/// numbers for metrics and numeric attributes, strings for params, tags and string attributes,
/// lists only with `IN`/`NOT IN`, `None` only with `IS [NOT] NULL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The left-hand side.
    pub key: Key,
    /// The comparator.
    pub op: Op,
    /// The right-hand side.
    pub value: Value,
}

/// One `order_by` key. Missing (and NaN) values sort last in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderBy {
    /// What to order by.
    pub key: Key,
    /// `ASC` (the default) or `DESC`.
    pub ascending: bool,
}
