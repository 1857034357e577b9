//! Metrics (and the params and tags of `log_batch`): the batch write path, latest values, history reads.

use super::*;

/// Most runs of one `get_metric_history_bulk_interval` request.
pub(super) const MAX_BULK_RUNS: usize = 100;

/// Most sampled steps of one `get_metric_history_bulk_interval` request.
pub(super) const MAX_BULK_RESULTS: usize = 2500;

/// Stored value and NaN flag of a metric value for the search tables (NaN is `NULL`).
pub(super) fn search_value(v: f64) -> (Option<f64>, i32) {
    if v.is_nan() { (None, 1) } else { (Some(v), 0) }
}

pub(super) fn metric_value(value: Option<f64>, is_nan: bool) -> f64 {
    if is_nan {
        f64::NAN
    } else {
        value.unwrap_or(f64::NAN)
    }
}

/// The value a `(step, timestamp, value)` comparison uses: NaN counts as 0, as in MLflow.
fn cmp_value(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v }
}

/// Whether `a` replaces `b` as the latest value.
fn is_later(a: &Metric, b: &Metric) -> bool {
    (a.step, a.timestamp)
        .cmp(&(b.step, b.timestamp))
        .then_with(|| {
            cmp_value(a.value)
                .partial_cmp(&cmp_value(b.value))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .is_gt()
}

/// The best `(step, timestamp, value)` per key of a batch, in key order (a fixed lock order).
fn latest_per_key(metrics: &[Metric]) -> Vec<&Metric> {
    let mut best: std::collections::BTreeMap<&str, &Metric> = std::collections::BTreeMap::new();
    for m in metrics {
        match best.get_mut(m.key.as_str()) {
            None => {
                best.insert(m.key.as_str(), m);
            }
            Some(cur) => {
                if is_later(m, cur) {
                    *cur = m;
                }
            }
        }
    }
    best.into_values().collect()
}

pub(super) async fn write_log_batch(
    tx: &Transaction<'_>,
    run: &RunRef,
    metrics: &[Metric],
    params: &[Param],
    tags: &[RunTag],
) -> StoreResult<()> {
    // Params first (MLflow's order), refusing a changed value.
    for p in params {
        let existing: Option<String> = tx
            .query_opt(
                "SELECT value FROM params WHERE run = $1 AND key = $2",
                &[&run.id, &p.key],
            )
            .await?
            .map(|r| r.get(0));
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
                tx.execute(
                    "INSERT INTO params (run, experiment_id, key, value) VALUES ($1, $2, $3, $4)",
                    &[&run.id, &run.experiment_id, &p.key, &p.value],
                )
                .await?;
            }
        }
    }
    if !metrics.is_empty() {
        // Latest values first (the run's row lock is held, so no other writer races on them),
        // all keys in one upsert (in key order, a fixed lock order); the upsert also creates
        // each key's series row, whose id the history rows carry.
        let latest = latest_per_key(metrics);
        let mut keys = Vec::with_capacity(latest.len());
        let mut values = Vec::with_capacity(latest.len());
        let mut nans = Vec::with_capacity(latest.len());
        let mut ts = Vec::with_capacity(latest.len());
        let mut steps = Vec::with_capacity(latest.len());
        for m in &latest {
            let (v, nan) = search_value(m.value);
            keys.push(m.key.as_str());
            values.push(v);
            nans.push(nan);
            ts.push(m.timestamp);
            steps.push(m.step);
        }
        tx.execute(
            "INSERT INTO latest_metrics (run, key, value, is_nan, timestamp, step) \
             SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::int4[], $5::int8[], \
             $6::int8[]) \
             ON CONFLICT (run, key) DO UPDATE SET value = excluded.value, \
             is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step \
             WHERE (excluded.step, excluded.timestamp, coalesce(excluded.value, 0)) > \
             (latest_metrics.step, latest_metrics.timestamp, coalesce(latest_metrics.value, 0))",
            &[&run.id, &keys, &values, &nans, &ts, &steps],
        )
        .await?;
        let mut series: HashMap<String, i64> = HashMap::with_capacity(latest.len());
        for r in tx
            .query(
                "SELECT key, id FROM latest_metrics WHERE run = $1 AND key = ANY($2)",
                &[&run.id, &keys],
            )
            .await?
        {
            series.insert(r.try_get(0)?, r.try_get(1)?);
        }
        // The whole history in one statement, as arrays.
        let mut s = Vec::with_capacity(metrics.len());
        let mut ts = Vec::with_capacity(metrics.len());
        let mut steps = Vec::with_capacity(metrics.len());
        let mut values = Vec::with_capacity(metrics.len());
        let mut nans = Vec::with_capacity(metrics.len());
        let mut dn = Vec::with_capacity(metrics.len());
        let mut dd = Vec::with_capacity(metrics.len());
        let mut mids = Vec::with_capacity(metrics.len());
        for m in metrics {
            let nan = m.value.is_nan();
            s.push(series.get(m.key.as_str()).copied().unwrap_or_default());
            ts.push(m.timestamp);
            steps.push(m.step);
            values.push(if nan { 0.0 } else { m.value });
            nans.push(i32::from(nan));
            dn.push(m.dataset_name.clone());
            dd.push(m.dataset_digest.clone());
            mids.push(m.model_id.clone());
        }
        tx.execute(
            "INSERT INTO metrics (series, timestamp, step, value, is_nan, dataset_name, \
             dataset_digest, model_id) \
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::float8[], $5::int4[], \
             $6::text[], $7::text[], $8::text[]) ON CONFLICT DO NOTHING",
            &[&s, &ts, &steps, &values, &nans, &dn, &dd, &mids],
        )
        .await?;
        for m in metrics.iter().filter(|m| m.model_id.is_some()) {
            let model_id = m.model_id.as_deref().unwrap_or("");
            let model = find_model(tx, model_id)
                .await?
                .ok_or_else(|| no_model(model_id))?;
            upsert_model_metric(tx, model.id, m, Some(&run.run_uuid)).await?;
        }
    }
    for t in tags {
        upsert_run_tag(tx, run, &t.key, &t.value).await?;
    }
    Ok(())
}

