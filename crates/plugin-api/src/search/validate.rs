//! Per-kind rules of MLflow's search language (api.md §5.2–5.6): which entities, keys,
//! comparators and values each search accepts, with MLflow's error messages.
//!
//! Input is the raw tree of [`super::parser`]; output the typed [`Expr`] / [`OrderBy`] with
//! canonical attribute names. Every error carries the span of the token at fault.

use super::parser::{RawComparison, RawExpr, RawIdent, RawOrderBy, RawValue, Spanned};
use super::{Comparison, Entity, Expr, Key, Op, OrderBy, SearchKind, Value};
use std::ops::Range;

/// A validation failure: MLflow's message and the span of the offending token.
#[derive(Debug)]
pub(super) struct SemanticError {
    pub span: Range<usize>,
    pub message: String,
}

fn fail<T>(span: &Range<usize>, message: impl Into<String>) -> Result<T, SemanticError> {
    Err(SemanticError {
        span: span.clone(),
        message: message.into(),
    })
}

// ----- per-kind tables ------------------------------------------------------------------------

/// How an attribute's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrType {
    /// Quoted strings.
    Str,
    /// Numbers.
    Num,
    /// Integers only (`version_number`).
    Int,
}

/// A filterable attribute.
struct Attr {
    name: &'static str,
    aliases: &'static [&'static str],
    ty: AttrType,
    /// Accepts `IN` / `NOT IN`.
    list: bool,
}

const fn attr(name: &'static str, ty: AttrType) -> Attr {
    Attr {
        name,
        aliases: &[],
        ty,
        list: false,
    }
}

const RUN_ATTRS: &[Attr] = &[
    Attr {
        list: true,
        ..attr("run_id", AttrType::Str)
    },
    Attr {
        aliases: &["run name", "Run name", "Run Name"],
        ..attr("run_name", AttrType::Str)
    },
    attr("user_id", AttrType::Str),
    attr("status", AttrType::Str),
    attr("artifact_uri", AttrType::Str),
    Attr {
        aliases: &["created", "Created"],
        ..attr("start_time", AttrType::Num)
    },
    attr("end_time", AttrType::Num),
];

const EXPERIMENT_ATTRS: &[Attr] = &[
    attr("name", AttrType::Str),
    Attr {
        list: true,
        ..attr("experiment_id", AttrType::Str)
    },
    attr("creation_time", AttrType::Num),
    attr("last_update_time", AttrType::Num),
];

const REGISTERED_MODEL_ATTRS: &[Attr] = &[Attr {
    list: true,
    ..attr("name", AttrType::Str)
}];

const MODEL_VERSION_ATTRS: &[Attr] = &[
    Attr {
        list: true,
        ..attr("name", AttrType::Str)
    },
    Attr {
        list: true,
        ..attr("run_id", AttrType::Str)
    },
    attr("source_path", AttrType::Str),
    attr("version_number", AttrType::Int),
];

const LOGGED_MODEL_ATTRS: &[Attr] = &[
    attr("name", AttrType::Str),
    attr("model_id", AttrType::Str),
    attr("model_type", AttrType::Str),
    attr("status", AttrType::Str),
    attr("source_run_id", AttrType::Str),
    Attr {
        aliases: &["creation_time"],
        ..attr("creation_timestamp", AttrType::Num)
    },
    Attr {
        aliases: &["last_updated_time"],
        ..attr("last_updated_timestamp", AttrType::Num)
    },
];

const TRACE_ATTRS: &[Attr] = &[
    Attr {
        aliases: &["request_id"],
        list: true,
        ..attr("trace_id", AttrType::Str)
    },
    Attr {
        aliases: &["timestamp", "request_time"],
        ..attr("timestamp_ms", AttrType::Num)
    },
    Attr {
        aliases: &["execution_time", "execution_duration"],
        ..attr("execution_time_ms", AttrType::Num)
    },
    Attr {
        aliases: &["end_time"],
        ..attr("end_time_ms", AttrType::Num)
    },
    Attr {
        aliases: &["state"],
        list: true,
        ..attr("status", AttrType::Str)
    },
    attr("name", AttrType::Str),
    attr("client_request_id", AttrType::Str),
    attr("run_id", AttrType::Str),
];

/// `order_by` spellings and the canonical attribute each names.
const RUN_ORDER: &[(&str, &str)] = &[
    ("run_id", "run_id"),
    ("run_name", "run_name"),
    ("run name", "run_name"),
    ("Run name", "run_name"),
    ("Run Name", "run_name"),
    ("user_id", "user_id"),
    ("status", "status"),
    ("start_time", "start_time"),
    ("created", "start_time"),
    ("Created", "start_time"),
    ("end_time", "end_time"),
    ("artifact_uri", "artifact_uri"),
];

