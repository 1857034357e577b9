//! MLflow 3 traces: infos, tags, request metadata, spans (kept in the store) and assessments.

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

/// The row id of a trace.
fn trace_row(conn: &Connection, trace_id: &str) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM traces WHERE trace_id = ?1")?
        .query_row([trace_id], |r| r.get(0))
        .optional()?)
}

/// Applies a `link-to-run` made before the trace existed (see MIGRATION_5).
fn apply_pending_run(tx: &Transaction<'_>, row: i64, trace_id: &str) -> StoreResult<()> {
    let run: Option<String> = tx
        .prepare_cached("DELETE FROM trace_pending_runs WHERE trace_id = ?1 RETURNING run_id")?
        .query_row([trace_id], |r| r.get(0))
        .optional()?;
    if let Some(run) = run {
        upsert_kv(tx, "trace_metadata", row, SOURCE_RUN_METADATA, &run)?;
    }
    Ok(())
}

fn require_trace(conn: &Connection, trace_id: &str) -> StoreResult<i64> {
    trace_row(conn, trace_id)?.ok_or_else(|| no_trace(trace_id))
}

/// The experiment's artifact location; it must exist and be active.
fn active_experiment(conn: &Connection, experiment_id_text: &str) -> StoreResult<(i64, String)> {
    let id = experiment_id(experiment_id_text)?;
    let row: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Err(no_experiment(id)),
        Some((_, s)) if s != "active" => Err(invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is {s}."
        ))),
        Some((loc, _)) => Ok((id, loc)),
    }
}

fn upsert_kv(
    tx: &Transaction<'_>,
    table: &str,
    trace: i64,
    key: &str,
    value: &str,
) -> StoreResult<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO {table} (trace, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (trace, key) DO UPDATE SET value = excluded.value"
    ))?
    .execute(params![trace, key, value])?;
    Ok(())
}

fn put_assessment(tx: &Transaction<'_>, trace: i64, a: &Assessment) -> StoreResult<()> {
    let body = serde_json::to_string(&a.body)
        .map_err(|e| StoreError::Corrupt(format!("assessment body: {e}")))?;
    tx.prepare_cached(
        "INSERT INTO assessments (assessment_id, trace, name, create_time, last_update_time, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (assessment_id) DO UPDATE SET \
         name = excluded.name, last_update_time = excluded.last_update_time, body = excluded.body",
    )?
    .execute(params![
        a.assessment_id,
        trace,
        a.name,
        a.create_time_ms,
        a.last_update_time_ms,
        body
    ])?;
    Ok(())
}

fn state_of(s: &str) -> StoreResult<TraceState> {
    TraceState::parse(s).ok_or_else(|| StoreError::Corrupt(format!("trace state {s:?}")))
}

/// Loads full infos of trace rows, in the order given: tags and metadata as the JSON objects
/// the trace rows hold, assessments from their table.
///
/// The rows are bound as one JSON array and joined through `json_each`, which walks them in
/// order and probes each trace's rows through its index. An `IN (?1, ...)` list would first be
/// copied into a temporary b-tree, one per statement.
fn load_infos(conn: &Connection, rows: &[i64]) -> StoreResult<Vec<TraceInfo>> {
    let mut infos: HashMap<i64, TraceInfo> = HashMap::with_capacity(rows.len());
    let list = id_list(rows);
    let mut stmt = conn.prepare_cached(
        "SELECT t.id, t.trace_id, t.experiment_id, t.client_request_id, t.request_time, \
         t.execution_time, t.state, t.request_preview, t.response_preview, t.tags_json, \
         t.metadata_json FROM json_each(?1) j CROSS JOIN traces t ON t.id = j.value",
    )?;
    let mut q = stmt.query([&list])?;
    while let Some(r) = q.next()? {
        let mut info = TraceInfo::new(
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?.to_string(),
            r.get(4)?,
            state_of(&r.get::<_, String>(6)?)?,
        );
        info.client_request_id = r.get(3)?;
        info.execution_duration_ms = r.get(5)?;
        info.request_preview = r.get(7)?;
        info.response_preview = r.get(8)?;
        // The JSON objects the triggers keep (schema 9), copied into answers as they are.
        info.tags = StringMap::from_json(r.get::<_, String>(9)?);
        info.trace_metadata = StringMap::from_json(r.get::<_, String>(10)?);
        infos.insert(r.get(0)?, info);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT a.trace, a.assessment_id, t.trace_id, a.name, a.create_time, \
         a.last_update_time, a.body FROM json_each(?1) j \
         CROSS JOIN assessments a ON a.trace = j.value JOIN traces t ON t.id = a.trace \
         ORDER BY a.create_time, a.assessment_id",
    )?;
    let mut q = stmt.query([&list])?;
    while let Some(r) = q.next()? {
        let body: String = r.get(6)?;
        let body = serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("assessment body: {e}")))?;
        if let Some(info) = infos.get_mut(&r.get::<_, i64>(0)?) {
            info.assessments.push(Assessment::new(
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get(4)?,
                r.get(5)?,
                body,
            ));
        }
    }
    Ok(rows.iter().filter_map(|id| infos.remove(id)).collect())
}

