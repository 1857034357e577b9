//! Metrics (and the params and tags of `log_batch`): the batch write path, latest values, history reads.

use super::*;

/// Most runs of one `get_metric_history_bulk_interval` request.
pub(super) const MAX_BULK_RUNS: usize = 100;

/// Most sampled steps of one `get_metric_history_bulk_interval` request.
pub(super) const MAX_BULK_RESULTS: usize = 2500;

/// Stored value and NaN flag of a metric value for the search tables (NaN is `NULL`).
pub(super) fn search_value(v: f64) -> (Option<f64>, bool) {
    if v.is_nan() {
        (None, true)
    } else {
        (Some(v), false)
    }
}

/// The value a `(step, timestamp, value)` comparison uses: NaN counts as 0, as in MLflow.
pub(super) fn cmp_value(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v }
}

pub(super) fn metric_value(value: Option<f64>, is_nan: bool) -> f64 {
    if is_nan {
        f64::NAN
    } else {
        value.unwrap_or(f64::NAN)
    }
}

/// Rows per multi-row `INSERT` into `metrics` (8 parameters each).
pub(super) const METRIC_INSERT_ROWS: usize = 100;

/// `INSERT OR IGNORE INTO metrics ... VALUES (...), (...)` for `rows` rows.
pub(super) fn metric_insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR IGNORE INTO metrics (series, timestamp, step, value, is_nan, dataset_name, \
         dataset_digest, model_id) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let b = r * 8;
        sql.push('(');
        for c in 1..=8 {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", b + c));
        }
        sql.push(')');
    }
    sql
}

/// The best `(step, timestamp, value)` per key of a batch, for `latest_metrics`.
pub(super) fn latest_per_key<'a, K: Eq + std::hash::Hash>(
    metrics: impl Iterator<Item = (K, &'a Metric)>,
) -> Vec<&'a Metric> {
    let mut best: HashMap<K, &Metric> = HashMap::new();
    let mut order: Vec<&Metric> = Vec::new();
    for (k, m) in metrics {
        match best.get_mut(&k) {
            None => {
                best.insert(k, m);
            }
            Some(cur) => {
                if is_later(m, cur) {
                    *cur = m;
                }
            }
        }
    }
    order.extend(best.into_values());
    order
}