/// Keeps the latest value of each (model, key, dataset): the greatest `(timestamp, step)`, ties
/// to the largest value with NaN lowest.
pub(super) async fn upsert_model_metric(
    tx: &Transaction<'_>,
    model: i64,
    m: &Metric,
    run_id: Option<&str>,
) -> StoreResult<()> {
    let (v, nan) = search_value(m.value);
    tx.execute(
        "INSERT INTO logged_model_metrics (model, key, dataset_name, dataset_digest, value, \
         is_nan, timestamp, step, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (model, key, dataset_name, dataset_digest) DO UPDATE SET \
         value = excluded.value, is_nan = excluded.is_nan, timestamp = excluded.timestamp, \
         step = excluded.step, run_id = excluded.run_id \
         WHERE (excluded.timestamp, excluded.step, excluded.value IS NOT NULL, \
         coalesce(excluded.value, 0)) > (logged_model_metrics.timestamp, \
         logged_model_metrics.step, logged_model_metrics.value IS NOT NULL, \
         coalesce(logged_model_metrics.value, 0))",
        &[
            &model,
            &m.key,
            &m.dataset_name.as_deref().unwrap_or(""),
            &m.dataset_digest.as_deref().unwrap_or(""),
            &v,
            &nan,
            &m.timestamp,
            &m.step,
            &run_id,
        ],
    )
    .await?;
    Ok(())
}

async fn metric_history(
    tx: &Transaction<'_>,
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
    let run = require_run(tx, run_uuid, false).await?;
    let fp = search_sql::fingerprint(&("history", run_uuid, key));
    let last = match token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, 4)?),
        _ => None,
    };
    let lim = (max_results + 1) as i64;
    let base = "SELECT timestamp, step, value, is_nan, dataset_name, dataset_digest, model_id \
                FROM metrics WHERE series = (SELECT id FROM latest_metrics WHERE run = $1 AND key = $2)";
    let rows = match &last {
        Some(k) => {
            let (SortVal::I(t), SortVal::I(s), SortVal::R(v), SortVal::I(n)) =
                (&k[0], &k[1], &k[2], &k[3])
            else {
                return Err(invalid("Invalid page token"));
            };
            let (v, n) = (f64::from_bits(*v), *n as i32);
            tx.query(
                &format!(
                    "{base} AND (timestamp, step, value, is_nan) > ($3, $4, $5, $6) \
                     ORDER BY timestamp, step, value, is_nan LIMIT $7"
                ),
                &[&run.id, &key, t, s, &v, &n, &lim],
            )
            .await?
        }
        None => {
            tx.query(
                &format!("{base} ORDER BY timestamp, step, value, is_nan LIMIT $3"),
                &[&run.id, &key, &lim],
            )
            .await?
        }
    };
    let mut items: Vec<Metric> = Vec::new();
    let mut next = None;
    for row in rows {
        if items.len() == max_results {
            let last = &items[items.len() - 1];
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
        let nan = row.try_get::<_, i32>(3)? != 0;
        let value: f64 = row.try_get(2)?;
        let mut m = Metric::new(
            key,
            if nan { f64::NAN } else { value },
            row.try_get(0)?,
            row.try_get(1)?,
        );
        m.dataset_name = row.try_get(4)?;
        m.dataset_digest = row.try_get(5)?;
        m.model_id = row.try_get(6)?;
        items.push(m);
    }
    Ok(Page {
        items,
        next_page_token: next,
    })
}

