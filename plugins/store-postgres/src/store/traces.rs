//! MLflow 3 traces: infos, tags, request metadata, spans (kept in the store) and assessments,
//! as the SQLite store keeps them (same tables, same rules; the search and `traces/metrics`
//! SQL is the shared translation in the PostgreSQL dialect).
//!
//! Concurrency: the client sends a trace's spans in several OTLP requests at once and then its
//! info; the trace row is created by whichever arrives first (`INSERT ... ON CONFLICT`) and
//! locked (`FOR UPDATE`) by the others, so they serialise on it.

use super::*;
use cairn_plugin_api::traces::*;
use std::collections::BTreeMap;

/// Traces deleted per transaction when deleting by age.
const DELETE_BATCH: usize = 500;

fn no_trace(id: &str) -> StoreError {
    not_found(format!("Trace with ID '{id}' not found."))
}

fn no_assessment(trace_id: &str, id: &str) -> StoreError {
    not_found(format!(
        "Assessment with ID '{id}' not found for trace '{trace_id}'."
    ))
}

async fn trace_row(tx: &Transaction<'_>, trace_id: &str) -> StoreResult<Option<i64>> {
    Ok(tx
        .query_opt("SELECT id FROM traces WHERE trace_id = $1", &[&trace_id])
        .await?
        .map(|r| r.get(0)))
}

async fn locked_trace_row(tx: &Transaction<'_>, trace_id: &str) -> StoreResult<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT id FROM traces WHERE trace_id = $1 FOR UPDATE",
            &[&trace_id],
        )
        .await?
        .map(|r| r.get(0)))
}

async fn require_trace(tx: &Transaction<'_>, trace_id: &str) -> StoreResult<i64> {
    trace_row(tx, trace_id)
        .await?
        .ok_or_else(|| no_trace(trace_id))
}

async fn upsert_kv(
    tx: &Transaction<'_>,
    table: &str,
    trace: i64,
    key: &str,
    value: &str,
) -> StoreResult<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (trace, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (trace, key) DO UPDATE SET value = excluded.value"
        ),
        &[&trace, &key, &value],
    )
    .await?;
    Ok(())
}

/// Applies a `link-to-run` made before the trace existed.
async fn apply_pending_run(tx: &Transaction<'_>, row: i64, trace_id: &str) -> StoreResult<()> {
    let run = tx
        .query_opt(
            "DELETE FROM trace_pending_runs WHERE trace_id = $1 RETURNING run_id",
            &[&trace_id],
        )
        .await?;
    if let Some(run) = run {
        let run: String = run.get(0);
        upsert_kv(tx, "trace_metadata", row, SOURCE_RUN_METADATA, &run).await?;
    }
    Ok(())
}

/// The experiment's id and artifact location; it must exist and be active.
async fn active_experiment(tx: &Transaction<'_>, text: &str) -> StoreResult<(i64, String)> {
    let id = experiment_id(text)?;
    let row = tx
        .query_opt(
            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = $1",
            &[&id],
        )
        .await?;
    match row {
        None => Err(no_experiment(id)),
        Some(r) => {
            let (loc, stage): (String, String) = (r.get(0), r.get(1));
            if stage != "active" {
                return Err(invalid(format!(
                    "The experiment {id} must be in the 'active' state. Current state is {stage}."
                )));
            }
            Ok((id, loc))
        }
    }
}

async fn put_assessment(tx: &Transaction<'_>, trace: i64, a: &Assessment) -> StoreResult<()> {
    let body = serde_json::to_string(&a.body)
        .map_err(|e| StoreError::Corrupt(format!("assessment body: {e}")))?;
    tx.execute(
        "INSERT INTO assessments (assessment_id, trace, name, create_time, last_update_time, body) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (assessment_id) DO UPDATE SET \
         name = excluded.name, last_update_time = excluded.last_update_time, body = excluded.body",
        &[
            &a.assessment_id,
            &trace,
            &a.name,
            &a.create_time_ms,
            &a.last_update_time_ms,
            &body,
        ],
    )
    .await?;
    Ok(())
}

