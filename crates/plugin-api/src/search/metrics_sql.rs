//! `traces/metrics` as one SQL statement, shared by the SQL stores through a [`Dialect`]
//! (MLflow's `mlflow/store/tracking/utils/sql_trace_metrics_utils.py::query_metrics`).
//!
//! Both stores keep traces in the same tables (`traces t`, `trace_tags`, `trace_metadata`,
//! `spans s`, `assessments a` with the whole assessment as JSON in `body`). The statement
//! selects the dimensions (the time bucket first, ms since the epoch) and then one
//! `double precision` column per aggregation, groups by the dimensions and orders by them, rows
//! with a missing dimension or metric value left out before the `LIMIT`, as MLflow does.
//! Percentiles interpolate linearly between the closest ranks: PostgreSQL's
//! `percentile_cont`; SQLite has no such aggregate, so the SQLite store registers
//! `percentile(value, p)` (p from 0 to 100) with the same definition.

use super::sql::{Dialect, Sql};
use crate::traces::{
    MetricAggregation, MetricFilter, MetricView, TRACE_NAME_TAG, TraceMetricsQuery,
};
use crate::{Error, Result};

/// Metadata holding the trace's token usage (JSON: `input_tokens`, `output_tokens`, ...).
pub const TOKEN_USAGE_METADATA: &str = "mlflow.trace.tokenUsage";
/// Metadata holding the trace's session id.
pub const SESSION_METADATA: &str = "mlflow.trace.session";
/// Span attribute holding an LLM call's cost (JSON: `input_cost`, `output_cost`, `total_cost`).
pub const LLM_COST_ATTRIBUTE: &str = "mlflow.llm.cost";
/// Span attribute naming the model an LLM span called.
pub const MODEL_ATTRIBUTE: &str = "mlflow.llm.model";
/// Span attribute naming the model's provider.
pub const MODEL_PROVIDER_ATTRIBUTE: &str = "mlflow.llm.provider";
/// Longest model name or provider a dimension keeps (MLflow's `MODEL_DIMENSION_MAX_LENGTH`).
pub const MODEL_DIMENSION_MAX_LENGTH: usize = 500;

/// The text of span attribute `key` of `spans s` as the span holds it (MLflow's attributes are
/// JSON text: `"gpt-4o"` with its quotes, a cost as a JSON object); `NULL` when absent.
fn span_attribute(sql: &mut Sql, key: &str) -> String {
    let k = sql.bind(key);
    match sql.dialect {
        Dialect::Sqlite => format!(
            "(SELECT json_extract(sa.value, '$.value.string_value') FROM \
             json_each(s.content, '$.attributes') sa WHERE json_extract(sa.value, '$.key') = {k} \
             LIMIT 1)"
        ),
        Dialect::Postgres => format!(
            "(SELECT sa.e -> 'value' ->> 'string_value' FROM \
             jsonb_array_elements(s.content::jsonb -> 'attributes') sa(e) WHERE sa.e ->> 'key' = {k} \
             LIMIT 1)"
        ),
    }
}