const EXPERIMENT_ORDER: &[(&str, &str)] = &[
    ("name", "name"),
    ("experiment_id", "experiment_id"),
    ("creation_time", "creation_time"),
    ("last_update_time", "last_update_time"),
];

const REGISTERED_MODEL_ORDER: &[(&str, &str)] = &[
    ("name", "name"),
    ("timestamp", "last_updated_timestamp"),
    ("last_updated_timestamp", "last_updated_timestamp"),
    ("creation_timestamp", "creation_timestamp"),
];

const MODEL_VERSION_ORDER: &[(&str, &str)] = &[
    ("name", "name"),
    ("version_number", "version_number"),
    ("creation_timestamp", "creation_timestamp"),
    ("last_updated_timestamp", "last_updated_timestamp"),
];

const LOGGED_MODEL_ORDER: &[(&str, &str)] = &[
    ("name", "name"),
    ("model_id", "model_id"),
    ("model_type", "model_type"),
    ("status", "status"),
    ("source_run_id", "source_run_id"),
    ("creation_timestamp", "creation_timestamp"),
    ("creation_time", "creation_timestamp"),
    ("last_updated_timestamp", "last_updated_timestamp"),
    ("last_updated_time", "last_updated_timestamp"),
];

const TRACE_ORDER: &[(&str, &str)] = &[
    ("trace_id", "trace_id"),
    ("request_id", "trace_id"),
    ("timestamp_ms", "timestamp_ms"),
    ("timestamp", "timestamp_ms"),
    ("request_time", "timestamp_ms"),
    ("execution_time_ms", "execution_time_ms"),
    ("execution_time", "execution_time_ms"),
    ("end_time_ms", "end_time_ms"),
    ("end_time", "end_time_ms"),
    ("status", "status"),
    ("state", "status"),
    ("name", "name"),
    ("client_request_id", "client_request_id"),
    ("experiment_id", "experiment_id"),
    ("run_id", "run_id"),
];

const TRACE_ENTITIES: &[(&str, Entity)] = &[
    ("trace", Entity::Attribute),
    ("attribute", Entity::Attribute),
    ("attributes", Entity::Attribute),
    ("attr", Entity::Attribute),
    ("tag", Entity::Tag),
    ("tags", Entity::Tag),
    ("metadata", Entity::Metadata),
    ("request_metadata", Entity::Metadata),
    ("span", Entity::Span),
    ("spans", Entity::Span),
    ("feedback", Entity::Feedback),
    ("expectation", Entity::Expectation),
    ("issue", Entity::Issue),
];

/// `issue.id`: the only key of an issue, compared with `=` only (MLflow's
/// `_SUPPORTED_ISSUE_ATTRIBUTES`, `VALID_ISSUE_COMPARATORS`).
const ISSUE_KEYS: &[&str] = &["id"];
const ISSUE_OPS: &[Op] = &[Op::Eq];
/// The trace attribute `prompt` is this tag (MLflow's `SEARCH_KEY_TO_TAG`), and a comparison of
/// it is special: `=` only, against `"<prompt name>/<version>"`, holding when the trace is
/// linked to that prompt version.
pub const LINKED_PROMPTS_TAG: &str = "mlflow.linkedPrompts";

const SPAN_KEYS: &[&str] = &["name", "type", "status"];
/// `span.attributes.<key>`: one attribute of a span, compared by its (JSON-decoded) value.
const SPAN_ATTRIBUTE_PREFIX: &str = "attributes.";
/// `span.content` (and the attribute `text`): the whole span, `LIKE`/`ILIKE` only.
const SPAN_CONTENT_KEY: &str = "content";
const SPAN_CONTENT_OPS: &[Op] = &[Op::Like, Op::ILike];
/// Comparators of span keys and span attributes in trace searches.
const SPAN_OPS: &[Op] = &[
    Op::Ne,
    Op::Eq,
    Op::In,
    Op::NotIn,
    Op::Like,
    Op::ILike,
    Op::RLike,
];
/// Comparators of tags and metadata in trace searches.
const TRACE_KV_OPS: &[Op] = &[
    Op::Ne,
    Op::Eq,
    Op::Like,
    Op::ILike,
    Op::RLike,
    Op::IsNull,
    Op::IsNotNull,
];
/// Comparators of `feedback.<name>` and `expectation.<name>`; the relational ones compare
/// numbers, the rest quoted strings.
const ASSESSMENT_OPS: &[Op] = &[
    Op::Ne,
    Op::Eq,
    Op::Gt,
    Op::Ge,
    Op::Lt,
    Op::Le,
    Op::Like,
    Op::ILike,
    Op::RLike,
    Op::IsNull,
    Op::IsNotNull,
];