fn load_assessment(
    conn: &Connection,
    trace_id: &str,
    assessment_id: &str,
) -> StoreResult<Assessment> {
    let row: Option<(String, i64, i64, String)> = conn
        .prepare_cached(
            "SELECT a.name, a.create_time, a.last_update_time, a.body FROM assessments a \
             JOIN traces t ON t.id = a.trace WHERE t.trace_id = ?1 AND a.assessment_id = ?2",
        )?
        .query_row([trace_id, assessment_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let (name, c, u, body) = row.ok_or_else(|| no_assessment(trace_id, assessment_id))?;
    let body = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("assessment body: {e}")))?;
    Ok(Assessment::new(assessment_id, trace_id, name, c, u, body))
}

/// Deletes traces by row id, with everything they hold.
fn delete_rows(tx: &Transaction<'_>, rows: &[i64]) -> StoreResult<usize> {
    let mut n = 0;
    for chunk in rows.chunks(IN_CHUNK) {
        let mut sql = Sql::default();
        let list = sql.bind_list(chunk);
        for table in ["trace_tags", "trace_metadata", "spans", "assessments"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE trace IN {list}"),
                search_sql::params(&sql),
            )?;
        }
        n += tx.execute(
            &format!("DELETE FROM traces WHERE id IN {list}"),
            search_sql::params(&sql),
        )?;
    }
    Ok(n)
}