/// A model dimension (`span_model_name`, `span_model_provider`) as MLflow derives it when it
/// stores a span: the attribute decoded when it is a JSON string, else its text as it is, cut
/// to [`MODEL_DIMENSION_MAX_LENGTH`] characters.
fn model_dimension(sql: &mut Sql, key: &str) -> String {
    let n = MODEL_DIMENSION_MAX_LENGTH;
    // One subquery, its numbered placeholder used again where it is repeated.
    let r = span_attribute(sql, key);
    match sql.dialect {
        Dialect::Sqlite => format!(
            "substr(CASE WHEN json_valid({r}) AND json_type({r}) = 'text' \
             THEN json_extract({r}, '$') ELSE {r} END, 1, {n})"
        ),
        Dialect::Postgres => {
            // Only a text a pattern shows to be one JSON string literal is cast (PostgreSQL
            // 15 has no `IS JSON`, and a failed cast would abort the statement).
            let re =
                sql.bind(r#"^"([^"\\[:cntrl:]]|\\(["\\/bfnrt]|u[0-9a-fA-F]{4}))*"$"#.to_string());
            format!("left(CASE WHEN {r} ~ {re} THEN ({r})::jsonb #>> '{{}}' ELSE {r} END, {n})")
        }
    }
}

/// One cost of an LLM span (`input_cost`, ...) as MLflow derives it when it stores a span: the
/// field of the cost attribute when it is a number, else `NULL`. The attribute is JSON text of
/// an object (MLflow's own span form) or, as the 3.18 client sends it over OTLP, a typed
/// key-value list (`kvlist_value`) of doubles or integers.
fn span_cost(sql: &mut Sql, field: &str) -> String {
    let k = sql.bind(LLM_COST_ATTRIBUTE);
    let f = sql.bind(field);
    match sql.dialect {
        Dialect::Sqlite => {
            let attr = |path: &str| {
                format!(
                    "(SELECT json_extract(sa.value, '$.value.{path}') FROM \
                     json_each(s.content, '$.attributes') sa WHERE json_extract(sa.value, '$.key') \
                     = {k} LIMIT 1)"
                )
            };
            let (text, list) = (attr("string_value"), attr("kvlist_value.values"));
            format!(
                "COALESCE(\
                 (CASE WHEN json_valid({text}) THEN (CASE WHEN json_type({text}, '$.' || {f}) \
                 IN ('integer', 'real') THEN CAST(json_extract({text}, '$.' || {f}) AS REAL) END) \
                 END), \
                 (SELECT CASE WHEN json_type(kv.value, '$.value.double_value') IN ('integer', 'real') \
                 THEN CAST(json_extract(kv.value, '$.value.double_value') AS REAL) \
                 WHEN json_type(kv.value, '$.value.int_value') IS NOT NULL \
                 THEN CAST(json_extract(kv.value, '$.value.int_value') AS REAL) END \
                 FROM json_each({list}) kv WHERE json_extract(kv.value, '$.key') = {f} LIMIT 1))"
            )
        }
        Dialect::Postgres => {
            let attrs = "jsonb_array_elements(s.content::jsonb -> 'attributes') sa(e)";
            // From the JSON text the number is taken by a pattern, so the cast never fails.
            let re = sql.bind(format!(
                r#""{field}"\s*:\s*(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)"#
            ));
            format!(
                "COALESCE(\
                 (SELECT (substring(sa.e -> 'value' ->> 'string_value' from {re}))::float8 \
                 FROM {attrs} WHERE sa.e ->> 'key' = {k} LIMIT 1), \
                 (SELECT CASE WHEN jsonb_typeof(kv.e -> 'value' -> 'double_value') = 'number' \
                 THEN (kv.e -> 'value' ->> 'double_value')::float8 \
                 WHEN (kv.e -> 'value' ->> 'int_value') ~ '^-?[0-9]{{1,18}}$' \
                 THEN (kv.e -> 'value' ->> 'int_value')::float8 END \
                 FROM {attrs} CROSS JOIN LATERAL \
                 jsonb_array_elements(sa.e -> 'value' -> 'kvlist_value' -> 'values') kv(e) \
                 WHERE sa.e ->> 'key' = {k} AND jsonb_typeof(sa.e -> 'value' -> 'kvlist_value' -> 'values') = 'array' \
                 AND kv.e ->> 'key' = {f} LIMIT 1))"
            )
        }
    }
}

/// The statement of `q` over the experiments `experiment_ids` (already parsed), and how many
/// of its leading columns are dimensions.
pub fn trace_metrics(
    dialect: Dialect,
    q: &TraceMetricsQuery,
    experiment_ids: &[i64],
) -> Result<(Sql, usize)> {
    let mut sql = Sql::new(dialect);
    let pg = dialect == Dialect::Postgres;
    let exps = sql.bind_list(experiment_ids);
    let metadata = |sql: &mut Sql, key: &str| {
        let k = sql.bind(key);
        format!("(SELECT m.value FROM trace_metadata m WHERE m.trace = t.id AND m.key = {k})")
    };
    let mut wheres = vec![format!("t.experiment_id IN {exps}")];
    let (from, time_ms) = match q.view {
        MetricView::Traces => ("traces t".to_string(), "t.request_time"),
        MetricView::Spans => (
            "traces t JOIN spans s ON s.trace = t.id".to_string(),
            "(s.start_ns / 1000000)",
        ),
        MetricView::Assessments => {
            wheres.push(if pg {
                "COALESCE((a.body::jsonb ->> 'valid')::boolean, true)".into()
            } else {
                "COALESCE(json_extract(a.body, '$.valid'), 1) != 0".into()
            });
            (
                "assessments a JOIN traces t ON t.id = a.trace".to_string(),
                "t.request_time",
            )
        }
    };
    // Time range: on the trace's request time (MLflow: spans' count and latency use the
    // trace's time too, assessments the trace timestamp copied onto them).
    if let Some(start) = q.start_time_ms {
        let p = sql.bind(start);
        wheres.push(format!("t.request_time >= {p}"));
    }
    if let Some(end) = q.end_time_ms {
        let p = sql.bind(end);
        wheres.push(format!("t.request_time <= {p}"));
    }
    let assessment_type =
        "(CASE WHEN {fb} IS NOT NULL THEN 'feedback' WHEN {ex} IS NOT NULL THEN 'expectation' END)";
    let (fb, ex) = if pg {
        (
            "(a.body::jsonb -> 'feedback')",
            "(a.body::jsonb -> 'expectation')",
        )
    } else {
        (
            "json_extract(a.body, '$.feedback')",
            "json_extract(a.body, '$.expectation')",
        )
    };
    let assessment_type = assessment_type.replace("{fb}", fb).replace("{ex}", ex);
    for f in &q.filters {
        let w = match f {
            MetricFilter::TraceStatus(v) => format!("t.state = {}", sql.bind(v.as_str())),
            MetricFilter::TraceTag(k, v) => {
                let (k, v) = (sql.bind(k.as_str()), sql.bind(v.as_str()));
                format!(
                    "EXISTS (SELECT 1 FROM trace_tags g WHERE g.trace = t.id AND g.key = {k} AND g.value = {v})"
                )
            }
            MetricFilter::TraceMetadata(k, v) => {
                let (k, v) = (sql.bind(k.as_str()), sql.bind(v.as_str()));
                format!(
                    "EXISTS (SELECT 1 FROM trace_metadata g WHERE g.trace = t.id AND g.key = {k} AND g.value = {v})"
                )
            }
            MetricFilter::SpanName(v) if q.view == MetricView::Spans => {
                format!("s.name = {}", sql.bind(v.as_str()))
            }
            MetricFilter::SpanStatus(v) if q.view == MetricView::Spans => {
                format!("s.status = {}", sql.bind(v.as_str()))
            }
            MetricFilter::SpanType(v) if q.view == MetricView::Spans => {
                format!("s.type = {}", sql.bind(v.as_str()))
            }
            MetricFilter::AssessmentName(v) if q.view == MetricView::Assessments => {
                format!("a.name = {}", sql.bind(v.as_str()))
            }
            MetricFilter::AssessmentType(v) if q.view == MetricView::Assessments => {
                format!("{assessment_type} = {}", sql.bind(v.as_str()))
            }
            other => {
                return Err(Error::invalid(format!(
                    "Filter {other:?} does not apply to the {:?} view",
                    q.view
                )));
            }
        };
        wheres.push(w);
    }

    // The value aggregated.
    let json_number = |sql: &mut Sql, field: &str| -> String {
        let m = metadata(sql, TOKEN_USAGE_METADATA);
        if pg {
            format!("(({m})::jsonb ->> '{field}')::float8")
        } else {
            format!("json_extract({m}, '$.{field}')")
        }
    };
    let mut distinct = false;
    let value: String = match (q.view, q.metric_name.as_str()) {
        (MetricView::Traces, "trace_count") => "t.trace_id".into(),
        (MetricView::Traces, "session_count") => {
            distinct = true;
            metadata(&mut sql, SESSION_METADATA)
        }
        (MetricView::Traces, "latency") => "t.execution_time".into(),
        (
            MetricView::Traces,
            field @ ("input_tokens"
            | "output_tokens"
            | "total_tokens"
            | "cache_read_input_tokens"
            | "cache_creation_input_tokens"),
        ) => json_number(&mut sql, field),
        (MetricView::Spans, "span_count") => "s.span_id".into(),
        (MetricView::Spans, "latency") => "((s.end_ns - s.start_ns) / 1000000)".into(),
        (MetricView::Spans, field @ ("input_cost" | "output_cost" | "total_cost")) => {
            span_cost(&mut sql, field)
        }
        (MetricView::Assessments, "assessment_count") => "a.assessment_id".into(),
        (MetricView::Assessments, "assessment_value") => assessment_number(pg),
        (view, name) => {
            return Err(Error::unsupported(format!(
                "The metric '{name}' of the {view:?} view"
            )));
        }
    };
    wheres.push(format!("{value} IS NOT NULL"));

    // Dimensions: (expression, is text).
    let mut dims: Vec<(String, bool)> = Vec::new(); // (expression, is text)
    if let Some(secs) = q.time_interval_seconds {
        let ms = secs.checked_mul(1000).filter(|ms| *ms > 0).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid time_interval_seconds {secs}: it must be positive"
            ))
        })?;
        dims.push((format!("(({time_ms} / {ms}) * {ms})"), false));
    }
    for d in &q.dimensions {
        let e = match (q.view, d.as_str()) {
            (MetricView::Traces, "trace_name") => {
                let k = sql.bind(TRACE_NAME_TAG);
                format!("(SELECT g.value FROM trace_tags g WHERE g.trace = t.id AND g.key = {k})")
            }
            (MetricView::Traces, "trace_status") => "t.state".into(),
            (MetricView::Spans, "span_name") => "s.name".into(),
            (MetricView::Spans, "span_type") => "s.type".into(),
            (MetricView::Spans, "span_status") => "s.status".into(),
            (MetricView::Spans, "span_model_name") => model_dimension(&mut sql, MODEL_ATTRIBUTE),
            (MetricView::Spans, "span_model_provider") => {
                model_dimension(&mut sql, MODEL_PROVIDER_ATTRIBUTE)
            }
            (MetricView::Assessments, "assessment_name") => "a.name".into(),
            (MetricView::Assessments, "assessment_value") => {
                if pg {
                    "(COALESCE(a.body::jsonb -> 'feedback' -> 'value', a.body::jsonb -> 'expectation' -> 'value'))::text".into()
                } else {
                    "COALESCE(a.body -> '$.feedback.value', a.body -> '$.expectation.value')".into()
                }
            }
            (view, name) => {
                return Err(Error::unsupported(format!(
                    "The dimension '{name}' of the {view:?} view"
                )));
            }
        };
        wheres.push(format!("{e} IS NOT NULL"));
        dims.push((e, true));
    }

    let float = if pg { "float8" } else { "REAL" };
    // Dimensions as they are (the time bucket an integer), grouped and ordered by position:
    // the text columns are byte-ordered in both stores (PostgreSQL: `COLLATE "C"` columns).
    let mut select: Vec<String> = dims.iter().map(|(e, _)| e.clone()).collect();
    for agg in &q.aggregations {
        let arg = if distinct {
            format!("DISTINCT {value}")
        } else {
            value.clone()
        };
        let e = match agg {
            MetricAggregation::Count => format!("COUNT({arg})"),
            MetricAggregation::Sum => format!("SUM({arg})"),
            MetricAggregation::Avg => format!("AVG({arg})"),
            MetricAggregation::Min => format!("MIN({arg})"),
            MetricAggregation::Max => format!("MAX({arg})"),
            MetricAggregation::Percentile(p) => {
                if pg {
                    format!(
                        "percentile_cont({:?}::float8) WITHIN GROUP (ORDER BY {value})",
                        p / 100.0
                    )
                } else {
                    format!("percentile({value}, {p:?})")
                }
            }
        };
        select.push(format!("CAST({e} AS {float})"));
    }
    let mut text = format!(
        "SELECT {} FROM {from} WHERE {}",
        select.join(", "),
        wheres.join(" AND ")
    );
    if !dims.is_empty() {
        let positions: Vec<String> = (1..=dims.len()).map(|i| i.to_string()).collect();
        let positions = positions.join(", ");
        text.push_str(&format!(" GROUP BY {positions} ORDER BY {positions}"));
    }
    let limit = sql.bind(q.max_results as i64);
    text.push_str(&format!(" LIMIT {limit}"));
    sql.text = text;
    Ok((sql, dims.len()))
}