const RUN_ENTITIES: &[(&str, Entity)] = &[
    ("metric", Entity::Metric),
    ("metrics", Entity::Metric),
    ("parameter", Entity::Param),
    ("parameters", Entity::Param),
    ("param", Entity::Param),
    ("params", Entity::Param),
    ("tag", Entity::Tag),
    ("tags", Entity::Tag),
    ("attribute", Entity::Attribute),
    ("attributes", Entity::Attribute),
    ("attr", Entity::Attribute),
    ("run", Entity::Attribute),
    ("dataset", Entity::Dataset),
    ("datasets", Entity::Dataset),
];

const ATTRIBUTE_TAG_ENTITIES: &[(&str, Entity)] = &[
    ("attribute", Entity::Attribute),
    ("attributes", Entity::Attribute),
    ("tag", Entity::Tag),
    ("tags", Entity::Tag),
];

const LOGGED_MODEL_ENTITIES: &[(&str, Entity)] = &[
    ("metric", Entity::Metric),
    ("metrics", Entity::Metric),
    ("parameter", Entity::Param),
    ("parameters", Entity::Param),
    ("param", Entity::Param),
    ("params", Entity::Param),
    ("tag", Entity::Tag),
    ("tags", Entity::Tag),
    ("attribute", Entity::Attribute),
    ("attributes", Entity::Attribute),
    ("attr", Entity::Attribute),
];

const DATASET_KEYS: &[&str] = &["name", "digest", "context"];

const NUMERIC_OPS: &[Op] = &[Op::Gt, Op::Ge, Op::Ne, Op::Eq, Op::Lt, Op::Le];
const STRING_OPS: &[Op] = &[Op::Ne, Op::Eq, Op::Like, Op::ILike];
const STRING_LIST_OPS: &[Op] = &[Op::Ne, Op::Eq, Op::Like, Op::ILike, Op::In, Op::NotIn];
const NULLABLE_OPS: &[Op] = &[
    Op::Ne,
    Op::Eq,
    Op::Like,
    Op::ILike,
    Op::IsNull,
    Op::IsNotNull,
];

/// The rules of one kind of search.
struct Spec {
    entities: &'static [(&'static str, Entity)],
    /// MLflow's message for an unknown entity, given the entity as written.
    invalid_entity: fn(&str) -> String,
    attrs: &'static [Attr],
    /// Comparators of params and tags.
    kv_ops: &'static [Op],
    /// MLflow's message for `IS [NOT] NULL` where this kind refuses it, if it has a special one.
    null_unsupported: Option<&'static str>,
    order: &'static [(&'static str, &'static str)],
    order_entities: &'static [Entity],
    /// Whether string comparisons also accept `RLIKE` (trace searches).
    rlike: bool,
}

fn spec(kind: SearchKind) -> &'static Spec {
    fn runs_entity(e: &str) -> String {
        format!(
            "Invalid entity type '{e}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
        )
    }
    fn attribute_tag_entity(e: &str) -> String {
        format!(
            "Invalid entity type '{e}'. Valid entity types are ('attribute', 'attributes', 'tag', 'tags')"
        )
    }
    fn logged_model_entity(e: &str) -> String {
        format!(
            "Invalid entity type '{e}'. Valid values are ['metric', 'parameter', 'tag', 'attribute']"
        )
    }
    static RUNS: Spec = Spec {
        entities: RUN_ENTITIES,
        invalid_entity: runs_entity,
        attrs: RUN_ATTRS,
        kv_ops: NULLABLE_OPS,
        null_unsupported: None,
        order: RUN_ORDER,
        order_entities: &[
            Entity::Attribute,
            Entity::Metric,
            Entity::Param,
            Entity::Tag,
        ],
        rlike: false,
    };
    static EXPERIMENTS: Spec = Spec {
        entities: ATTRIBUTE_TAG_ENTITIES,
        invalid_entity: attribute_tag_entity,
        attrs: EXPERIMENT_ATTRS,
        kv_ops: NULLABLE_OPS,
        null_unsupported: None,
        order: EXPERIMENT_ORDER,
        order_entities: &[Entity::Attribute],
        rlike: false,
    };
    static REGISTERED_MODELS: Spec = Spec {
        entities: ATTRIBUTE_TAG_ENTITIES,
        invalid_entity: attribute_tag_entity,
        attrs: REGISTERED_MODEL_ATTRS,
        kv_ops: STRING_OPS,
        null_unsupported: Some(
            "IS NULL / IS NOT NULL is not supported for registered model search.",
        ),
        order: REGISTERED_MODEL_ORDER,
        order_entities: &[Entity::Attribute],
        rlike: false,
    };
    static MODEL_VERSIONS: Spec = Spec {
        entities: ATTRIBUTE_TAG_ENTITIES,
        invalid_entity: attribute_tag_entity,
        attrs: MODEL_VERSION_ATTRS,
        kv_ops: STRING_OPS,
        null_unsupported: Some("IS NULL / IS NOT NULL is not supported for model version search."),
        order: MODEL_VERSION_ORDER,
        order_entities: &[Entity::Attribute],
        rlike: false,
    };
    static LOGGED_MODELS: Spec = Spec {
        entities: LOGGED_MODEL_ENTITIES,
        invalid_entity: logged_model_entity,
        attrs: LOGGED_MODEL_ATTRS,
        kv_ops: STRING_OPS,
        null_unsupported: None,
        order: LOGGED_MODEL_ORDER,
        order_entities: &[Entity::Attribute, Entity::Metric],
        rlike: false,
    };
    fn trace_entity(e: &str) -> String {
        format!(
            "Invalid entity type '{e}'. Valid values are ['trace', 'attribute', 'tag', 'metadata', 'span', 'feedback', 'expectation', 'issue']"
        )
    }
    static TRACES: Spec = Spec {
        entities: TRACE_ENTITIES,
        invalid_entity: trace_entity,
        attrs: TRACE_ATTRS,
        kv_ops: TRACE_KV_OPS,
        null_unsupported: None,
        order: TRACE_ORDER,
        order_entities: &[Entity::Attribute, Entity::Tag, Entity::Metadata],
        rlike: true,
    };
    match kind {
        SearchKind::Traces => &TRACES,
        SearchKind::Runs => &RUNS,
        SearchKind::Experiments => &EXPERIMENTS,
        SearchKind::RegisteredModels => &REGISTERED_MODELS,
        SearchKind::ModelVersions => &MODEL_VERSIONS,
        SearchKind::LoggedModels => &LOGGED_MODELS,
    }
}