/// Whether `a` replaces `b` as the latest value: `(step, timestamp, value)` strictly greater,
/// NaN counting as 0.
pub(super) fn is_later(a: &Metric, b: &Metric) -> bool {
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then_with(|| {
            cmp_value(a.value)
                .partial_cmp(&cmp_value(b.value))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .is_gt()
}

pub(super) fn write_log_batch(
    tx: &Transaction<'_>,
    run: &RunRef,
    metrics: &[Metric],
    params: &[Param],
    tags: &[RunTag],
) -> StoreResult<()> {
    // Params first (MLflow's order), refusing a changed value.
    if !params.is_empty() {
        let mut get = tx.prepare_cached("SELECT value FROM params WHERE run = ?1 AND key = ?2")?;
        let mut put =
            tx.prepare_cached("INSERT INTO params (run, key, value) VALUES (?1, ?2, ?3)")?;
        for p in params {
            let existing: Option<String> = get
                .query_row(params![run.id, p.key], |r| r.get(0))
                .optional()?;
            match existing {
                Some(old) if old == p.value => {}
                Some(old) => {
                    return Err(invalid(format!(
                        "Changing param values is not allowed. Param with key='{}' was already \
                         logged with value='{}' for run ID='{}'. Attempted logging new value '{}'.",
                        p.key, old, run.run_uuid, p.value
                    )));
                }
                None => {
                    put.execute(params![run.id, p.key, p.value])?;
                }
            }
        }
    }
    if !metrics.is_empty() {
        // Latest values first: the upsert also creates each key's series row, whose id the
        // history rows carry.
        let mut latest = tx.prepare_cached(
            "INSERT INTO latest_metrics (run, key, value, is_nan, timestamp, step) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (run, key) DO UPDATE SET value = excluded.value, \
             is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step \
             WHERE (excluded.step, excluded.timestamp, coalesce(excluded.value, 0)) > \
             (latest_metrics.step, latest_metrics.timestamp, coalesce(latest_metrics.value, 0))",
        )?;
        let mut series_of =
            tx.prepare_cached("SELECT id FROM latest_metrics WHERE run = ?1 AND key = ?2")?;
        let mut series: HashMap<&str, i64> = HashMap::new();
        for m in latest_per_key(metrics.iter().map(|m| (m.key.as_str(), m))) {
            let (v, nan) = search_value(m.value);
            latest.execute(params![run.id, m.key, v, nan, m.timestamp, m.step])?;
            let id: i64 = series_of.query_row(params![run.id, m.key], |r| r.get(0))?;
            series.insert(m.key.as_str(), id);
        }
        // Inserting in primary-key order keeps the b-tree writes local.
        let mut sorted: Vec<(i64, &Metric)> = metrics
            .iter()
            .map(|m| (series.get(m.key.as_str()).copied().unwrap_or_default(), m))
            .collect();
        sorted.sort_unstable_by_key(|(s, m)| (*s, m.timestamp, m.step));
        // Multi-row INSERTs: one statement step per chunk instead of per row.
        for chunk in sorted.chunks(METRIC_INSERT_ROWS) {
            let mut put = if chunk.len() == METRIC_INSERT_ROWS {
                static FULL: OnceLock<String> = OnceLock::new();
                tx.prepare_cached(FULL.get_or_init(|| metric_insert_sql(METRIC_INSERT_ROWS)))?
            } else {
                tx.prepare_cached(&metric_insert_sql(chunk.len()))?
            };
            let mut i = 0;
            for (s, m) in chunk {
                let nan = m.value.is_nan();
                put.raw_bind_parameter(i + 1, s)?;
                put.raw_bind_parameter(i + 2, m.timestamp)?;
                put.raw_bind_parameter(i + 3, m.step)?;
                put.raw_bind_parameter(i + 4, if nan { 0.0 } else { m.value })?;
                put.raw_bind_parameter(i + 5, nan)?;
                put.raw_bind_parameter(i + 6, &m.dataset_name)?;
                put.raw_bind_parameter(i + 7, &m.dataset_digest)?;
                put.raw_bind_parameter(i + 8, &m.model_id)?;
                i += 8;
            }
            put.raw_execute()?;
        }
        let model_metrics: Vec<&Metric> = metrics.iter().filter(|m| m.model_id.is_some()).collect();
        // Few metrics carry a model id: upsert each, the statement keeps the latest.
        for m in model_metrics {
            let model_id = m.model_id.as_deref().unwrap_or("");
            let model = find_model(tx, model_id)?.ok_or_else(|| no_model(model_id))?;
            upsert_model_metric(tx, model.id, m, Some(&run.run_uuid))?;
        }
    }
    for t in tags {
        upsert_run_tag(tx, run.id, &t.key, &t.value)?;
    }
    Ok(())
}

/// Keeps the latest value of each (model, key, dataset): the greatest `(timestamp, step)`, ties
/// to the largest value with NaN lowest (the reference evaluator's rule for LoggedModels).
pub(super) fn upsert_model_metric(
    tx: &Connection,
    model: i64,
    m: &Metric,
    run_id: Option<&str>,
) -> StoreResult<()> {
    let (v, nan) = search_value(m.value);
    tx.prepare_cached(
        "INSERT INTO logged_model_metrics (model, key, dataset_name, dataset_digest, value, \
         is_nan, timestamp, step, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (model, key, dataset_name, dataset_digest) DO UPDATE SET \
         value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, \
         step = excluded.step, run_id = excluded.run_id \
         WHERE (excluded.timestamp, excluded.step, excluded.value IS NOT NULL, \
         coalesce(excluded.value, 0)) > (logged_model_metrics.timestamp, \
         logged_model_metrics.step, logged_model_metrics.value IS NOT NULL, \
         coalesce(logged_model_metrics.value, 0))",
    )?
    .execute(params![
        model,
        m.key,
        m.dataset_name.as_deref().unwrap_or(""),
        m.dataset_digest.as_deref().unwrap_or(""),
        v,
        nan,
        m.timestamp,
        m.step,
        run_id
    ])?;
    Ok(())
}

pub(super) fn metric_history_sync(
    conn: &Connection,
    run_uuid: &str,
    key: &str,
    max_results: usize,
    token: Option<&str>,
) -> StoreResult<Page<Metric>> {
    if max_results == 0 {
        return Err(invalid(
            "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
        ));
    }
    let run = require_run(conn, run_uuid)?;
    let fp = search_sql::fingerprint(&("history", run_uuid, key));
    let last = match token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, 4)?),
        _ => None,
    };
    let mut sql = search_sql::sql();
    let r = sql.bind(run.id);
    let k = sql.bind(key.to_string());
    let mut text = format!(
        "SELECT timestamp, step, value, is_nan, dataset_name, dataset_digest, model_id FROM metrics \
         WHERE series = (SELECT id FROM latest_metrics WHERE run = {r} AND key = {k})"
    );
    if let Some(last) = &last {
        let vals: Vec<String> = last
            .iter()
            .map(|v| match v {
                SortVal::N => sql.bind(search_sql::SqlParam::Null),
                SortVal::I(i) => sql.bind(*i),
                SortVal::R(b) => sql.bind(f64::from_bits(*b)),
                SortVal::S(s) => sql.bind(s.clone()),
            })
            .collect();
        text.push_str(&format!(
            " AND (timestamp, step, value, is_nan) > ({})",
            vals.join(", ")
        ));
    }
    let lim = sql.bind((max_results + 1) as i64);
    text.push_str(&format!(
        " ORDER BY timestamp, step, value, is_nan LIMIT {lim}"
    ));
    let mut stmt = conn.prepare_cached(&text)?;
    let mut rows = stmt.query(search_sql::params(&sql))?;
    let mut items = Vec::new();
    let mut next = None;
    while let Some(row) = rows.next()? {
        if items.len() == max_results {
            let last: &Metric = items.last().unwrap_or_else(|| unreachable!());
            let nan = last.value.is_nan();
            next = Some(search_sql::encode_token(
                fp,
                vec![
                    SortVal::I(last.timestamp),
                    SortVal::I(last.step),
                    SortVal::R(if nan {
                        0.0f64.to_bits()
                    } else {
                        last.value.to_bits()
                    }),
                    SortVal::I(i64::from(nan)),
                ],
            ));
            break;
        }
        let nan: bool = row.get(3)?;
        let value: f64 = row.get(2)?;
        let mut m = Metric::new(
            key,
            if nan { f64::NAN } else { value },
            row.get(0)?,
            row.get(1)?,
        );
        m.dataset_name = row.get(4)?;
        m.dataset_digest = row.get(5)?;
        m.model_id = row.get(6)?;
        items.push(m);
    }
    Ok(Page {
        items,
        next_page_token: next,
    })
}