async fn bulk_interval(
    tx: &Transaction<'_>,
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
    let mut run_ids: Vec<String> = Vec::new();
    for id in &req.run_ids {
        if !run_ids.contains(id) {
            run_ids.push(id.clone());
        }
    }
    if run_ids.is_empty() {
        return Ok(Vec::new());
    }
    let max = req.max_results as i64;
    let rows = tx
        .query(
            "WITH req(uuid, ord) AS (SELECT * FROM unnest($1::text[]) WITH ORDINALITY),
             rr AS (SELECT req.ord, runs.id AS run, runs.run_uuid FROM req JOIN runs ON runs.run_uuid = req.uuid),
             pts AS (SELECT rr.ord, rr.run_uuid, rr.run, m.step, m.timestamp, m.value, m.is_nan
                     FROM rr JOIN latest_metrics lm ON lm.run = rr.run AND lm.key = $2
                     JOIN metrics m ON m.series = lm.id
                     WHERE m.step BETWEEN $3 AND $4),
             steps AS (SELECT DISTINCT step FROM pts),
             numbered AS (SELECT step, ROW_NUMBER() OVER (ORDER BY step) - 1 AS idx,
                                 COUNT(*) OVER () AS total FROM steps),
             chosen AS (
                 SELECT step FROM numbered
                  WHERE total <= $5 OR idx = total - 1
                     OR ((idx * $5 + total - 1) / total) * total < (idx + 1) * $5
                 UNION SELECT min(step) FROM pts GROUP BY run
                 UNION SELECT max(step) FROM pts GROUP BY run)
             SELECT run_uuid, step, timestamp, value, is_nan FROM pts
              WHERE step IN (SELECT step FROM chosen)
              ORDER BY ord, step, timestamp, value",
            &[&run_ids, &req.metric_key, &start, &end, &max],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let nan = r.try_get::<_, i32>(4)? != 0;
            let v: f64 = r.try_get(3)?;
            Ok(MetricWithRunId {
                key: req.metric_key.clone(),
                value: if nan { f64::NAN } else { v },
                timestamp: r.try_get(2)?,
                step: r.try_get(1)?,
                run_id: r.try_get(0)?,
            })
        })
        .collect()
}

pub(super) async fn log_batch(
    store: &PostgresStore,
    run_id: &str,
    metrics: Vec<Metric>,
    params: Vec<Param>,
    tags: Vec<RunTag>,
) -> Result<()> {
    let run_id = run_id.to_string();
    if metrics.is_empty() && params.is_empty() && tags.is_empty() {
        // Still an error for an unknown or deleted run, as MLflow.
        return store
            .read(move |tx| {
                Box::pin(async move { require_active_run(tx, &run_id, false).await.map(|_| ()) })
            })
            .await;
    }
    store
        .write(move |tx, _| {
            Box::pin(async move {
                let run = require_active_run(tx, &run_id, true).await?;
                write_log_batch(tx, &run, &metrics, &params, &tags).await
            })
        })
        .await
}

pub(super) async fn get_metric_history(
    store: &PostgresStore,
    run_id: &str,
    metric_key: &str,
    max_results: usize,
    page_token: Option<String>,
) -> Result<Page<Metric>> {
    let run_id = run_id.to_string();
    let key = metric_key.to_string();
    store
        .read(move |tx| {
            Box::pin(async move {
                metric_history(tx, &run_id, &key, max_results, page_token.as_deref()).await
            })
        })
        .await
}

pub(super) async fn get_metric_history_bulk_interval(
    store: &PostgresStore,
    req: BulkIntervalRequest,
) -> Result<Vec<MetricWithRunId>> {
    store
        .read(move |tx| Box::pin(async move { bulk_interval(tx, &req).await }))
        .await
}