/// An assessment's value as a number (MLflow's `assessment_aggregate`): booleans 1/0, finite
/// numbers themselves, the strings `yes`/`no` (trimmed, any case) 1/0, anything else `NULL`.
fn assessment_number(pg: bool) -> String {
    if pg {
        let v = "COALESCE(a.body::jsonb -> 'feedback' -> 'value', a.body::jsonb -> 'expectation' -> 'value')";
        format!(
            "(CASE jsonb_typeof({v}) \
             WHEN 'boolean' THEN (CASE WHEN ({v})::boolean THEN 1.0 ELSE 0.0 END) \
             WHEN 'number' THEN ({v})::float8 \
             WHEN 'string' THEN (CASE lower(btrim({v} #>> '{{}}')) WHEN 'yes' THEN 1.0 WHEN 'no' THEN 0.0 END) \
             END)"
        )
    } else {
        let path = "(CASE WHEN json_type(a.body, '$.feedback.value') IS NOT NULL THEN '$.feedback.value' ELSE '$.expectation.value' END)";
        format!(
            "(CASE json_type(a.body, {path}) \
             WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 \
             WHEN 'integer' THEN CAST(json_extract(a.body, {path}) AS REAL) \
             WHEN 'real' THEN json_extract(a.body, {path}) \
             WHEN 'text' THEN (CASE lower(trim(json_extract(a.body, {path}))) WHEN 'yes' THEN 1.0 WHEN 'no' THEN 0.0 END) \
             END)"
        )
    }
}