/// `['a', 'b']`, as MLflow prints a list of names.
fn py_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", items.join(", "))
}

/// `{'=', '!='}`, as MLflow prints a set of comparators.
fn py_set(ops: &[Op]) -> String {
    let items: Vec<String> = ops.iter().map(|op| format!("'{op}'")).collect();
    format!("{{{}}}", items.join(", "))
}

fn attr_names(attrs: &[Attr]) -> String {
    py_list(
        attrs
            .iter()
            .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied())),
    )
}

fn entity_name(entity: Entity) -> &'static str {
    match entity {
        Entity::Attribute => "attribute",
        Entity::Metric => "metric",
        Entity::Param => "parameter",
        Entity::Tag => "tag",
        Entity::Dataset => "dataset",
        Entity::Metadata => "metadata",
        Entity::Span => "span",
        Entity::Feedback => "feedback",
        Entity::Expectation => "expectation",
        Entity::Issue => "issue",
    }
}

fn resolve_entity(spec: &Spec, entity: &Option<Spanned<String>>) -> Result<Entity, SemanticError> {
    let Some(entity) = entity else {
        return Ok(Entity::Attribute);
    };
    spec.entities
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&entity.value))
        .map(|(_, e)| *e)
        .map_or_else(
            || fail(&entity.span, (spec.invalid_entity)(&entity.value)),
            Ok,
        )
}

// ----- filters --------------------------------------------------------------------------------

/// Validates a raw filter for `kind`.
pub(super) fn filter(kind: SearchKind, raw: RawExpr, text: &str) -> Result<Expr, SemanticError> {
    expr(spec(kind), raw, text)
}

fn expr(spec: &Spec, raw: RawExpr, text: &str) -> Result<Expr, SemanticError> {
    Ok(match raw {
        RawExpr::And(items) => Expr::And(
            items
                .into_iter()
                .map(|e| expr(spec, e, text))
                .collect::<Result<_, _>>()?,
        ),
        RawExpr::Or(items) => Expr::Or(
            items
                .into_iter()
                .map(|e| expr(spec, e, text))
                .collect::<Result<_, _>>()?,
        ),
        RawExpr::Compare(c) => Expr::Compare(comparison(spec, c, text)?),
    })
}

/// What the value of a comparison must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Number,
    Integer,
    String,
}