#[cairn_plugin_api::async_trait]
impl TraceStore for SqliteStore {
    async fn start_trace(&self, info: TraceInfo) -> Result<TraceInfo> {
        let trace_id = info.trace_id.clone();
        self.write(move |tx, _| {
            let (exp, location) = active_experiment(tx, &info.experiment_id)?;
            let existing = trace_row(tx, &info.trace_id)?;
            let row = match existing {
                Some(row) => {
                    tx.prepare_cached(
                        "UPDATE traces SET experiment_id = ?2, client_request_id = ?3, \
                         request_time = ?4, execution_time = ?5, state = ?6, \
                         request_preview = ?7, response_preview = ?8 WHERE id = ?1",
                    )?
                    .execute(params![
                        row,
                        exp,
                        info.client_request_id,
                        info.request_time_ms,
                        info.execution_duration_ms,
                        info.state.as_str(),
                        info.request_preview,
                        info.response_preview
                    ])?;
                    row
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO traces (trace_id, experiment_id, client_request_id, \
                         request_time, execution_time, state, request_preview, response_preview) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        info.trace_id,
                        exp,
                        info.client_request_id,
                        info.request_time_ms,
                        info.execution_duration_ms,
                        info.state.as_str(),
                        info.request_preview,
                        info.response_preview
                    ])?;
                    tx.last_insert_rowid()
                }
            };
            for (k, v) in &info.tags {
                upsert_kv(tx, "trace_tags", row, k, v)?;
            }
            let artifacts = format!(
                "{}/traces/{}/artifacts",
                location.trim_end_matches('/'),
                info.trace_id
            );
            upsert_kv(tx, "trace_tags", row, ARTIFACT_LOCATION_TAG, &artifacts)?;
            upsert_kv(
                tx,
                "trace_tags",
                row,
                SPANS_LOCATION_TAG,
                SPANS_IN_TRACKING_STORE,
            )?;
            for (k, v) in &info.trace_metadata {
                upsert_kv(tx, "trace_metadata", row, k, v)?;
            }
            for a in &info.assessments {
                put_assessment(tx, row, a)?;
            }
            apply_pending_run(tx, row, &info.trace_id)?;
            Ok(())
        })
        .await?;
        self.get_trace_info(&trace_id).await
    }

    async fn log_spans(&self, experiment_id_text: &str, spans: Vec<SpanRecord>) -> Result<()> {
        let experiment_id_text = experiment_id_text.to_string();
        self.write(move |tx, _| {
            let (exp, location) = active_experiment(tx, &experiment_id_text)?;
            let mut by_trace: BTreeMap<String, Vec<SpanRecord>> = BTreeMap::new();
            for s in spans {
                by_trace.entry(s.trace_id.clone()).or_default().push(s);
            }
            for (trace_id, spans) in by_trace {
                let start_ms = spans
                    .iter()
                    .map(|s| s.start_time_unix_nano / 1_000_000)
                    .min()
                    .unwrap_or(0);
                let root = spans.iter().find(|s| s.parent_span_id.is_none());
                let row = match trace_row(tx, &trace_id)? {
                    Some(row) => row,
                    None => {
                        tx.prepare_cached(
                            "INSERT INTO traces (trace_id, experiment_id, request_time, state) \
                             VALUES (?1, ?2, ?3, 'IN_PROGRESS')",
                        )?
                        .execute(params![trace_id, exp, start_ms])?;
                        let row = tx.last_insert_rowid();
                        let artifacts = format!(
                            "{}/traces/{trace_id}/artifacts",
                            location.trim_end_matches('/')
                        );
                        upsert_kv(tx, "trace_tags", row, ARTIFACT_LOCATION_TAG, &artifacts)?;
                        upsert_kv(
                            tx,
                            "trace_tags",
                            row,
                            SPANS_LOCATION_TAG,
                            SPANS_IN_TRACKING_STORE,
                        )?;
                        apply_pending_run(tx, row, &trace_id)?;
                        row
                    }
                };
                if let Some(root) = root {
                    // The root span decides the trace's time, duration and state unless
                    // start_trace already wrote them (then state is no longer IN_PROGRESS).
                    let state = match root.status.as_str() {
                        "ERROR" => "ERROR",
                        _ => "OK",
                    };
                    let duration = root
                        .end_time_unix_nano
                        .map(|e| (e - root.start_time_unix_nano) / 1_000_000);
                    tx.prepare_cached(
                        "UPDATE traces SET request_time = ?2, execution_time = ?3, state = ?4 \
                         WHERE id = ?1 AND state = 'IN_PROGRESS'",
                    )?
                    .execute(params![
                        row,
                        root.start_time_unix_nano / 1_000_000,
                        duration,
                        state
                    ])?;
                }
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO spans (trace, span_id, parent_span_id, name, type, status, \
                     start_ns, end_ns, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                     ON CONFLICT (trace, span_id) DO UPDATE SET parent_span_id = \
                     excluded.parent_span_id, name = excluded.name, type = excluded.type, \
                     status = excluded.status, start_ns = excluded.start_ns, \
                     end_ns = excluded.end_ns, content = excluded.content",
                )?;
                for s in &spans {
                    stmt.execute(params![
                        row,
                        s.span_id,
                        s.parent_span_id,
                        s.name,
                        s.span_type,
                        s.status,
                        s.start_time_unix_nano,
                        s.end_time_unix_nano,
                        s.content
                    ])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn get_trace_info(&self, trace_id: &str) -> Result<TraceInfo> {
        let trace_id = trace_id.to_string();
        self.read(move |tx| {
            let row = require_trace(tx, &trace_id)?;
            load_infos(tx, &[row])?
                .pop()
                .ok_or_else(|| no_trace(&trace_id))
        })
        .await
    }

    async fn batch_get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<TraceInfo>> {
        let trace_ids = trace_ids.to_vec();
        self.read(move |tx| {
            let mut rows = Vec::with_capacity(trace_ids.len());
            for id in &trace_ids {
                if let Some(row) = trace_row(tx, id)? {
                    rows.push(row);
                }
            }
            load_infos(tx, &rows)
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
            let row = require_trace(tx, &trace_id)?;
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
            // The LIMIT is written into the text, not bound: SQLite marks a bound LIMIT
            // "re-prepare when rebound", and the statement cache clears the bindings of a
            // statement it takes back, so a bound LIMIT compiled the statement on every call.
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT span_id, parent_span_id, name, type, status, start_ns, end_ns, content \
                 FROM spans WHERE trace = ?1 AND (start_ns > ?2 OR (start_ns = ?2 AND span_id > ?3)) \
                 ORDER BY start_ns, span_id LIMIT {}",
                max_results.saturating_add(1).min(i64::MAX as usize)
            ))?;
            let mut items = Vec::new();
            let mut q = stmt.query(params![row, after_start, after_id])?;
            while let Some(r) = q.next()? {
                items.push(SpanRecord::new(
                    trace_id.clone(),
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get::<_, String>(2)?,
                    r.get(3)?,
                    r.get::<_, String>(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get::<_, String>(7)?,
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
        .await
    }

    async fn batch_get_spans(
        &self,
        trace_ids: &[String],
        max_results: usize,
        page_token: Option<String>,
    ) -> Result<Page<SpanRecord>> {
        let trace_ids = trace_ids.to_vec();
        let max_results = max_results.max(1);
        self.read(move |tx| {
            let query = search_sql::fingerprint(&("batch-spans", &trace_ids));
            let last = match &page_token {
                Some(t) => Some(search_sql::decode_token(t, query, 3)?),
                None => None,
            };
            let mut out = Vec::new();
            if trace_ids.is_empty() {
                return Ok(Page::last(out));
            }
            if trace_ids.len() > IN_CHUNK {
                return Err(invalid(format!(
                    "At most {IN_CHUNK} trace ids may be read at once, got {}",
                    trace_ids.len()
                )));
            }
            // The traces' rows first, in row order; then one query a page over the spans of
            // those rows in the order of the index (trace, start_ns, span_id), which SQLite
            // walks row by row without sorting (joined on trace_id, it sorted every span).
            let mut sql = Sql::default();
            let list = sql.bind_list(&trace_ids);
            let mut names: BTreeMap<i64, String> = BTreeMap::new();
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT id, trace_id FROM traces WHERE trace_id IN {list}"
            ))?;
            let mut q = stmt.query(search_sql::params(&sql))?;
            while let Some(r) = q.next()? {
                names.insert(r.get(0)?, r.get(1)?);
            }
            drop(q);
            if names.is_empty() {
                return Ok(Page::last(out));
            }
            let rows: Vec<i64> = names.keys().copied().collect();
            let mut sql = Sql::default();
            let list = sql.bind_list(&rows);
            let after = match last.as_deref() {
                Some([SortVal::I(row), SortVal::I(start), SortVal::S(id)]) => {
                    let (row, start, id) = (sql.bind(*row), sql.bind(*start), sql.bind(id.clone()));
                    format!("AND (s.trace, s.start_ns, s.span_id) > ({row}, {start}, {id})")
                }
                Some(_) => return Err(invalid("Invalid page token")),
                None => String::new(),
            };
            // In the text, not bound (see get_spans), and the statement cached.
            let limit = max_results.saturating_add(1).min(i64::MAX as usize);
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT s.trace, s.span_id, s.parent_span_id, s.name, s.type, s.status, \
                 s.start_ns, s.end_ns, s.content FROM spans s WHERE s.trace IN {list} {after} \
                 ORDER BY s.trace, s.start_ns, s.span_id LIMIT {limit}"
            ))?;
            let mut q = stmt.query(search_sql::params(&sql))?;
            let mut last_row = 0;
            while let Some(r) = q.next()? {
                if out.len() == max_results {
                    let s: &SpanRecord = out.last().expect("non-empty");
                    let token = search_sql::encode_token(
                        query,
                        vec![
                            SortVal::I(last_row),
                            SortVal::I(s.start_time_unix_nano),
                            SortVal::S(s.span_id.clone()),
                        ],
                    );
                    return Ok(Page {
                        items: out,
                        next_page_token: Some(token),
                    });
                }
                last_row = r.get(0)?;
                out.push(SpanRecord::new(
                    names[&last_row].clone(),
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                    r.get::<_, String>(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get::<_, String>(8)?,
                ));
            }
            Ok(Page::last(out))
        })
        .await
    }

    async fn search_traces(&self, req: SearchTraces) -> Result<Page<TraceInfo>> {
        let mut exps = Vec::with_capacity(req.experiment_ids.len());
        for id in &req.experiment_ids {
            exps.push(experiment_id(id)?);
        }
        if exps.is_empty() {
            return Ok(Page::last(vec![]));
        }
        self.read(move |tx| {
            let (sql, query, n_keys) =
                search_sql::traces_page_query(search_sql::sql(), &req, &exps)?;
            let (ids, next) = super::search::run_page_query(tx, &sql, n_keys, req.max_results)?;
            let next_page_token = next.map(|k| search_sql::encode_token(query, k));
            Ok(Page {
                items: load_infos(tx, &ids)?,
                next_page_token,
            })
        })
        .await
    }

    async fn count_traces(
        &self,
        experiment_ids: &[String],
        filter: Option<cairn_plugin_api::search::Expr>,
    ) -> Result<usize> {
        let mut exps = Vec::with_capacity(experiment_ids.len());
        for id in experiment_ids {
            exps.push(experiment_id(id)?);
        }
        if exps.is_empty() {
            return Ok(0);
        }
        self.read(move |tx| {
            let mut sql = Sql::default();
            let list = sql.bind_list(&exps);
            let mut wheres = vec![format!("t.experiment_id IN {list}")];
            if let Some(f) = &filter {
                wheres.push(search_sql::filter(&mut sql, Target::Traces, f, &[])?);
            }
            sql.text = format!(
                "SELECT COUNT(*) FROM traces t WHERE {}",
                wheres.join(" AND ")
            );
            let n: i64 = tx
                .prepare(&sql.text)?
                .query_row(search_sql::params(&sql), |r| r.get(0))?;
            Ok(n as usize)
        })
        .await
    }

    async fn query_trace_metrics(&self, query: TraceMetricsQuery) -> Result<Vec<MetricDataPoint>> {
        let mut exps = Vec::with_capacity(query.experiment_ids.len());
        for id in &query.experiment_ids {
            exps.push(experiment_id(id)?);
        }
        if exps.is_empty() {
            return Ok(Vec::new());
        }
        let (sql, n_dims) = cairn_plugin_api::search::metrics_sql::trace_metrics(
            search_sql::Dialect::Sqlite,
            &query,
            &exps,
        )?;
        let labels: Vec<String> = query.aggregations.iter().map(|a| a.label()).collect();
        let dims: Vec<String> = query
            .time_interval_seconds
            .map(|_| "time_bucket".to_string())
            .into_iter()
            .chain(query.dimensions.iter().cloned())
            .collect();
        self.read(move |tx| {
            let mut stmt = tx.prepare(&sql.text)?;
            let mut rows = stmt.query(search_sql::params(&sql))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let mut point = MetricDataPoint::new(BTreeMap::new(), BTreeMap::new());
                for (i, d) in dims.iter().enumerate().take(n_dims) {
                    let v = search_sql::sort_val(r, i)?;
                    point.dimensions.insert(d.clone(), dimension_text(v));
                }
                for (j, label) in labels.iter().enumerate() {
                    if let Some(v) = r.get::<_, Option<f64>>(n_dims + j)? {
                        point.values.insert(label.clone(), v);
                    }
                }
                if !point.values.is_empty() {
                    out.push(point);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_traces(&self, experiment_id_text: &str, which: DeleteTraces) -> Result<usize> {
        let exp = experiment_id(experiment_id_text)?;
        match which {
            DeleteTraces::Ids(ids) => {
                self.write(move |tx, _| {
                    let mut rows = Vec::new();
                    for chunk in ids.chunks(IN_CHUNK) {
                        let mut sql = Sql::default();
                        let e = sql.bind(exp);
                        let list = sql.bind_list(chunk);
                        let mut stmt = tx.prepare(&format!(
                            "SELECT id FROM traces WHERE experiment_id = {e} AND trace_id IN {list}"
                        ))?;
                        let found = stmt
                            .query_map(search_sql::params(&sql), |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<i64>>>()?;
                        rows.extend(found);
                    }
                    delete_rows(tx, &rows)
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
                    let batch = remaining.min(DELETE_BATCH);
                    let n = self
                        .write(move |tx, _| {
                            let rows = tx
                                .prepare_cached(
                                    "SELECT id FROM traces WHERE experiment_id = ?1 AND \
                                     request_time <= ?2 ORDER BY request_time, trace_id LIMIT ?3",
                                )?
                                .query_map(params![exp, max_timestamp_millis, batch as i64], |r| {
                                    r.get(0)
                                })?
                                .collect::<rusqlite::Result<Vec<i64>>>()?;
                            delete_rows(tx, &rows)
                        })
                        .await?;
                    total += n;
                    remaining -= n;
                    if n < batch {
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
            let row = require_trace(tx, &trace_id)?;
            upsert_kv(tx, "trace_tags", row, &key, &value)
        })
        .await
    }

    async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        let (trace_id, key) = (trace_id.to_string(), key.to_string());
        self.write(move |tx, _| {
            let row = require_trace(tx, &trace_id)?;
            let n = tx
                .prepare_cached("DELETE FROM trace_tags WHERE trace = ?1 AND key = ?2")?
                .execute(params![row, key])?;
            if n == 0 {
                return Err(not_found(format!(
                    "No trace tag with key '{key}' for trace with ID '{trace_id}'"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        let (trace_ids, run_id) = (trace_ids.to_vec(), run_id.to_string());
        self.write(move |tx, _| {
            for id in &trace_ids {
                match trace_row(tx, id)? {
                    Some(row) => {
                        upsert_kv(tx, "trace_metadata", row, SOURCE_RUN_METADATA, &run_id)?
                    }
                    None => {
                        tx.prepare_cached(
                            "INSERT INTO trace_pending_runs (trace_id, run_id) VALUES (?1, ?2) \
                             ON CONFLICT (trace_id) DO UPDATE SET run_id = excluded.run_id",
                        )?
                        .execute(params![id, run_id])?;
                    }
                }
            }
            Ok(())
        })
        .await
    }

    async fn create_assessment(&self, assessment: Assessment) -> Result<Assessment> {
        let (trace_id, id) = (
            assessment.trace_id.clone(),
            assessment.assessment_id.clone(),
        );
        self.write(move |tx, _| {
            let row = require_trace(tx, &assessment.trace_id)?;
            put_assessment(tx, row, &assessment)
        })
        .await?;
        self.get_assessment(&trace_id, &id).await
    }

    async fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Assessment> {
        let (trace_id, id) = (trace_id.to_string(), assessment_id.to_string());
        self.read(move |tx| {
            require_trace(tx, &trace_id)?;
            load_assessment(tx, &trace_id, &id)
        })
        .await
    }

    async fn update_assessment(&self, assessment: Assessment) -> Result<Assessment> {
        let (trace_id, id) = (
            assessment.trace_id.clone(),
            assessment.assessment_id.clone(),
        );
        self.write(move |tx, _| {
            let row = require_trace(tx, &assessment.trace_id)?;
            load_assessment(tx, &assessment.trace_id, &assessment.assessment_id)?;
            put_assessment(tx, row, &assessment)
        })
        .await?;
        self.get_assessment(&trace_id, &id).await
    }

    async fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()> {
        let (trace_id, id) = (trace_id.to_string(), assessment_id.to_string());
        self.write(move |tx, _| {
            let row = require_trace(tx, &trace_id)?;
            tx.prepare_cached("DELETE FROM assessments WHERE trace = ?1 AND assessment_id = ?2")?
                .execute(params![row, id])?;
            Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_plugin_api::TraceStore;
    use cairn_plugin_api::search::{SearchKind, parse_filter, parse_order_by};

    /// An in-memory store and the id of an experiment in it.
    fn store_with_experiment() -> (SqliteStore, String) {
        let store = open("sqlite://", Some("file:///tmp/cairn-test")).unwrap();
        let exp = futures_executor::block_on(store.create_experiment(CreateExperiment {
            name: "traces".into(),
            ..Default::default()
        }))
        .unwrap();
        (store, exp)
    }

    /// The page query's plan for `filter`, newest first, in a fresh experiment of 20 traces.
    fn plan_of(filter: &str) -> Vec<String> {
        let (store, exp) = store_with_experiment();
        let filter = parse_filter(SearchKind::Traces, filter).unwrap();
        futures_executor::block_on(async {
            for i in 0..20 {
                let state = if i % 4 == 0 {
                    TraceState::Error
                } else {
                    TraceState::Ok
                };
                let mut info = TraceInfo::new(format!("tr-{i}"), exp.clone(), i, state);
                info.tags
                    .insert("g".into(), ["x", "y"][i as usize % 2].into());
                store.start_trace(info).await.unwrap();
            }
            let req = SearchTraces::new(
                vec![exp.clone()],
                filter,
                parse_order_by(SearchKind::Traces, &["timestamp_ms DESC".to_string()]).unwrap(),
                10,
                None,
            );
            let exps = vec![experiment_id(&exp).unwrap()];
            store
                .read(move |conn| {
                    let (sql, _, _) =
                        search_sql::traces_page_query(search_sql::sql(), &req, &exps)?;
                    Ok(conn
                        .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?
                        .query_map(search_sql::params(&sql), |r| r.get::<_, String>(3))?
                        .collect::<Result<Vec<_>, _>>()?)
                })
                .await
                .unwrap()
        })
    }

    /// The usual search of a trace list, by state, newest first: it walks the experiment's
    /// trace index in order (no sorting) and reads the state from the index (no trace row per
    /// trace passed).
    #[test]
    fn a_trace_search_walks_the_experiments_index_without_reading_trace_rows() {
        let plan = plan_of("trace.status = 'OK'");
        assert!(
            plan[0].contains("COVERING INDEX traces_by_experiment_time"),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// With a tag equality too, the page comes from the tag index in order: only the tags of
    /// that value in that experiment are read, newest first, each joined to its trace by rowid.
    #[test]
    fn a_trace_search_with_a_tag_reads_its_page_from_the_tag_index() {
        let plan = plan_of("trace.status = 'OK' AND tags.g = 'x'");
        assert!(
            plan[0].contains(
                "COVERING INDEX trace_tags_by_key_value (key=? AND value=? AND experiment_id=?)"
            ),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|l| l.contains("SEARCH t USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "{plan:?}");
    }

    /// The tag index's copies of a trace's time follow the trace: tags written with the info,
    /// set later, and a time that changes when the info arrives again (after its spans, say).
    /// Paged one trace at a time, the order is the same.
    #[test]
    fn a_tag_driven_search_follows_its_traces_times() {
        let (store, exp) = store_with_experiment();
        futures_executor::block_on(async {
            let start = |id: &str, time: i64, g: &str| {
                let mut info = TraceInfo::new(id.to_string(), exp.clone(), time, TraceState::Ok);
                info.tags.insert("g".into(), g.into());
                store.start_trace(info)
            };
            start("tr-a", 10, "x").await.unwrap();
            start("tr-b", 20, "x").await.unwrap();
            start("tr-c", 30, "y").await.unwrap();
            let search = |page: usize| {
                let (store, exp) = (&store, exp.clone());
                async move {
                    let mut ids = vec![];
                    let mut token = None;
                    loop {
                        let req = SearchTraces::new(
                            vec![exp.clone()],
                            parse_filter(SearchKind::Traces, "tags.g = 'x'").unwrap(),
                            vec![],
                            page,
                            token,
                        );
                        let p = store.search_traces(req).await.unwrap();
                        ids.extend(p.items.into_iter().map(|i| i.trace_id));
                        match p.next_page_token {
                            Some(t) => token = Some(t),
                            None => return ids,
                        }
                    }
                }
            };
            assert_eq!(search(10).await, ["tr-b", "tr-a"]);
            start("tr-a", 40, "x").await.unwrap();
            assert_eq!(search(10).await, ["tr-a", "tr-b"]);
            store.set_trace_tag("tr-c", "g", "x").await.unwrap();
            assert_eq!(search(10).await, ["tr-a", "tr-c", "tr-b"]);
            assert_eq!(search(1).await, ["tr-a", "tr-c", "tr-b"]);
            store.delete_trace_tag("tr-a", "g").await.unwrap();
            assert_eq!(search(1).await, ["tr-c", "tr-b"]);
        });
    }
}