/// The `p`-th percentile (0 to 100) of `values` with linear interpolation between the closest
/// ranks (numpy's default method, PostgreSQL's `percentile_cont`); `None` when empty. Sorts
/// `values`. For stores that aggregate outside SQL (SQLite's `percentile()`).
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let g = rank - lo as f64;
    Some(values[lo] + (values[hi] - values[lo]) * g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_between_ranks_as_numpy_does() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 90, 100]) = [1, 1.75, 2.5, 3.7, 4]
        for (p, want) in [
            (0.0, 1.0),
            (25.0, 1.75),
            (50.0, 2.5),
            (90.0, 3.7),
            (100.0, 4.0),
        ] {
            let got = percentile(&mut [4.0, 1.0, 3.0, 2.0], p).unwrap();
            assert!((got - want).abs() < 1e-12, "p{p}: {got} != {want}");
        }
        assert_eq!(percentile(&mut [], 50.0), None);
        assert_eq!(percentile(&mut [7.0], 99.0), Some(7.0));
    }

    #[test]
    fn labels_are_pythons() {
        assert_eq!(MetricAggregation::Percentile(50.0).label(), "P50.0");
        assert_eq!(MetricAggregation::Percentile(99.9).label(), "P99.9");
        assert_eq!(MetricAggregation::Count.label(), "COUNT");
    }
}