fn comparison(spec: &Spec, raw: RawComparison, text: &str) -> Result<Comparison, SemanticError> {
    let RawComparison { ident, op, value } = raw;
    let entity = resolve_entity(spec, &ident.entity)?;
    let key_span = &ident.key.span;
    let raw_key = ident.key.value;
    let op_span = &op.span;
    let op = op.value;
    if matches!(op, Op::IsNull | Op::IsNotNull)
        && let Some(message) = spec.null_unsupported
    {
        return fail(op_span, message);
    }
    let invalid_op = |allowed: &[Op]| {
        fail(
            op_span,
            format!("Invalid comparator '{op}' not one of '{}'", py_set(allowed)),
        )
    };
    // The trace entities' wording names the key: "span.<key> comparator '<op>' not one of ...".
    let keyed_invalid_op = |prefix: &str, key: &str, allowed: &[Op]| {
        fail(
            op_span,
            format!(
                "{prefix}.{key} comparator '{op}' not one of '{}'",
                py_set(allowed)
            ),
        )
    };

    // The trace attribute `text` is the whole span (`span.content`), and `prompt` the tag of
    // linked prompts, as in MLflow.
    let (entity, raw_key) = match (spec.rlike, entity, raw_key.as_str()) {
        (true, Entity::Attribute, "text") => (Entity::Span, SPAN_CONTENT_KEY.to_string()),
        (true, Entity::Attribute, "prompt") => (Entity::Tag, LINKED_PROMPTS_TAG.to_string()),
        _ => (entity, raw_key),
    };
    let linked_prompts = spec.rlike && entity == Entity::Tag && raw_key == LINKED_PROMPTS_TAG;
    if linked_prompts && op != Op::Eq {
        return fail(
            op_span,
            format!(
                "Invalid comparator '{op}' for prompts filter. Only '=' is supported with \
                 format: prompt = \"name/version\""
            ),
        );
    }
    let with_rlike = |ops: &[Op]| -> Vec<Op> {
        ops.iter()
            .copied()
            .chain(spec.rlike.then_some(Op::RLike))
            .collect()
    };
    let (name, expect, what): (String, Expect, String) = match entity {
        Entity::Attribute => {
            let Some(attr) = spec
                .attrs
                .iter()
                .find(|a| a.name == raw_key || a.aliases.contains(&raw_key.as_str()))
            else {
                return fail(
                    key_span,
                    format!(
                        "Invalid attribute key '{raw_key}' specified. Valid keys are '{}'",
                        attr_names(spec.attrs)
                    ),
                );
            };
            match attr.ty {
                AttrType::Num | AttrType::Int => {
                    if !NUMERIC_OPS.contains(&op) {
                        return invalid_op(NUMERIC_OPS);
                    }
                    let expect = if attr.ty == AttrType::Int {
                        Expect::Integer
                    } else {
                        Expect::Number
                    };
                    (
                        attr.name.to_string(),
                        expect,
                        format!("numeric attribute: {}", attr.name),
                    )
                }
                AttrType::Str => {
                    let list_keys: Vec<&str> = spec
                        .attrs
                        .iter()
                        .filter(|a| a.list)
                        .map(|a| a.name)
                        .collect();
                    let allowed = with_rlike(if list_keys.is_empty() {
                        STRING_OPS
                    } else {
                        STRING_LIST_OPS
                    });
                    if !allowed.contains(&op) {
                        return invalid_op(&allowed);
                    }
                    if matches!(op, Op::In | Op::NotIn) && !attr.list {
                        return fail(
                            op_span,
                            format!(
                                "Only {} attributes support comparison with a list of quoted string values.",
                                py_list(list_keys)
                            ),
                        );
                    }
                    (attr.name.to_string(), Expect::String, "attributes".into())
                }
            }
        }
        Entity::Dataset => {
            if !DATASET_KEYS.contains(&raw_key.as_str()) {
                return fail(
                    key_span,
                    format!(
                        "Invalid dataset key '{raw_key}' specified. Valid keys are '{}'",
                        py_list(DATASET_KEYS.iter().copied())
                    ),
                );
            }
            if !STRING_LIST_OPS.contains(&op) {
                return invalid_op(STRING_LIST_OPS);
            }
            (raw_key, Expect::String, "dataset attributes".into())
        }
        Entity::Metric => {
            if !NUMERIC_OPS.contains(&op) {
                return invalid_op(NUMERIC_OPS);
            }
            (raw_key, Expect::Number, "metric".into())
        }
        Entity::Span => {
            let ops = if raw_key == SPAN_CONTENT_KEY {
                SPAN_CONTENT_OPS
            } else if SPAN_KEYS.contains(&raw_key.as_str()) {
                SPAN_OPS
            } else if let Some(attr) = raw_key.strip_prefix(SPAN_ATTRIBUTE_PREFIX) {
                if attr.is_empty() {
                    return fail(
                        key_span,
                        "Span attribute name cannot be empty after 'attributes.'",
                    );
                }
                SPAN_OPS
            } else {
                return fail(
                    key_span,
                    format!(
                        "Invalid span attribute '{raw_key}'. Supported attributes: {}, \
                         attributes.<attribute_name>.",
                        SPAN_KEYS
                            .iter()
                            .copied()
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            };
            if !ops.contains(&op) {
                return keyed_invalid_op("span", &raw_key, ops);
            }
            (raw_key, Expect::String, "span attributes".into())
        }
        Entity::Feedback | Entity::Expectation => {
            let kind = entity_name(entity);
            if raw_key.is_empty() {
                return fail(key_span, "Assessment field name cannot be empty");
            }
            if !ASSESSMENT_OPS.contains(&op) {
                return keyed_invalid_op("assessment", &raw_key, ASSESSMENT_OPS);
            }
            let expect = if matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le) {
                Expect::Number
            } else {
                Expect::String
            };
            (raw_key, expect, kind.into())
        }
        Entity::Issue => {
            if !ISSUE_KEYS.contains(&raw_key.as_str()) {
                return fail(
                    key_span,
                    format!(
                        "Invalid issue attribute '{raw_key}'. Supported attributes: {}",
                        ISSUE_KEYS.join(", ")
                    ),
                );
            }
            if !ISSUE_OPS.contains(&op) {
                return keyed_invalid_op("issue", &raw_key, ISSUE_OPS);
            }
            (raw_key, Expect::String, "issue".into())
        }
        Entity::Param | Entity::Tag | Entity::Metadata => {
            if !spec.kv_ops.contains(&op) {
                return invalid_op(spec.kv_ops);
            }
            (raw_key, Expect::String, entity_name(entity).into())
        }
    };

    let value_span = value.span.clone();
    let value = check_value(expect, &what, op, value, text)?;
    if linked_prompts
        && let Value::String(v) = &value
        && v.matches('/').count() != 1
    {
        return fail(
            &value_span,
            format!(
                "Invalid prompts filter value '{v}'. Expected format: prompt = \"name/version\""
            ),
        );
    }
    Ok(Comparison {
        key: Key::new(entity, name),
        op,
        value,
    })
}

/// Checks that `raw` fits `expect` and `op`; `what` names the left-hand side as MLflow does
/// and `text` is the filter, for quoting the value in messages.
fn check_value(
    expect: Expect,
    what: &str,
    op: Op,
    raw: Spanned<RawValue>,
    text: &str,
) -> Result<Value, SemanticError> {
    let span = &raw.span;
    let written = &text[span.clone()];
    match raw.value {
        RawValue::None => Ok(Value::None),
        RawValue::List(items) => {
            if items.is_empty() {
                return fail(
                    span,
                    "While parsing a list in the query, expected a non-empty list of string values, but got empty list",
                );
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item.value {
                    RawValue::Str(s) => out.push(s),
                    _ => {
                        return fail(
                            &item.span,
                            format!(
                                "While parsing a list in the query, expected string value, punctuation, or whitespace, but got different type in list: {written}"
                            ),
                        );
                    }
                }
            }
            Ok(Value::List(out))
        }
        RawValue::Num { value, integer } => match expect {
            Expect::Number | Expect::Integer if !value.is_finite() => fail(
                span,
                format!("Numeric value {written} is out of range for {what}"),
            ),
            Expect::Integer if !integer => fail(
                span,
                format!("Expected an integer value for {what}. Found {written}"),
            ),
            Expect::Number | Expect::Integer => Ok(Value::Number(value)),
            Expect::String => fail(span, expected_string(what, op, written)),
        },
        RawValue::Str(s) => match expect {
            Expect::String => Ok(Value::String(s)),
            Expect::Number | Expect::Integer => fail(span, expected_number(what, written)),
        },
        RawValue::Bare => match expect {
            Expect::String => fail(
                span,
                format!(
                    "Parameter value is either not quoted or unidentified quote types used for string value {written}. Use either single or double quotes."
                ),
            ),
            Expect::Number | Expect::Integer => fail(span, expected_number(what, written)),
        },
    }
}

fn expected_number(what: &str, written: &str) -> String {
    format!("Expected numeric value type for {what}. Found {written}")
}

fn expected_string(what: &str, op: Op, written: &str) -> String {
    match what {
        "parameter" | "tag" => {
            format!(
                "Expected a quoted string value for {what} (e.g. 'my-value'). Got value {written}"
            )
        }
        _ if matches!(op, Op::In | Op::NotIn) => {
            format!("Expected a list of quoted string values for {what}. Got value {written}")
        }
        _ => format!("Expected a quoted string value for {what}. Got value {written}"),
    }
}

// ----- order_by -------------------------------------------------------------------------------

/// Validates one raw `order_by` clause `text` for `kind`; `previous` are the clauses before it
/// and `clauses` the whole list (for MLflow's duplicate message).
pub(super) fn order_by(
    kind: SearchKind,
    raw: RawOrderBy,
    previous: &[OrderBy],
    clauses: &[String],
    text: &str,
) -> Result<OrderBy, SemanticError> {
    let spec = spec(kind);
    let RawOrderBy { ident, direction } = raw;
    let ascending = match &direction {
        None => true,
        Some(d) if d.value.eq_ignore_ascii_case("asc") => true,
        Some(d) if d.value.eq_ignore_ascii_case("desc") => false,
        Some(d) => {
            return fail(
                &d.span,
                format!("Invalid ordering key in order_by clause '{text}'."),
            );
        }
    };
    let RawIdent { entity, key } = ident;
    let entity_span = entity.as_ref().map(|e| e.span.clone());
    let resolved = match resolve_entity(spec, &entity) {
        Ok(e) => e,
        Err(e) if kind == SearchKind::LoggedModels => {
            let written = entity.map(|e| e.value).unwrap_or_default();
            return fail(
                &e.span,
                format!(
                    "Invalid order by field name: {written}, only `metrics.<name>` is allowed."
                ),
            );
        }
        Err(e) => return Err(e),
    };
    if !spec.order_entities.contains(&resolved) {
        let span = entity_span.unwrap_or(key.span.clone());
        return fail(
            &span,
            if kind == SearchKind::LoggedModels {
                format!(
                    "Invalid order by field name: {}, only `metrics.<name>` is allowed.",
                    entity_name(resolved)
                )
            } else {
                format!("Invalid order_by entity: {}", entity_name(resolved))
            },
        );
    }
    let name = if resolved == Entity::Attribute {
        match spec
            .order
            .iter()
            .find(|(spelling, _)| *spelling == key.value)
        {
            Some((_, canonical)) => canonical.to_string(),
            None => {
                let valid = py_list(spec.order.iter().map(|(s, _)| *s));
                let message = match kind {
                    SearchKind::RegisteredModels => format!(
                        "Invalid order by key '{}' specified. Valid keys are '{valid}'",
                        key.value
                    ),
                    SearchKind::LoggedModels => {
                        format!("Invalid order by field name: {}.", key.value)
                    }
                    _ => format!(
                        "Invalid attribute key '{}' specified. Valid keys are '{valid}'",
                        key.value
                    ),
                };
                return fail(&key.span, message);
            }
        }
    } else {
        key.value
    };
    let order = OrderBy {
        key: Key::new(resolved, name),
        ascending,
    };
    if matches!(
        kind,
        SearchKind::RegisteredModels | SearchKind::ModelVersions
    ) && previous.iter().any(|p| p.key == order.key)
    {
        return fail(
            &key.span,
            format!(
                "`order_by` contains duplicate fields: {}",
                py_list(clauses.iter().map(String::as_str))
            ),
        );
    }
    Ok(order)
}

#[cfg(test)]
mod trace_tests {
    use crate::search::{Entity, Expr, Key, Op, SearchKind, Value, parse_filter, parse_order_by};

    fn one(text: &str) -> crate::search::Comparison {
        match parse_filter(SearchKind::Traces, text).unwrap().unwrap() {
            Expr::Compare(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trace_filters_parse_to_canonical_keys() {
        let c = one("trace.status = 'OK'");
        assert_eq!(c.key, Key::attribute("status"));
        let c = one("attributes.timestamp > 5");
        assert_eq!(c.key, Key::attribute("timestamp_ms"));
        assert_eq!(c.value, Value::Number(5.0));
        let c = one("trace.execution_time_ms <= 10");
        assert_eq!(c.key, Key::attribute("execution_time_ms"));
        let c = one("request_metadata.`mlflow.sourceRun` = 'r'");
        assert_eq!(c.key, Key::new(Entity::Metadata, "mlflow.sourceRun"));
        let c = one("span.type IN ('LLM', 'TOOL')");
        assert_eq!(c.key, Key::new(Entity::Span, "type"));
        assert_eq!(c.op, Op::In);
        let c = one("tags.mlflow.traceName LIKE 'pipe%'");
        assert_eq!(c.key, Key::new(Entity::Tag, "mlflow.traceName"));
        let e = parse_filter(
            SearchKind::Traces,
            "tags.a = 'x' OR (trace.status = 'ERROR' AND span.name = 'n')",
        )
        .unwrap()
        .unwrap();
        assert!(
            matches!(e, Expr::Or(ref items) if items.len() == 2),
            "{e:?}"
        );
        // Display parses back to the same tree.
        assert_eq!(
            parse_filter(SearchKind::Traces, &e.to_string())
                .unwrap()
                .unwrap(),
            e
        );
    }

    #[test]
    fn mlflow_318_trace_only_filters() {
        let c = one("span.attributes.model RLIKE '^gpt'");
        assert_eq!(c.key, Key::new(Entity::Span, "attributes.model"));
        assert_eq!(c.op, Op::RLike);
        let c = one("span.attributes.`mlflow.spanType` = 'LLM'");
        assert_eq!(c.key, Key::new(Entity::Span, "attributes.mlflow.spanType"));
        let c = one("span.attributes.mlflow.spanInputs LIKE '%x%'");
        assert_eq!(
            c.key,
            Key::new(Entity::Span, "attributes.mlflow.spanInputs")
        );
        let c = one("text ILIKE '%hello%'");
        assert_eq!(c.key, Key::new(Entity::Span, "content"));
        let c = one("feedback.correctness >= 0.5");
        assert_eq!(c.key, Key::new(Entity::Feedback, "correctness"));
        assert_eq!(c.value, Value::Number(0.5));
        let c = one("expectation.`expected answer` IS NULL");
        assert_eq!(c.key, Key::new(Entity::Expectation, "expected answer"));
        let c = one("tags.env rlike 'prod'");
        assert_eq!(c.op, Op::RLike);
        let c = one("metadata.k RLIKE 'v'");
        assert_eq!(c.key.entity, Entity::Metadata);
        // Display parses back to the same tree.
        for text in [
            "span.attributes.`mlflow.spanType` = 'LLM' AND feedback.q > 1",
            "expectation.a RLIKE 'x' OR text LIKE '%y%'",
        ] {
            let e = parse_filter(SearchKind::Traces, text).unwrap().unwrap();
            assert_eq!(
                parse_filter(SearchKind::Traces, &e.to_string())
                    .unwrap()
                    .unwrap(),
                e,
                "{text}"
            );
        }
        // `issue.id` and `prompt` (the linked-prompts tag), MLflow 3.18's.
        let c = one("issue.id = 'iss-1'");
        assert_eq!(c.key, Key::new(Entity::Issue, "id"));
        let c = one("prompt = 'qa/1'");
        assert_eq!(c.key, Key::new(Entity::Tag, "mlflow.linkedPrompts"));
        assert_eq!(one("trace.prompt = 'qa/1'"), c);
        let text = "issue.id = 'iss-1' OR prompt = 'qa/1'";
        let e = parse_filter(SearchKind::Traces, text).unwrap().unwrap();
        assert_eq!(
            parse_filter(SearchKind::Traces, &e.to_string())
                .unwrap()
                .unwrap(),
            e,
            "{text}"
        );
        for (text, needle) in [
            (
                "issue.status = 'x'",
                "Invalid issue attribute 'status'. Supported attributes: id",
            ),
            (
                "issue.id != 'x'",
                "issue.id comparator '!=' not one of '{'='}'",
            ),
            (
                "prompt LIKE 'qa/%'",
                "Invalid comparator 'LIKE' for prompts filter. Only '=' is supported",
            ),
            (
                "prompt = 'qa'",
                "Invalid prompts filter value 'qa'. Expected format",
            ),
            ("prompt = 'a/b/1'", "Invalid prompts filter value 'a/b/1'"),
            (
                "tags.`mlflow.linkedPrompts` != 'qa/1'",
                "for prompts filter",
            ),
        ] {
            let e = parse_filter(SearchKind::Traces, text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
        assert!(parse_filter(SearchKind::Runs, "issue.id = 'x'").is_err());
        // RLIKE is MLflow's for traces only.
        assert!(parse_filter(SearchKind::Runs, "tags.t RLIKE 'x'").is_err());
        assert!(parse_filter(SearchKind::Runs, "feedback.q = 'x'").is_err());
    }

    #[test]
    fn trace_filter_errors_name_the_problem() {
        for (text, needle) in [
            ("trace.bogus = 'x'", "Invalid attribute key 'bogus'"),
            (
                "span.attributes = 'x'",
                "Invalid span attribute 'attributes'",
            ),
            (
                "span.bogus = 'x'",
                "Supported attributes: name, status, type",
            ),
            ("span.content = 'x'", "span.content comparator '='"),
            ("feedback.q > 'x'", "Expected numeric value"),
            ("feedback.q = 1", "Expected a quoted string value"),
            ("feedback.q IN ('a')", "assessment.q comparator 'IN'"),
            ("params.p = 'x'", "Invalid entity type 'params'"),
            ("metrics.x > 1", "Invalid entity type 'metrics'"),
            ("trace.timestamp_ms = 'x'", "Expected numeric value"),
            ("trace.status > 'OK'", "Invalid comparator"),
        ] {
            let e = parse_filter(SearchKind::Traces, text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn trace_order_by_accepts_attributes_tags_and_metadata() {
        let o = parse_order_by(
            SearchKind::Traces,
            &[
                "timestamp DESC".into(),
                "tags.team".into(),
                "metadata.k ASC".into(),
            ],
        )
        .unwrap();
        assert_eq!(o[0].key, Key::attribute("timestamp_ms"));
        assert!(!o[0].ascending);
        assert_eq!(o[1].key.entity, Entity::Tag);
        assert_eq!(o[2].key.entity, Entity::Metadata);
        assert!(parse_order_by(SearchKind::Traces, &["span.name".into()]).is_err());
        let o = parse_order_by(
            SearchKind::Traces,
            &[
                "end_time DESC".into(),
                "experiment_id".into(),
                "run_id".into(),
            ],
        )
        .unwrap();
        assert_eq!(o[0].key, Key::attribute("end_time_ms"));
        assert_eq!(o[1].key, Key::attribute("experiment_id"));
        assert_eq!(o[2].key, Key::attribute("run_id"));
        let c = one("trace.end_time > 5");
        assert_eq!(c.key, Key::attribute("end_time_ms"));
    }
}