/// The tags every stored trace carries: where its attachments go and where its spans are.
async fn location_tags(
    tx: &Transaction<'_>,
    row: i64,
    location: &str,
    trace_id: &str,
) -> StoreResult<()> {
    let artifacts = format!(
        "{}/traces/{trace_id}/artifacts",
        location.trim_end_matches('/')
    );
    upsert_kv(tx, "trace_tags", row, ARTIFACT_LOCATION_TAG, &artifacts).await?;
    upsert_kv(
        tx,
        "trace_tags",
        row,
        SPANS_LOCATION_TAG,
        SPANS_IN_TRACKING_STORE,
    )
    .await
}

fn state_of(s: &str) -> StoreResult<TraceState> {
    TraceState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("trace state {s:?}")))
}

fn body_of(text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("assessment body: {e}")))
}

/// Full infos (tags, metadata, assessments) of trace rows, in the order given.
async fn load_infos(tx: &Transaction<'_>, rows: &[i64]) -> StoreResult<Vec<TraceInfo>> {
    let mut infos: HashMap<i64, TraceInfo> = HashMap::with_capacity(rows.len());
    for r in tx
        .query(
            "SELECT id, trace_id, experiment_id, client_request_id, request_time, \
             execution_time, state, request_preview, response_preview FROM traces \
             WHERE id = ANY($1)",
            &[&rows],
        )
        .await?
    {
        let mut info = TraceInfo::new(
            r.try_get::<_, String>(1)?,
            r.try_get::<_, i64>(2)?.to_string(),
            r.try_get(4)?,
            state_of(&r.try_get::<_, String>(6)?)?,
        );
        info.client_request_id = r.try_get(3)?;
        info.execution_duration_ms = r.try_get(5)?;
        info.request_preview = r.try_get(7)?;
        info.response_preview = r.try_get(8)?;
        infos.insert(r.try_get(0)?, info);
    }
    for (table, is_tags) in [("trace_tags", true), ("trace_metadata", false)] {
        for r in tx
            .query(
                &format!("SELECT trace, key, value FROM {table} WHERE trace = ANY($1)"),
                &[&rows],
            )
            .await?
        {
            if let Some(info) = infos.get_mut(&r.try_get::<_, i64>(0)?) {
                let map = if is_tags {
                    &mut info.tags
                } else {
                    &mut info.trace_metadata
                };
                map.insert(r.try_get(1)?, r.try_get(2)?);
            }
        }
    }
    for r in tx
        .query(
            "SELECT a.trace, a.assessment_id, t.trace_id, a.name, a.create_time, \
             a.last_update_time, a.body FROM assessments a JOIN traces t ON t.id = a.trace \
             WHERE a.trace = ANY($1) ORDER BY a.create_time, a.assessment_id",
            &[&rows],
        )
        .await?
    {
        let body = body_of(&r.try_get::<_, String>(6)?)?;
        if let Some(info) = infos.get_mut(&r.try_get::<_, i64>(0)?) {
            info.assessments.push(Assessment::new(
                r.try_get::<_, String>(1)?,
                r.try_get::<_, String>(2)?,
                r.try_get::<_, String>(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                body,
            ));
        }
    }
    Ok(rows.iter().filter_map(|id| infos.remove(id)).collect())
}

async fn load_assessment(
    tx: &Transaction<'_>,
    trace_id: &str,
    assessment_id: &str,
) -> StoreResult<Assessment> {
    let r = tx
        .query_opt(
            "SELECT a.name, a.create_time, a.last_update_time, a.body FROM assessments a \
             JOIN traces t ON t.id = a.trace WHERE t.trace_id = $1 AND a.assessment_id = $2",
            &[&trace_id, &assessment_id],
        )
        .await?
        .ok_or_else(|| no_assessment(trace_id, assessment_id))?;
    let body = body_of(&r.try_get::<_, String>(3)?)?;
    Ok(Assessment::new(
        assessment_id,
        trace_id,
        r.try_get::<_, String>(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        body,
    ))
}

/// Deletes traces by row id; their tags, metadata, spans and assessments go with them.
async fn delete_rows(tx: &Transaction<'_>, rows: &[i64]) -> StoreResult<usize> {
    Ok(tx
        .execute("DELETE FROM traces WHERE id = ANY($1)", &[&rows])
        .await? as usize)
}

fn experiment_ids(ids: &[String]) -> StoreResult<Vec<i64>> {
    ids.iter().map(|s| experiment_id(s)).collect()
}

#[cairn_plugin_api::async_trait]
impl TraceStore for PostgresStore {
    async fn start_trace(&self, info: TraceInfo) -> Result<TraceInfo> {
        let trace_id = info.trace_id.clone();
        self.write(move |tx, _| {
            Box::pin(async move {
                let (exp, location) = active_experiment(tx, &info.experiment_id).await?;
                let row: i64 = tx
                    .query_one(
                        "INSERT INTO traces (trace_id, experiment_id, client_request_id, \
                         request_time, execution_time, state, request_preview, response_preview) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (trace_id) DO UPDATE \
                         SET experiment_id = excluded.experiment_id, \
                         client_request_id = excluded.client_request_id, \
                         request_time = excluded.request_time, \
                         execution_time = excluded.execution_time, state = excluded.state, \
                         request_preview = excluded.request_preview, \
                         response_preview = excluded.response_preview RETURNING id",
                        &[
                            &info.trace_id,
                            &exp,
                            &info.client_request_id,
                            &info.request_time_ms,
                            &info.execution_duration_ms,
                            &info.state.as_str(),
                            &info.request_preview,
                            &info.response_preview,
                        ],
                    )
                    .await?
                    .get(0);
                for (k, v) in &info.tags {
                    upsert_kv(tx, "trace_tags", row, k, v).await?;
                }
                location_tags(tx, row, &location, &info.trace_id).await?;
                for (k, v) in &info.trace_metadata {
                    upsert_kv(tx, "trace_metadata", row, k, v).await?;
                }
                for a in &info.assessments {
                    put_assessment(tx, row, a).await?;
                }
                apply_pending_run(tx, row, &info.trace_id).await
            })
        })
        .await?;
        self.get_trace_info(&trace_id).await
    }

    async fn log_spans(&self, experiment_id_text: &str, spans: Vec<SpanRecord>) -> Result<()> {
        let experiment_id_text = experiment_id_text.to_string();
        self.write(move |tx, _| {
            Box::pin(async move {
                let (exp, location) = active_experiment(tx, &experiment_id_text).await?;
                let mut by_trace: BTreeMap<String, Vec<SpanRecord>> = BTreeMap::new();
                for s in spans {
                    by_trace.entry(s.trace_id.clone()).or_default().push(s);
                }
                let stmt = tx
                    .prepare(
                        "INSERT INTO spans (trace, span_id, parent_span_id, name, type, \
                         status, start_ns, end_ns, content) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (trace, span_id) DO UPDATE SET parent_span_id = \
                         excluded.parent_span_id, name = excluded.name, type = excluded.type, \
                         status = excluded.status, start_ns = excluded.start_ns, \
                         end_ns = excluded.end_ns, content = excluded.content",
                    )
                    .await?;
                for (trace_id, spans) in by_trace {
                    let start_ms = spans
                        .iter()
                        .map(|s| s.start_time_unix_nano / 1_000_000)
                        .min()
                        .unwrap_or(0);
                    let created = tx
                        .query_opt(
                            "INSERT INTO traces (trace_id, experiment_id, request_time, state) \
                             VALUES ($1, $2, $3, 'IN_PROGRESS') ON CONFLICT (trace_id) DO NOTHING \
                             RETURNING id",
                            &[&trace_id, &exp, &start_ms],
                        )
                        .await?;
                    let row = match created {
                        Some(r) => {
                            let row: i64 = r.get(0);
                            location_tags(tx, row, &location, &trace_id).await?;
                            apply_pending_run(tx, row, &trace_id).await?;
                            row
                        }
                        None => locked_trace_row(tx, &trace_id)
                            .await?
                            .ok_or_else(|| no_trace(&trace_id))?,
                    };
                    if let Some(root) = spans.iter().find(|s| s.parent_span_id.is_none()) {
                        // The root span decides the trace's time, duration and state unless
                        // start_trace already wrote them (then it is no longer IN_PROGRESS).
                        let state = if root.status == "ERROR" {
                            "ERROR"
                        } else {
                            "OK"
                        };
                        let duration = root
                            .end_time_unix_nano
                            .map(|e| (e - root.start_time_unix_nano) / 1_000_000);
                        tx.execute(
                            "UPDATE traces SET request_time = $2, execution_time = $3, \
                             state = $4 WHERE id = $1 AND state = 'IN_PROGRESS'",
                            &[
                                &row,
                                &(root.start_time_unix_nano / 1_000_000),
                                &duration,
                                &state,
                            ],
                        )
                        .await?;
                    }
                    for s in &spans {
                        tx.execute(
                            &stmt,
                            &[
                                &row,
                                &s.span_id,
                                &s.parent_span_id,
                                &s.name,
                                &s.span_type,
                                &s.status,
                                &s.start_time_unix_nano,
                                &s.end_time_unix_nano,
                                &s.content,
                            ],
                        )
                        .await?;
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo> {
        let trace_id = trace_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let row = require_trace(tx, &trace_id).await?;
                load_infos(tx, &[row])
                    .await?
                    .pop()
                    .ok_or_else(|| no_trace(&trace_id))
            })
        })
        .await
    }

    async fn batch_get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        let trace_ids = trace_ids.to_vec();
        self.read(move |tx| {
            Box::pin(async move {
                let mut rows = Vec::with_capacity(trace_ids.len());
                for id in &trace_ids {
                    if let Some(row) = trace_row(tx, id).await? {
                        rows.push(row);
                    }
                }
                load_infos(tx, &rows).await
            })
        })
        .await
    }

    async fn get_spans(
        &self,
        trace_id: &str,
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<SpanRecord>> {
        let trace_id = trace_id.to_string();
        self.read(move |tx| {
            Box::pin(async move {
                let row = require_trace(tx, &trace_id).await?;
                let query = search_sql::fingerprint(&("spans", &trace_id));
                let last = match &page_token {
                    Some(t) => Some(search_sql::decode_token(t, query, 2)?),
                    None => None,
                };
                let (after_start, after_id) = match last.as_deref() {
                    Some([SortVal::I(s), SortVal::S(id)]) => (*s, id.clone()),
                    Some(_) => return Err(invalid("Invalid page token")),
                    None => (i64::MIN, String::new()),
                };
                let rows = tx
                    .query(
                        "SELECT span_id, parent_span_id, name, type, status, start_ns, end_ns, \
                         content FROM spans WHERE trace = $1 AND (start_ns > $2 OR \
                         (start_ns = $2 AND span_id > ($3::text COLLATE \"C\"))) \
                         ORDER BY start_ns, span_id LIMIT $4",
                        &[&row, &after_start, &after_id, &(max_results as i64 + 1)],
                    )
                    .await?;
                let mut items = Vec::with_capacity(rows.len());
                for r in rows {
                    items.push(SpanRecord::new(
                        trace_id.clone(),
                        r.try_get::<_, String>(0)?,
                        r.try_get(1)?,
                        r.try_get::<_, String>(2)?,
                        r.try_get(3)?,
                        r.try_get::<_, String>(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get::<_, String>(7)?,
                    ));
                }
                let next_page_token = if items.len() > max_results {
                    items.truncate(max_results);
                    let last = items.last().expect("non-empty");
                    Some(search_sql::encode_token(
                        query,
                        vec![
                            SortVal::I(last.start_time_unix_nano),
                            SortVal::S(last.span_id.clone()),
                        ],
                    ))
                } else {
                    None
                };
                Ok(Page {
                    items,
                    next_page_token,
                })
            })
        })
        .await
    }

    async fn batch_get_spans(
        &self,
        trace_ids: &[String],
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<SpanRecord>> {
        let max_results = max_results.max(1);
        let fp = search_sql::fingerprint(&("batch-spans", trace_ids));
        let last = match &page_token {
            Some(t) => Some(search_sql::decode_token(t, fp, 3)?),
            None => None,
        };
        if trace_ids.is_empty() {
            return Ok(Page::last(Vec::new()));
        }
        if trace_ids.len() > IN_CHUNK {
            return Err(invalid(format!(
                "At most {IN_CHUNK} trace ids may be read at once, got {}",
                trace_ids.len()
            ))
            .into());
        }
        // One query a page, in the order of the index (trace, start_ns, span_id).
        let mut sql = sql();
        let list = sql.bind_list(trace_ids);
        let after = match last.as_deref() {
            Some([SortVal::I(row), SortVal::I(start), SortVal::S(id)]) => {
                let (row, start, id) = (sql.bind(*row), sql.bind(*start), sql.bind(id.clone()));
                format!("AND (s.trace, s.start_ns, s.span_id) > ({row}, {start}, {id})")
            }
            Some(_) => return Err(invalid("Invalid page token").into()),
            None => String::new(),
        };
        let limit = sql.bind(max_results as i64 + 1);
        sql.text = format!(
            "SELECT s.trace, t.trace_id, s.span_id, s.parent_span_id, s.name, s.type, s.status, \
             s.start_ns, s.end_ns, s.content FROM traces t JOIN spans s ON s.trace = t.id \
             WHERE t.trace_id IN {list} {after} ORDER BY s.trace, s.start_ns, s.span_id \
             LIMIT {limit}"
        );
        self.read(move |tx| {
            Box::pin(async move {
                let rows = query(tx, &sql).await?;
                let more = rows.len() > max_results;
                let mut items = Vec::with_capacity(rows.len().min(max_results));
                let mut last_row = 0;
                for r in rows.iter().take(max_results) {
                    last_row = r.try_get::<_, i64>(0)?;
                    items.push(SpanRecord::new(
                        r.try_get::<_, String>(1)?,
                        r.try_get::<_, String>(2)?,
                        r.try_get(3)?,
                        r.try_get::<_, String>(4)?,
                        r.try_get(5)?,
                        r.try_get::<_, String>(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                        r.try_get::<_, String>(9)?,
                    ));
                }
                let next_page_token = match (more, items.last()) {
                    (true, Some(s)) => Some(search_sql::encode_token(
                        fp,
                        vec![
                            SortVal::I(last_row),
                            SortVal::I(s.start_time_unix_nano),
                            SortVal::S(s.span_id.clone()),
                        ],
                    )),
                    _ => None,
                };
                Ok(Page {
                    items,
                    next_page_token,
                })
            })
        })
        .await
    }

    async fn search_traces(&self, req: SearchTraces) -> Result<Page<TraceInfo>> {
        let exps = experiment_ids(&req.experiment_ids)?;
        if exps.is_empty() {
            return Ok(Page::last(vec![]));
        }
        let (sql, fp, n_keys) = search_sql::traces_page_query(sql(), &req, &exps)?;
        let max = req.max_results;
        self.read(move |tx| {
            Box::pin(async move {
                let (ids, next) = run_page_query(tx, &sql, n_keys, max).await?;
                Ok(Page {
                    items: load_infos(tx, &ids).await?,
                    next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
                })
            })
        })
        .await
    }

    async fn count_traces(
        &self,
        experiment_ids: &[String],
        filter: Option<cairn_plugin_api::search::Expr>,
    ) -> Result<usize> {
        let exps = self::experiment_ids(experiment_ids)?;
        if exps.is_empty() {
            return Ok(0);
        }
        let mut sql = sql();
        let list = sql.bind_list(&exps);
        let mut wheres = vec![format!("t.experiment_id IN {list}")];
        if let Some(f) = &filter {
            wheres.push(search_sql::filter(&mut sql, Target::Traces, f, &[])?);
        }
        sql.text = format!(
            "SELECT COUNT(*) FROM traces t WHERE {}",
            wheres.join(" AND ")
        );
        self.read(move |tx| {
            Box::pin(async move {
                let rows = query(tx, &sql).await?;
                Ok(rows[0].try_get::<_, i64>(0)? as usize)
            })
        })
        .await
    }

    async fn query_trace_metrics(&self, q: TraceMetricsQuery) -> Result<Vec<MetricDataPoint>> {
        let exps = experiment_ids(&q.experiment_ids)?;
        if exps.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, n_dims) =
            cairn_plugin_api::search::metrics_sql::trace_metrics(Dialect::Postgres, &q, &exps)?;
        let labels: Vec<String> = q.aggregations.iter().map(|a| a.label()).collect();
        let dims: Vec<String> = q
            .time_interval_seconds
            .map(|_| "time_bucket".to_string())
            .into_iter()
            .chain(q.dimensions.iter().cloned())
            .collect();
        self.read(move |tx| {
            Box::pin(async move {
                let mut out = Vec::new();
                for r in query(tx, &sql).await? {
                    let mut point = MetricDataPoint::new(BTreeMap::new(), BTreeMap::new());
                    for (i, d) in dims.iter().enumerate().take(n_dims) {
                        let v = sort_val(&r, i)?;
                        point.dimensions.insert(d.clone(), dimension_text(v));
                    }
                    for (j, label) in labels.iter().enumerate() {
                        if let Some(v) = r.try_get::<_, Option<f64>>(n_dims + j)? {
                            point.values.insert(label.clone(), v);
                        }
                    }
                    if !point.values.is_empty() {
                        out.push(point);
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn delete_traces(&self, experiment_id_text: &str, which: DeleteTraces) -> Result<usize> {
        let exp = experiment_id(experiment_id_text)?;
        match which {
            DeleteTraces::Ids(ids) => {
                self.write(move |tx, _| {
                    Box::pin(async move {
                        let rows: Vec<i64> = tx
                            .query(
                                "SELECT id FROM traces WHERE experiment_id = $1 AND \
                                 trace_id = ANY($2)",
                                &[&exp, &ids],
                            )
                            .await?
                            .iter()
                            .map(|r| r.get(0))
                            .collect();
                        delete_rows(tx, &rows).await
                    })
                })
                .await
            }
            DeleteTraces::OlderThan {
                max_timestamp_millis,
                max_traces,
            } => {
                // Oldest first, one bounded transaction per batch: other requests run between.
                let mut remaining = max_traces.unwrap_or(usize::MAX);
                let mut total = 0;
                while remaining > 0 {
                    let batch = remaining.min(DELETE_BATCH) as i64;
                    let n = self
                        .write(move |tx, _| {
                            Box::pin(async move {
                                let rows: Vec<i64> = tx
                                    .query(
                                        "SELECT id FROM traces WHERE experiment_id = $1 AND \
                                         request_time <= $2 ORDER BY request_time, trace_id \
                                         LIMIT $3 FOR UPDATE SKIP LOCKED",
                                        &[&exp, &max_timestamp_millis, &batch],
                                    )
                                    .await?
                                    .iter()
                                    .map(|r| r.get(0))
                                    .collect();
                                delete_rows(tx, &rows).await
                            })
                        })
                        .await?;
                    total += n;
                    remaining -= n;
                    if (n as i64) < batch {
                        break;
                    }
                }
                Ok(total)
            }
        }
    }

    async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        let (trace_id, key, value) = (trace_id.to_string(), key.to_string(), value.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let row = require_trace(tx, &trace_id).await?;
                upsert_kv(tx, "trace_tags", row, &key, &value).await
            })
        })
        .await
    }

    async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        let (trace_id, key) = (trace_id.to_string(), key.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let row = require_trace(tx, &trace_id).await?;
                let n = tx
                    .execute(
                        "DELETE FROM trace_tags WHERE trace = $1 AND key = $2",
                        &[&row, &key],
                    )
                    .await?;
                if n == 0 {
                    return Err(not_found(format!(
                        "No trace tag with key '{key}' for trace with ID '{trace_id}'"
                    )));
                }
                Ok(())
            })
        })
        .await
    }

    async fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        let (trace_ids, run_id) = (trace_ids.to_vec(), run_id.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                for id in &trace_ids {
                    match trace_row(tx, id).await? {
                        Some(row) => {
                            upsert_kv(tx, "trace_metadata", row, SOURCE_RUN_METADATA, &run_id)
                                .await?
                        }
                        None => {
                            tx.execute(
                                "INSERT INTO trace_pending_runs (trace_id, run_id) VALUES ($1, $2) \
                                 ON CONFLICT (trace_id) DO UPDATE SET run_id = excluded.run_id",
                                &[id, &run_id],
                            )
                            .await?;
                        }
                    }
                }
                Ok(())
            })
        })
        .await
    }

    async fn create_assessment(&self, assessment: Assessment) -> Result<Assessment> {
        let (trace_id, id) = (
            assessment.trace_id.clone(),
            assessment.assessment_id.clone(),
        );
        self.write(move |tx, _| {
            Box::pin(async move {
                let row = require_trace(tx, &assessment.trace_id).await?;
                put_assessment(tx, row, &assessment).await
            })
        })
        .await?;
        self.get_assessment(&trace_id, &id).await
    }

    async fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Assessment> {
        let (trace_id, id) = (trace_id.to_string(), assessment_id.to_string());
        self.read(move |tx| {
            Box::pin(async move {
                require_trace(tx, &trace_id).await?;
                load_assessment(tx, &trace_id, &id).await
            })
        })
        .await
    }

    async fn update_assessment(&self, assessment: Assessment) -> Result<Assessment> {
        let (trace_id, id) = (
            assessment.trace_id.clone(),
            assessment.assessment_id.clone(),
        );
        self.write(move |tx, _| {
            Box::pin(async move {
                let row = require_trace(tx, &assessment.trace_id).await?;
                load_assessment(tx, &assessment.trace_id, &assessment.assessment_id).await?;
                put_assessment(tx, row, &assessment).await
            })
        })
        .await?;
        self.get_assessment(&trace_id, &id).await
    }

    async fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()> {
        let (trace_id, id) = (trace_id.to_string(), assessment_id.to_string());
        self.write(move |tx, _| {
            Box::pin(async move {
                let row = require_trace(tx, &trace_id).await?;
                tx.execute(
                    "DELETE FROM assessments WHERE trace = $1 AND assessment_id = $2",
                    &[&row, &id],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}

/// A `traces/metrics` dimension value as text (the time bucket is an integer).
fn dimension_text(v: SortVal) -> String {
    match v {
        SortVal::I(i) => i.to_string(),
        SortVal::R(bits) => f64::from_bits(bits).to_string(),
        SortVal::S(s) => s,
        _ => String::new(),
    }
}