pub(super) fn bulk_interval_sync(
    conn: &Connection,
    req: &BulkIntervalRequest,
) -> StoreResult<Vec<MetricWithRunId>> {
    if req.run_ids.len() > MAX_BULK_RUNS {
        return Err(invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} run_ids. \
             Received {} run_ids.",
            req.run_ids.len()
        )));
    }
    if req.max_results == 0 || req.max_results > MAX_BULK_RESULTS {
        return Err(invalid(format!(
            "max_results must be between 1 and {MAX_BULK_RESULTS}."
        )));
    }
    let (start, end) = match (req.start_step, req.end_step) {
        (None, None) => (i64::MIN, i64::MAX),
        (Some(s), Some(e)) if s <= e => (s, e),
        (Some(_), Some(_)) => {
            return Err(invalid(
                "end_step must be greater than or equal to start_step.",
            ));
        }
        _ => {
            return Err(invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let mut run_ids: Vec<&str> = Vec::new();
    for id in &req.run_ids {
        if !run_ids.contains(&id.as_str()) {
            run_ids.push(id);
        }
    }
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = search_sql::sql();
    let values: Vec<String> = run_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let o = sql.bind(i as i64);
            let u = sql.bind(id.to_string());
            format!("({o}, {u})")
        })
        .collect();
    let key = sql.bind(req.metric_key.clone());
    let s = sql.bind(start);
    let e = sql.bind(end);
    let max = sql.bind(req.max_results as i64);
    // Sampled in SQL: the distinct steps in range across the runs, `max` evenly spaced ones
    // (index floor(i * total / max) for i in 0..max, as MLflow) plus the last, plus each run's
    // first and last step in range; then every value at a chosen step.
    let values = values.join(", ");
    let text = format!(
        "WITH req(ord, uuid) AS (VALUES {values}),
         rr AS (SELECT req.ord, runs.id AS run, runs.run_uuid FROM req JOIN runs ON runs.run_uuid = req.uuid),
         pts AS (SELECT rr.ord, rr.run_uuid, rr.run, m.step, m.timestamp, m.value, m.is_nan
                 FROM rr JOIN latest_metrics lm ON lm.run = rr.run AND lm.key = {key}
                 JOIN metrics m ON m.series = lm.id
                 WHERE m.step BETWEEN {s} AND {e}),
         steps AS (SELECT DISTINCT step FROM pts),
         numbered AS (SELECT step, ROW_NUMBER() OVER (ORDER BY step) - 1 AS idx,
                             COUNT(*) OVER () AS total FROM steps),
         chosen AS (
             SELECT step FROM numbered
              WHERE total <= {max} OR idx = total - 1
                 OR ((idx * {max} + total - 1) / total) * total < (idx + 1) * {max}
             UNION SELECT min(step) FROM pts GROUP BY run
             UNION SELECT max(step) FROM pts GROUP BY run)
         SELECT run_uuid, step, timestamp, value, is_nan FROM pts
          WHERE step IN (SELECT step FROM chosen)
          ORDER BY ord, step, timestamp, value"
    );
    let mut stmt = conn.prepare(&text)?;
    let rows = stmt.query_map(search_sql::params(&sql), |r| {
        let nan: bool = r.get(4)?;
        let v: f64 = r.get(3)?;
        Ok(MetricWithRunId {
            key: req.metric_key.clone(),
            value: if nan { f64::NAN } else { v },
            timestamp: r.get(2)?,
            step: r.get(1)?,
            run_id: r.get(0)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) async fn log_batch(
    store: &SqliteStore,
    run_id: &str,
    metrics: Vec<Metric>,
    params: Vec<Param>,
    tags: Vec<RunTag>,
) -> Result<()> {
    if metrics.is_empty() && params.is_empty() && tags.is_empty() {
        // Still an error for an unknown or deleted run, as MLflow.
        let run_id = run_id.to_string();
        return store
            .read(move |tx| require_active_run(tx, &run_id).map(|_| ()))
            .await;
    }
    let run_id = run_id.to_string();
    store
        .write(move |tx, _| {
            let run = require_active_run(tx, &run_id)?;
            write_log_batch(tx, &run, &metrics, &params, &tags)
        })
        .await
}

pub(super) async fn get_metric_history(
    store: &SqliteStore,
    run_id: &str,
    metric_key: &str,
    max_results: usize,
    page_token: Option<String>,
) -> Result<Page<Metric>> {
    let run_id = run_id.to_string();
    let key = metric_key.to_string();
    store
        .read(move |tx| metric_history_sync(tx, &run_id, &key, max_results, page_token.as_deref()))
        .await
}

pub(super) async fn get_metric_history_bulk_interval(
    store: &SqliteStore,
    req: BulkIntervalRequest,
) -> Result<Vec<MetricWithRunId>> {
    store.read(move |tx| bulk_interval_sync(tx, &req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_is_greatest_step_timestamp_value_with_nan_as_zero() {
        let a = Metric::new("k", 5.0, 10, 1);
        assert!(is_later(&Metric::new("k", 0.0, 0, 2), &a));
        assert!(is_later(&Metric::new("k", 0.0, 11, 1), &a));
        assert!(is_later(&Metric::new("k", 6.0, 10, 1), &a));
        assert!(!is_later(&Metric::new("k", 5.0, 10, 1), &a));
        assert!(!is_later(&Metric::new("k", f64::NAN, 10, 1), &a));
        assert!(is_later(
            &Metric::new("k", f64::NAN, 10, 1),
            &Metric::new("k", -1.0, 10, 1)
        ));
    }
}
